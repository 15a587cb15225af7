"""The default model choice (defaults.py), -v2's item metadata, and the evaluation split's seed."""

import numpy as np
import pandas as pd
import pytest

from include.local_personalize.engine import api, defaults, metrics, synthetic
from include.local_personalize.engine.api import TrainingData, TrainingRequest
from include.local_personalize.engine.interactions import IdIndex, select_events
from include.local_personalize.engine.item_metadata import item_metadata_rows
from include.pipeline.metric_names import METRIC_NAMES

from .conftest import CLUSTERS, cluster


def _events(frame, items=None):
    return select_events(TrainingRequest("aws-user-personalization"), TrainingData(frame, items))


def _frame(users, items_per_user, catalogue, seed=0):
    """`users` users with `items_per_user` distinct items each, drawn from a `catalogue` of items."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(catalogue, items_per_user, replace=False) for _ in range(users)]
    return pd.DataFrame(
        {
            "USER_ID": np.repeat([f"u{n}" for n in range(users)], items_per_user),
            "ITEM_ID": [f"i{n}" for row in picks for n in row],
            "TIMESTAMP": np.arange(users * items_per_user),
        }
    )


def test_small_catalogue_trains_ease_with_a_validated_discount(personalization):
    model, metrics_map = personalization  # 200 items
    assert model.params["model"] == "ease"
    assert model.params["popularity_discount"] in defaults.POPULARITY_DISCOUNTS
    assert set(metrics_map) == set(METRIC_NAMES)  # one figure per metric, no spread


def test_catalogue_over_the_bound_gets_als_shaped_by_events_per_user():
    catalogue = defaults.EASE_MAX_ITEMS + 1000
    sparse = _events(_frame(users=600, items_per_user=20, catalogue=catalogue))
    assert sparse.frame["item"].nunique() > defaults.EASE_MAX_ITEMS
    assert defaults.shape_params(sparse) == {
        "model": "als",
        "factors": 32,  # 2^round(log2(1.5 x 20))
        "regularization": 10.0,
        "alpha": 10.0,
        "iterations": 15,
    }
    dense = _events(_frame(users=200, items_per_user=120, catalogue=catalogue))
    assert dense.frame["item"].nunique() > defaults.EASE_MAX_ITEMS
    assert defaults.shape_params(dense) == {
        "model": "als",
        "factors": 128,  # 1.5 x 120 rounds to 256, clipped
        "regularization": 10.0,
        "alpha": 4.0,  # dense users
        "iterations": 15,
    }
    small = _events(_frame(users=600, items_per_user=20, catalogue=defaults.EASE_MAX_ITEMS))
    assert defaults.shape_params(small)["model"] == "ease"


def test_over_the_bound_training_is_als_even_when_hpo_proposes_ease():
    frame = _frame(users=300, items_per_user=25, catalogue=defaults.EASE_MAX_ITEMS + 3000)
    events = _events(frame)
    model = defaults.fit("aws-user-personalization", events, {"model": "ease"}, 0, lambda: False)
    assert model.params["model"] == "als" and "item_factors" in model.arrays


def test_popularity_discount_recommends_less_popular_items(clustered):
    events = _events(clustered)
    counts = clustered["ITEM_ID"].value_counts()
    models = {
        beta: defaults.fit(
            "aws-user-personalization",
            events,
            {"model": "ease", "popularity_discount": beta},
            0,
            lambda: False,
        )
        for beta in (0.0, 0.5)
    }

    def mean_count(model):
        return np.mean([counts[item] for user in ("u1", "u2", "u3") for item, _ in model.recommend(user)])

    assert mean_count(models[0.5]) < mean_count(models[0.0])


def _items_by_cluster(clustered):
    items = pd.Series(clustered["ITEM_ID"].unique())
    return pd.DataFrame(
        {
            "ITEM_ID": items,
            "GENRES": [f"g{cluster(item)}|all" for item in items],  # "|": several values
            "PRICE": np.arange(len(items), dtype=float),  # numeric: not categorical
            "DESCRIPTION": [f"text {item}" for item in items],  # one value per item: not categorical
        }
    )


@pytest.fixture(scope="module")
def sparse_with_rare_item(clustered):
    """Clustered events plus "rare", held by two cluster-7 users only; its GENRES say cluster 3."""
    rare = pd.DataFrame(
        {
            "USER_ID": ["u7", "u17"],
            "ITEM_ID": ["rare", "rare"],
            "TIMESTAMP": clustered["TIMESTAMP"].min(),
            "EVENT_TYPE": "click",
            "EVENT_VALUE": 0.5,
        }
    )
    frame = pd.concat([clustered, rare], ignore_index=True)
    items = pd.concat(
        [_items_by_cluster(clustered), pd.DataFrame({"ITEM_ID": ["rare"], "GENRES": ["g3"]})],
        ignore_index=True,
    )
    return frame, items


@pytest.mark.parametrize("config", [None, {"algorithmHyperParameters": {"hidden_dimension": "16"}}])
def test_v2_learns_from_categorical_item_metadata(sparse_with_rare_item, config):
    frame, items = sparse_with_rare_item

    def train(recipe, items_dataset):
        request = TrainingRequest(recipe, solution_config=config)
        return api.train(request, TrainingData(frame, items_dataset))[0]

    v1, v2 = train("aws-user-personalization", items), train("aws-user-personalization-v2", items)
    assert v2.params["item_metadata"] and not v1.params["item_metadata"]

    def rank(model, user, item):
        return [i for i, _ in model.recommend(user, num_results=len(model.item_ids))].index(item)

    # Cluster-3 users: the interactions tie "rare" to cluster 7, its genre to cluster 3.
    users = [f"u{n}" for n in range(3, 300, CLUSTERS)][:10]
    assert np.mean([rank(v2, u, "rare") for u in users]) < np.mean([rank(v1, u, "rare") for u in users])
    # Without an items dataset v2 has nothing more to learn from than v1.
    plain_v2 = train("aws-user-personalization-v2", None)
    assert plain_v2.recommend("u3") == train("aws-user-personalization", None).recommend("u3")


def test_only_categorical_fields_become_metadata_rows(clustered):
    events = _events(clustered, _items_by_cluster(clustered))
    items = IdIndex(np.sort(events.frame["item"].unique()).astype(str))
    rows = item_metadata_rows(events, items)
    assert rows is not None
    assert rows.shape == (CLUSTERS + 1, len(items))  # g0..g9 and "all"; PRICE and DESCRIPTION ignored
    assert (np.asarray(rows.sum(axis=0)).ravel() == 2).all()  # every item: its genre and "all"


def test_split_depends_on_the_data_not_its_row_order(clustered):
    events = _events(clustered)
    shuffled = _events(clustered.sample(frac=1.0, random_state=3).reset_index(drop=True))
    assert metrics.split_seed(events, 42) == metrics.split_seed(shuffled, 42)
    first = metrics.Holdout(events, metrics.split_seed(events, 42))
    assert first.users == metrics.Holdout(shuffled, metrics.split_seed(shuffled, 42)).users

    changed = _events(clustered.drop(index=[10]).reset_index(drop=True))
    assert metrics.split_seed(changed, 42) != metrics.split_seed(events, 42)
    assert metrics.Holdout(changed, metrics.split_seed(changed, 42)).users != first.users
    assert metrics.split_seed(events, 43) != metrics.split_seed(events, 42)


def test_same_data_gets_the_same_metrics_whatever_the_row_order(clustered):
    small = synthetic.interactions(300, 80, 4000, clusters=4, seed=3)
    request = TrainingRequest("aws-popularity-count")
    _, first = api.train(request, TrainingData(small))
    _, shuffled = api.train(request, TrainingData(small.sample(frac=1.0, random_state=1)))
    assert first == shuffled
