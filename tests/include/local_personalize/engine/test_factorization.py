from collections import Counter

import numpy as np
import pandas as pd
import pytest

from include.local_personalize.engine import api, synthetic
from include.local_personalize.engine.api import TrainingData, TrainingRequest, TrainingStopped

from .conftest import cluster

NDCG_25 = "normalized_discounted_cumulative_gain_at_25"


def _share_in_cluster(items, expected):
    return sum(cluster(item) == expected for item in items) / len(items)


def test_user_personalization_beats_popularity_widely(clustered, personalization):
    _, als_metrics = personalization
    _, popular_metrics = api.train(TrainingRequest("aws-popularity-count"), TrainingData(clustered))
    assert als_metrics[NDCG_25] >= 2 * popular_metrics[NDCG_25]
    assert als_metrics["coverage"] > popular_metrics["coverage"]


def test_known_user_gets_items_of_their_cluster(personalization):
    model, _ = personalization
    for user in ("u3", "u14", "u25"):
        items = [item for item, _ in model.recommend(user, num_results=10)]
        assert _share_in_cluster(items, cluster(user)) >= 0.8
        scores = [score for _, score in model.recommend(user, num_results=10)]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_unknown_user_folds_in_recent_events_or_gets_popular_items(clustered, personalization):
    model, _ = personalization
    recent = [f"i{n}" for n in (4, 14, 24, 34)]  # all cluster 4
    items = [item for item, _ in model.recommend("new-user", num_results=10, recent_item_ids=recent)]
    assert _share_in_cluster(items, 4) >= 0.8
    cold = [item for item, _ in model.recommend("new-user", num_results=5)]
    assert cold == clustered["ITEM_ID"].value_counts().index[:5].tolist()


def test_recent_events_move_a_known_user_towards_them(personalization):
    model, _ = personalization
    user = "u3"  # cluster 3
    recent = [f"i{n}" for n in range(7, 200, 10)][:15]  # fifteen cluster-7 items
    items = [item for item, _ in model.recommend(user, num_results=10, recent_item_ids=recent)]
    assert _share_in_cluster(items, 7) > _share_in_cluster(
        [i for i, _ in model.recommend(user, num_results=10)], 7
    )


def test_filters_are_applied_before_top_k(personalization):
    model, _ = personalization
    allowed = {f"i{n}" for n in range(5, 200, 10)}  # cluster 5 only, for a cluster-3 user
    items = [item for item, _ in model.recommend("u3", num_results=8, allowed_item_ids=allowed)]
    assert len(items) == 8 and set(items) <= allowed
    top = [item for item, _ in model.recommend("u3", num_results=5)]
    rest = [item for item, _ in model.recommend("u3", num_results=5, excluded_item_ids=top)]
    assert len(rest) == 5 and not set(rest) & set(top)


def test_personalized_ranking_puts_the_users_cluster_first(clustered):
    model, _ = api.train(TrainingRequest("aws-personalized-ranking"), TrainingData(clustered))
    candidates = ["i11", "i13", "never-seen", "i21", "i3", "i33"]  # u13 is cluster 3
    ranked = [item for item, _ in model.rank("u13", candidates)]
    assert set(ranked[:3]) == {"i13", "i3", "i33"}
    assert ranked[-1] == "never-seen"
    assert sum(score for _, score in model.rank("u13", candidates)) == pytest.approx(1.0)


def test_similar_items_are_of_the_same_cluster(clustered):
    for recipe in ("aws-similar-items", "aws-sims"):
        model, metrics = api.train(TrainingRequest(recipe), TrainingData(clustered))
        assert api.supported_recipes()[recipe].recipe_type == "RELATED_ITEMS"
        for item in ("i6", "i17"):
            similar = [i for i, _ in model.recommend(item_id=item, num_results=10)]
            assert item not in similar
            assert _share_in_cluster(similar, cluster(item)) >= 0.8
        assert metrics[NDCG_25] > 0


def _with_fresh_item(clustered):
    """`clustered` plus a brand-new item "fresh" that cluster-2 users take up the day after training."""
    takers = [f"u{n}" for n in range(2, 1000, 10)][:60]
    later = pd.DataFrame(
        {
            "USER_ID": takers * 2,
            "ITEM_ID": ["fresh"] * 120,
            "TIMESTAMP": clustered["TIMESTAMP"].max() + 86_400,
            "EVENT_TYPE": "click",
            "EVENT_VALUE": 0.5,
        }
    )
    return pd.concat([clustered, later], ignore_index=True), takers


@pytest.mark.parametrize("model_kind", ["als", "ease"])
def test_update_folds_in_a_new_item(clustered, model_kind):
    # hidden_dimension asks for ALS; the default on 200 items is EASE (defaults.py).
    config = {"algorithmHyperParameters": {"hidden_dimension": "32"}} if model_kind == "als" else None
    model, metrics = api.train(
        TrainingRequest("aws-user-personalization", solution_config=config), TrainingData(clustered)
    )
    assert model.params["model"] == model_kind
    before = model.recommend("u2", num_results=25)
    grown, takers = _with_fresh_item(clustered)
    updated, update_metrics = api.train(
        TrainingRequest("aws-user-personalization", training_mode="UPDATE", solution_config=config),
        TrainingData(grown),
        previous=model,
    )
    assert "fresh" in updated.item_ids and "fresh" not in model.item_ids
    if model_kind == "als":
        # No retraining: every item the previous version knew keeps its factors.
        known = len(model.item_ids)
        np.testing.assert_array_equal(updated.arrays["item_factors"][:known], model.arrays["item_factors"])
    else:
        assert updated.params == model.params  # re-solved with the version's hyperparameters
    assert update_metrics == metrics

    # The new item reaches cluster-2 users who did not interact with it, not cluster-7 users.
    def rank_of_fresh(user):
        items = [item for item, _ in updated.recommend(user, num_results=len(updated.item_ids))]
        return items.index("fresh")

    assert rank_of_fresh("u992") < 10 and "u992" not in takers
    assert rank_of_fresh("u997") > rank_of_fresh("u992")
    assert model.recommend("u2", num_results=25) == before  # the previous version is untouched


