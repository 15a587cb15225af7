import pandas as pd
import pytest

from include.local_personalize.engine import api
from include.local_personalize.engine.api import InsufficientDataError, TrainingData, TrainingRequest


def _skewed(users=50, per_user=30):
    # Item i{k} gets events from every user whose number is >= k: i0 is the most popular.
    rows = [
        {"USER_ID": f"u{u}", "ITEM_ID": f"i{k % (u + 1)}", "TIMESTAMP": 1_000 + u * 100 + k}
        for u in range(users)
        for k in range(per_user)
    ]
    return pd.DataFrame(rows)


def test_popularity_ranks_by_count_and_scores_are_shares():
    frame = _skewed()
    model, metrics = api.train(TrainingRequest("aws-popularity-count"), TrainingData(frame))
    counts = frame["ITEM_ID"].value_counts()
    recommended = model.recommend("anyone", num_results=5)
    assert [item for item, _ in recommended] == counts.index[:5].tolist()
    assert recommended[0][1] == pytest.approx(counts.iloc[0] / len(frame))
    assert set(metrics) == {
        "coverage",
        "mean_reciprocal_rank_at_25",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
        "precision_at_5",
        "precision_at_10",
        "precision_at_25",
    }
    assert all(0.0 <= value <= 1.0 for value in metrics.values())


def test_filters_apply_before_top_k():
    model, _ = api.train(TrainingRequest("aws-popularity-count"), TrainingData(_skewed()))
    top = [item for item, _ in model.recommend(num_results=3)]
    excluded = [item for item, _ in model.recommend(num_results=3, excluded_item_ids=top[:2])]
    assert excluded[0] == top[2] and len(excluded) == 3 and not set(excluded) & set(top[:2])
    allowed = model.recommend(num_results=10, allowed_item_ids={"i20", "i21", "unknown"})
    assert [item for item, _ in allowed] == ["i20", "i21"]


def test_event_type_and_threshold_select_events():
    frame = _skewed()
    frame["EVENT_TYPE"] = "click"
    frame["EVENT_VALUE"] = 0.1
    # i25 is rare by clicks but the only item with valuable purchases.
    purchases = pd.DataFrame(
        {
            "USER_ID": [f"u{u}" for u in range(30) for _ in range(40)],
            "ITEM_ID": ["i25"] * 1200,
            "TIMESTAMP": 5_000,
            "EVENT_TYPE": "purchase",
            "EVENT_VALUE": 0.9,
        }
    )
    both = pd.concat([frame, purchases], ignore_index=True)
    request = TrainingRequest(
        "aws-popularity-count", event_type="purchase", solution_config={"eventValueThreshold": "0.5"}
    )
    model, _ = api.train(request, TrainingData(both))
    assert model.item_ids == ["i25"]
    with pytest.raises(ValueError, match=r"solutionConfig\.eventValueThreshold"):
        api.train(
            TrainingRequest("aws-popularity-count", solution_config={"eventValueThreshold": "high"}),
            TrainingData(both),
        )


def test_below_minimums_raises_personalizes_message():
    frame = _skewed(users=20)  # 600 interactions, under 1000
    with pytest.raises(InsufficientDataError, match="Insufficient data for training"):
        api.train(TrainingRequest("aws-popularity-count"), TrainingData(frame))
    # Filtering counts: enough rows, but too few of the selected type.
    frame = _skewed()
    frame["EVENT_TYPE"] = ["purchase"] * 10 + ["click"] * (len(frame) - 10)
    with pytest.raises(InsufficientDataError, match="found 10 interactions"):
        api.train(TrainingRequest("aws-popularity-count", event_type="purchase"), TrainingData(frame))


def test_persistence_round_trip(tmp_path):
    model, _ = api.train(TrainingRequest("aws-popularity-count"), TrainingData(_skewed()))
    model.save(tmp_path / "v1")
    loaded = api.load_model(tmp_path / "v1")
    assert loaded.recipe == "aws-popularity-count"
    assert loaded.item_ids == model.item_ids
    assert loaded.recommend("u1", num_results=10) == model.recommend("u1", num_results=10)
    assert list((tmp_path / "v1").iterdir()) and all(
        p.suffix in {".json", ".npz"} for p in (tmp_path / "v1").iterdir()
    )


def test_unknown_recipe_and_update_on_popularity_name_the_parameter():
    data = TrainingData(_skewed())
    with pytest.raises(ValueError, match="recipe 'aws-nope'"):
        api.train(TrainingRequest("aws-nope"), data)
    model, _ = api.train(TrainingRequest("aws-popularity-count"), data)
    with pytest.raises(
        ValueError, match="trainingMode UPDATE is not supported by recipe aws-popularity-count"
    ):
        api.train(TrainingRequest("aws-popularity-count", training_mode="UPDATE"), data, previous=model)


def test_same_inputs_and_seed_give_same_metrics():
    data = TrainingData(_skewed())
    _, first = api.train(TrainingRequest("aws-popularity-count", seed=5), data)
    _, second = api.train(TrainingRequest("aws-popularity-count", seed=5), data)
    assert first == second


def test_bad_timestamp_names_the_row():
    frame = _skewed().astype({"TIMESTAMP": object})
    frame.loc[7, "TIMESTAMP"] = "yesterday"
    with pytest.raises(ValueError, match="interactions row 7: TIMESTAMP 'yesterday'"):
        api.train(TrainingRequest("aws-popularity-count"), TrainingData(frame))
