import pandas as pd
import pytest
from personalize_contract import metrics as list_metrics

from include.local_personalize.engine import metrics
from include.local_personalize.engine.api import TrainingData, TrainingRequest
from include.local_personalize.engine.interactions import select_events
from tests.include.local_personalize.engine.test_registry import AWS_METRIC_NAMES


def test_documented_worked_example():
    # Personalize's docs: relevant items at ranks 2 and 5 of the list.
    ranked = ["a", "hit1", "b", "c", "hit2", "d"]
    relevant = {"hit1", "hit2"}
    assert list_metrics.reciprocal_rank(ranked, relevant, 25) == 0.5
    assert list_metrics.ndcg(ranked, relevant, 5) == pytest.approx(0.6241, abs=5e-5)
    assert list_metrics.precision(ranked, relevant, 5) == 0.4


def test_no_hit_scores_zero_and_perfect_list_scores_one():
    assert list_metrics.reciprocal_rank(["a", "b"], {"z"}, 25) == 0.0
    assert list_metrics.ndcg(["a", "b"], {"z"}, 5) == 0.0
    assert list_metrics.ndcg(["z", "y", "a"], {"z", "y"}, 5) == pytest.approx(1.0)
    # A short list still divides by k.
    assert list_metrics.precision(["z"], {"z"}, 5) == 0.2


def test_score_rankings_averages_scored_users_and_counts_coverage():
    result = metrics.score_rankings([["a", "b"], ["b", "c"], ["d"]], [{"a"}, {"c"}, set()], catalog_size=8)
    assert set(result) == set(AWS_METRIC_NAMES)
    assert result["coverage"] == 0.5  # a, b, c, d of 8
    assert (
        result["mean_reciprocal_rank_at_25"] == 0.75
    )  # (1 + 1/2) / 2; the user without targets is not scored
    assert result["precision_at_5"] == 0.2


def _events(frame, seed=0):
    return select_events(TrainingRequest("aws-popularity-count", seed=seed), TrainingData(frame))


def _frame(users=40, per_user=30):
    rows = [
        {"USER_ID": f"u{u}", "ITEM_ID": f"i{(u * 7 + e) % 50}", "TIMESTAMP": 1000 + e}
        for u in range(users)
        for e in range(per_user)
    ]
    return pd.DataFrame(rows)


def test_holdout_splits_ten_percent_of_users_and_their_newest_ten_percent():
    frame = _frame()
    holdout = metrics.Holdout(_events(frame), seed=3)
    assert len(holdout.users) == 4
    assert set(holdout.training.frame["user"]).isdisjoint(holdout.users)
    assert len(holdout.training.frame) == 36 * 30
    for user, history in zip(holdout.users, holdout.inputs, strict=True):
        u = int(user[1:])
        assert len(history) == 27  # oldest 90% of 30
        assert history.tolist() == [f"i{(u * 7 + e) % 50}" for e in range(27)]


def test_holdout_is_seeded():
    frame = _frame()
    assert metrics.Holdout(_events(frame), seed=1).users == metrics.Holdout(_events(frame), seed=1).users
    chosen = {tuple(metrics.Holdout(_events(frame), seed=s).users) for s in range(5)}
    assert len(chosen) > 1


def test_target_already_in_input_is_not_relevant():
    # Every user's newest event repeats their oldest item, except for users whose number is even.
    rows = []
    for u in range(200):
        items = [f"i{(u + k) % 40}" for k in range(9)]
        items.append(items[0] if u % 2 else f"new{u}")
        rows += [{"USER_ID": f"u{u}", "ITEM_ID": item, "TIMESTAMP": 100 + k} for k, item in enumerate(items)]
    holdout = metrics.Holdout(_events(pd.DataFrame(rows)), seed=0)
    assert len(holdout.users) == 20
    for user, targets in zip(holdout.users, holdout.targets, strict=True):
        assert targets == (set() if int(user[1:]) % 2 else {f"new{user[1:]}"})