def test_update_rules_name_the_parameter(clustered, personalization):
    model, _ = personalization
    data = TrainingData(clustered)
    with pytest.raises(
        ValueError, match="trainingMode UPDATE is not supported by recipe aws-personalized-ranking"
    ):
        api.train(TrainingRequest("aws-personalized-ranking", training_mode="UPDATE"), data, previous=model)
    with pytest.raises(ValueError, match="trainingMode UPDATE needs an active FULL solution version"):
        api.train(TrainingRequest("aws-user-personalization", training_mode="UPDATE"), data)
    assert api.supported_recipes()["aws-user-personalization"].supports_update
    assert not api.supported_recipes()["aws-personalized-ranking"].supports_update


def test_persistence_round_trip_gives_identical_recommendations(tmp_path, clustered, personalization):
    model, _ = personalization
    model.save(tmp_path / "als")
    loaded = api.load_model(tmp_path / "als")
    assert loaded.recipe == "aws-user-personalization" and loaded.item_ids == model.item_ids
    for user in ("u1", "u500", "stranger"):
        assert loaded.recommend(user, num_results=25) == model.recommend(user, num_results=25)
        assert loaded.recommend(user, recent_item_ids=["i9", "i19"]) == model.recommend(
            user, recent_item_ids=["i9", "i19"]
        )
    assert loaded.rank("u1", ["i1", "i2", "zz"]) == model.rank("u1", ["i1", "i2", "zz"])
    similar, _ = api.train(TrainingRequest("aws-sims"), TrainingData(clustered))
    similar.save(tmp_path / "sims")
    assert api.load_model(tmp_path / "sims").recommend(item_id="i4") == similar.recommend(item_id="i4")


def test_same_inputs_and_seed_give_same_model_and_metrics(clustered, personalization):
    model, metrics = personalization
    again, again_metrics = api.train(TrainingRequest("aws-user-personalization"), TrainingData(clustered))
    assert again_metrics == metrics
    assert again.recommend("u7") == model.recommend("u7")


def test_hyperparameters_are_mapped_and_unknown_ones_ignored(clustered):
    config = {"algorithmHyperParameters": {"hidden_dimension": "16", "bptt": "32"}}
    model, _ = api.train(
        TrainingRequest("aws-user-personalization", solution_config=config), TrainingData(clustered)
    )
    assert model.arrays["item_factors"].shape[1] == 16
    bad = {"algorithmHyperParameters": {"hidden_dimension": "huge"}}
    with pytest.raises(ValueError, match=r"algorithmHyperParameters\.hidden_dimension"):
        api.train(TrainingRequest("aws-user-personalization", solution_config=bad), TrainingData(clustered))


def test_hpo_picks_from_the_bounded_grid_within_the_given_range():
    config = {
        "hpoConfig": {
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 8, "maxValue": 24}]
            }
        }
    }
    request = TrainingRequest("aws-user-personalization", perform_hpo=True, solution_config=config)
    small = synthetic.interactions(300, 80, 4000, clusters=4, seed=3)
    model, metrics = api.train(request, TrainingData(small))
    assert model.params["factors"] <= 32  # the default 32, or a grid point clipped into [8, 24]
    assert model.arrays["item_factors"].shape[1] == model.params["factors"]
    assert metrics[NDCG_25] > 0


def test_event_weights_shift_what_the_model_learns(clustered):
    # The same users click cluster-1 items and buy cluster-6 items; weights decide which counts.
    users = [f"u{n}" for n in range(300)]
    frame = pd.DataFrame(
        {
            "USER_ID": users * 8,
            "ITEM_ID": [f"i{1 + 10 * (k % 4)}" for k in range(4) for _ in users]
            + [f"i{6 + 10 * (k % 4)}" for k in range(4) for _ in users],
            "TIMESTAMP": 1_000,
            "EVENT_TYPE": ["click"] * 1200 + ["purchase"] * 1200,
        }
    )

    def top_clusters(click_weight, purchase_weight):
        config = {
            "eventsConfig": {
                "eventParametersList": [
                    {"eventType": "click", "weight": click_weight},
                    {"eventType": "purchase", "weight": purchase_weight},
                ]
            }
        }
        model, _ = api.train(
            TrainingRequest("aws-user-personalization", solution_config=config), TrainingData(frame)
        )
        return Counter(cluster(item) for item, _ in model.recommend("u5", num_results=4))

    assert top_clusters(1.0, 0.01)[1] == 4
    assert top_clusters(0.01, 1.0)[6] == 4


def test_stop_request_raises_training_stopped(clustered):
    with pytest.raises(TrainingStopped):
        api.train(
            TrainingRequest("aws-user-personalization"), TrainingData(clustered), should_stop=lambda: True
        )
