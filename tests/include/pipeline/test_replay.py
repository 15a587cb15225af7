"""Replay evaluation's pure parts: held-out users, batch input/output, metrics, bootstrap, plan.

Expected numbers are worked out by hand in the comments, not recomputed with the code under test.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import numpy as np
import pytest

from include.pipeline import replay, replay_plan, replay_stats
from include.pipeline.replay import HeldOut, ReplayError


def held(relevant: dict[str, set[str]], seen: dict[str, set[str]], catalog_size: int = 10) -> HeldOut:
    users = tuple(sorted(relevant))
    return HeldOut(
        users=users,
        relevant={u: frozenset(relevant[u]) for u in users},
        seen={u: frozenset(seen.get(u, set())) for u in users},
        catalog_size=catalog_size,
        eligible_users=len(users),
        window_events=sum(len(v) for v in relevant.values()),
    )


def test_held_out_keeps_known_users_with_new_items_and_their_new_items_only():
    window = [("u1", "a"), ("u1", "b"), ("u2", "c"), ("u3", "d"), ("u4", "x")]
    history = [("u1", "a"), ("u1", "z"), ("u2", "c"), ("u4", "y"), ("u9", "q")]
    result = replay.held_out(window, history, sample_size=10, seed=1, catalog_items=["k"])
    # u1: seen {a, z}, new {b}; u2 only repeats c (no new item); u3 unknown before; u4: new {x}.
    assert result.users == ("u1", "u4")
    assert result.relevant == {"u1": frozenset({"b"}), "u4": frozenset({"x"})}
    assert result.seen == {"u1": frozenset({"a", "z"}), "u4": frozenset({"y"})}
    # Catalogue: a b c d x (window) + z y q (history) + k (items dataset) = 9.
    assert result.catalog_size == 9
    assert result.eligible_users == 2 and result.window_events == 5


def test_held_out_sample_is_deterministic_and_sized():
    window = [(f"u{n:03d}", f"new{n}") for n in range(200)]
    history = [(f"u{n:03d}", "old") for n in range(200)]
    first = replay.held_out(window, history, sample_size=50, seed=7)
    again = replay.held_out(list(reversed(window)), history, sample_size=50, seed=7)
    other = replay.held_out(window, history, sample_size=50, seed=8)
    assert len(first.users) == 50 and first.users == again.users
    assert first.users != other.users
    assert list(first.users) == sorted(first.users)


def test_held_out_without_eligible_users_says_why():
    with pytest.raises(ReplayError, match="no held-out user: of 1 users active"):
        replay.held_out([("u1", "a")], [("u2", "a")], sample_size=5, seed=1)


def test_batch_input_and_output_round_trip():
    assert replay.batch_input(["u1", "u2"]) == '{"userId": "u1"}\n{"userId": "u2"}\n'
    lines = [
        json.dumps(
            {"input": {"userId": "u1"}, "output": {"recommendedItems": ["a", "b"], "scores": [0.6, 0.4]}}
        ),
        "",
        json.dumps({"input": {"userId": "u2"}, "output": None, "error": "User not found"}),
    ]
    lists, errors = replay.read_batch_output(lines)
    assert lists == {"u1": ["a", "b"]}
    assert errors == ["user u2: User not found"]
    with pytest.raises(ReplayError, match="line 1 is not a scored user"):
        replay.read_batch_output(["{}"])


def test_scores_drop_seen_items_and_match_hand_computed_values():
    # u1 relevant {b, e}; model lists s(seen), b, x, y, e -> after dropping s: b x y e (hits at 1 and 4).
    # u2 relevant {c}; model lists nothing useful -> all zeros.
    data = held({"u1": {"b", "e"}, "u2": {"c"}}, {"u1": {"s"}, "u2": {"t"}}, catalog_size=8)
    outputs = {"u1": ["s", "b", "x", "y", "e"], "u2": ["t", "q"]}
    scores = replay.score_users(outputs, data)
    assert scores.lists == (("b", "x", "y", "e"), ("q",))
    u1 = {name: values[0] for name, values in scores.per_user.items()}
    assert u1["mean_reciprocal_rank_at_25"] == 1.0
    assert u1["precision_at_5"] == pytest.approx(2 / 5)
    assert u1["precision_at_25"] == pytest.approx(2 / 25)
    # NDCG@5: (1/log2(2) + 1/log2(5)) / (1/log2(2) + 1/log2(3)) = 1.430677 / 1.630930 = 0.877215
    assert u1["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(0.877215, abs=1e-6)
    assert all(values[1] == 0.0 for values in scores.per_user.values())
    means = scores.means()
    assert means["mean_reciprocal_rank_at_25"] == 0.5
    assert means["coverage"] == pytest.approx(5 / 8)  # b x y e q of 8
    assert scores.missing_users == 0


def test_a_user_the_batch_did_not_score_counts_as_an_empty_list():
    data = held({"u1": {"a"}, "u2": {"a"}}, {})
    scores = replay.score_users({"u1": ["a"]}, data)
    assert scores.missing_users == 1
    assert scores.means()["precision_at_5"] == pytest.approx(0.1)  # (1/5 + 0) / 2


def test_num_results_leaves_room_for_seen_items_of_most_users():
    seen = {f"u{n}": {f"i{k}" for k in range(n)} for n in range(10)}  # 0..9 seen items
    data = held({u: {"new"} for u in seen}, seen)
    # 90% of 10 users -> the 9th smallest seen count, 8: 25 + 8.
    assert replay.num_results(data) == 33
    heavy = held({"u": {"new"}}, {"u": {f"i{k}" for k in range(1000)}})
    assert replay.num_results(heavy) == 500


def _scores(per_user: dict[str, list[float]], lists=None, catalog_size=10) -> replay.UserScores:
    n = len(next(iter(per_user.values())))
    users = tuple(f"u{i}" for i in range(n))
    return replay.UserScores(
        users=users,
        per_user={k: np.asarray(v, dtype=float) for k, v in per_user.items()},
        lists=tuple(lists or [()] * n),
        catalog_size=catalog_size,
        missing_users=0,
    )


def test_bootstrap_is_deterministic_and_pairs_by_user():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 300)
    champion = _scores({"precision_at_25": base})
    challenger = _scores({"precision_at_25": base + 0.01})  # every user exactly 0.01 better
    first = replay_stats.bootstrap(
        {"champion": champion, "challenger": challenger}, reference="champion", resamples=500, seed=3
    )
    again = replay_stats.bootstrap(
        {"champion": champion, "challenger": challenger}, reference="champion", resamples=500, seed=3
    )
    assert first == again
    difference = first.differences["challenger"]["precision_at_25"]
    # Paired: the per-user difference is constant, so its interval has no width at all.
    assert difference.value == pytest.approx(0.01)
    assert difference.low == pytest.approx(0.01) and difference.high == pytest.approx(0.01)
    own = first.metrics["challenger"]["precision_at_25"]
    assert own.low < own.value < own.high and own.high - own.low > 0.05  # the users' spread, unpaired


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    # 200 samples of 100 Bernoulli(0.3) users: the 95% interval should contain 0.3 in ~190 of 200.
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(200):
        values = (rng.uniform(size=100) < 0.3).astype(float)
        result = replay_stats.bootstrap(
            {"champion": _scores({"precision_at_5": values})}, reference="champion", resamples=400, seed=trial
        )
        interval = result.metrics["champion"]["precision_at_5"]
        covered += interval.low <= 0.3 <= interval.high
    assert 176 <= covered <= 200  # binomial(200, 0.95): 176 is > 4 standard deviations below 190


def test_bootstrap_coverage_counts_distinct_items_of_resampled_lists():
    lists = [("a", "b"), ("a", "c")]
    scores = _scores({"precision_at_5": [0.0, 0.0]}, lists=lists, catalog_size=4)
    draws = np.array([[0, 0], [1, 1], [0, 1], [1, 0]])
    # (u0, u0) covers a b, (u1, u1) a c: 2/4; a mixed resample a b c: 3/4.
    assert replay_stats._resampled_means(scores, draws)["coverage"].tolist() == [0.5, 0.5, 0.75, 0.75]
    result = replay_stats.bootstrap({"champion": scores}, reference="champion", resamples=200, seed=1)
    assert result.metrics["champion"]["coverage"].value == 0.75
    assert replay_stats.ReplayResult.from_dict(result.as_dict()) == result


def test_bootstrap_refuses_models_scored_on_other_users():
    a = _scores({"precision_at_5": [0.1, 0.2]})
    b = replay.UserScores(("x", "y"), {"precision_at_5": np.zeros(2)}, ((), ()), 10, 0)
    with pytest.raises(ValueError, match="other users"):
        replay_stats.bootstrap({"champion": a, "challenger": b}, reference="champion", resamples=10, seed=1)


# ------------------------------------------------------------------------------------ plan


def pending(arn: str, window: list[str], run_id: str = "r1") -> dict:
    return {
        "run_id": run_id,
        "solution_version_arn": arn,
        "decision": {"verdict": "PENDING"},
        "replay": {"window": window, "data_end": window[0]},
    }


def test_plan_trains_without_pending_waits_until_the_window_is_held_then_scores():
    assert replay_plan.plan([], date(2026, 3, 1)).action == replay_plan.TRAIN
    history = [pending("sv/1", ["2026-03-04", "2026-03-06"])]
    waiting = replay_plan.plan(history, date(2026, 3, 5))
    assert waiting.action == replay_plan.WAIT and "[2026-03-04, 2026-03-06)" in waiting.reason
    due = replay_plan.plan(history, date(2026, 3, 6))
    assert due.action == replay_plan.SCORE and due.pending["solution_version_arn"] == "sv/1"
    assert due.window.days() == [date(2026, 3, 4), date(2026, 3, 5)]
    resolved = [*history, {"run_id": "r2", "solution_version_arn": "sv/1", "replay_of": "sv/1"}]
    assert replay_plan.plan(resolved, date(2026, 3, 9)).action == replay_plan.TRAIN


def test_a_dry_run_that_scores_a_challenger_leaves_it_pending_for_the_next_real_run():
    from include.pipeline.config import CONFIG_DIR, load_config
    from include.pipeline.replay_record import failure, history_line

    config = load_config(CONFIG_DIR / "demo_retail.yaml")
    name = config.solutions[0].name
    window = ["2026-03-04", "2026-03-06"]
    history = [pending("sv/1", window)]
    due = replay_plan.plan(history, date(2026, 3, 6))
    assert due.action == replay_plan.SCORE
    score = {
        "action": "score",
        "next": "score",
        "challenger_arn": "sv/1",
        "window": window,
        "data_end": "2026-03-06",
    }
    accepted = {"accepted": True, "verdict": "ACCEPTED", "summary": "better", "window": window}
    done = {"decision": accepted, "trained_arn": None, "retrained_arn": None, "deployed": False}
    for dry_run, still_due in ((True, True), (False, False)):
        plan = {"train": False, "dry_run": dry_run, "champion_arn": "sv/0", "replay": score}
        line = history_line(config, name, plan=plan, **done, run_id="r2", dag_id="d")
        assert line["replay_of"] == "sv/1" and line["dry_run"] is dry_run and line["deployed"] is False
        after = replay_plan.plan([*history, line], date(2026, 3, 9))
        assert (after.action == replay_plan.SCORE) is still_due, after
        assert (after.pending is not None and after.pending["solution_version_arn"] == "sv/1") is still_due
    # Not deploying what the gate accepted is a dry run's point, not a failure.
    assert failure(config, name, plan={**plan, "dry_run": True}, **done) is None


def test_data_end_is_the_day_after_the_newest_partition():
    assert replay_plan.data_end(["dt=2026-03-02", "dt=2026-03-04", "dt=2026-03-03"]) == date(2026, 3, 5)
    assert replay_plan.data_end([]) is None


def test_job_names_are_deterministic_per_solution_version_and_window_and_fit_personalize():
    import botocore.session

    window = replay_plan.Window(date(2026, 3, 4), date(2026, 3, 11))
    longest = "x" * 63  # a solution name may use Personalize's whole 63 characters
    name = replay_plan.job_name(longest, "challenger", "arn:sv/1", window)
    assert name == replay_plan.job_name(longest, "challenger", "arn:sv/1", window)
    assert name != replay_plan.job_name(longest, "challenger", "arn:sv/2", window)
    assert name != replay_plan.job_name(
        longest, "challenger", "arn:sv/1", replay_plan.Window(window.start, date(2026, 3, 12))
    )
    # Two solutions scoring the same baseline version on the same window: two jobs (their users differ).
    assert replay_plan.job_name("a", "baseline", "arn:base/1", window) != replay_plan.job_name(
        "b", "baseline", "arn:base/1", window
    )
    rule = (
        botocore.session.get_session()
        .get_service_model("personalize")
        .operation_model("CreateBatchInferenceJob")
        .input_shape.members["jobName"]
        .metadata
    )
    assert len(name) <= rule["max"] == 63 and re.fullmatch(rule["pattern"], name)
    assert name.startswith("x" * 32 + "-replay-challenger-")
    assert replay_plan.folder("shop-up", window) == "replay/shop-up/2026-03-04_2026-03-11"
    assert window.seed == replay_plan.Window(date(2026, 3, 4), date(2026, 3, 11)).seed


def test_a_champion_that_may_have_trained_on_the_window_is_refused():
    window = replay_plan.Window(date(2026, 3, 4), date(2026, 3, 11))
    assert replay_plan.champion_saw_window({"replay": {"data_end": "2026-03-04"}}, None, window) is None
    assert "inside the window" in replay_plan.champion_saw_window(
        {"replay": {"data_end": "2026-03-06"}}, None, window
    )
    assert replay_plan.champion_saw_window(None, datetime(2026, 3, 2, tzinfo=UTC), window) is None
    assert "may have trained" in replay_plan.champion_saw_window(
        None, datetime(2026, 3, 9, tzinfo=UTC), window
    )


# ------------------------------------------------------------------ a solution's branch and failure


def test_the_replay_step_routes_the_group_and_failure_names_what_went_wrong():
    from include.pipeline.config import CONFIG_DIR, load_config
    from include.pipeline.replay_record import failure
    from include.pipeline.replay_tasks import next_step

    assert next_step("score", trains=True, forced=False) == "score"
    assert next_step("train", trains=True, forced=False) == "train"
    assert next_step("train", trains=False, forced=False) is None  # the cost guard: no new data
    assert next_step("wait", trains=True, forced=False) is None
    assert next_step("supersede", trains=True, forced=False) is None
    assert next_step("score", trains=True, forced=True) == "train"  # a person decides: the offline path

    config = load_config(CONFIG_DIR / "demo_retail.yaml")
    name = config.solutions[0].name
    score = {
        "action": "score",
        "next": "score",
        "challenger_arn": "sv/1",
        "window": ["2026-03-04", "2026-03-05"],
    }
    plan = {"train": False, "champion_arn": "sv/0", "replay": score}
    outcome = {"trained_arn": None, "retrained_arn": None, "deployed": False}
    assert "scoring sv/1 failed" in failure(config, name, plan=plan, decision=None, **outcome)
    accepted = {"accepted": True, "verdict": "ACCEPTED", "summary": "ok"}
    assert "passed the gate but was not deployed" in failure(
        config, name, plan=plan, decision=accepted, **outcome
    )
    assert failure(config, name, plan=plan, decision=accepted, **{**outcome, "deployed": True}) is None
    pending = {"accepted": False, "verdict": "PENDING", "summary": "waits"}
    train = {**plan, "train": True, "replay": {"action": "train", "next": "train", "data_end": "2026-03-04"}}
    assert failure(config, name, plan=train, decision=pending, **{**outcome, "trained_arn": "sv/2"}) is None
    assert "training or evaluation failed" in failure(config, name, plan=train, decision=None, **outcome)
    waiting = {**plan, "replay": {"action": "wait", "next": None}}
    assert failure(config, name, plan=waiting, decision=None, **outcome) is None
    assert "plan_training failed" in failure(config, name, plan=None, decision=None, **outcome)


def test_coverage_interval_is_shifted_to_contain_its_value():
    # 40 users, each recommending two items of their own: 80 of a 100-item catalogue covered.
    lists = [(f"a{n}", f"b{n}") for n in range(40)]
    scores = _scores({"precision_at_5": [0.0] * 40}, lists=lists, catalog_size=100)
    coverage = replay_stats.bootstrap(
        {"champion": scores}, reference="champion", resamples=300, seed=2
    ).metrics["champion"]["coverage"]
    # A resample covers about 63% of the users' items (~0.51), far below 0.80; shifted back it brackets 0.80.
    assert coverage.value == 0.8 and coverage.low < 0.8 < coverage.high
