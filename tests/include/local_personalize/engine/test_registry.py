import pytest

from include.local_personalize.engine import api
from include.local_personalize.engine.api import TrainingData, TrainingRequest

# GetSolutionMetrics' keys as AWS documents them ("Evaluating a solution version with metrics"),
# written out rather than read from personalize_contract: a misreading shared with the pipeline fails here.
AWS_METRIC_NAMES = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)
AWS_RECIPES = {
    "aws-user-personalization": "USER_PERSONALIZATION",
    "aws-user-personalization-v2": "USER_PERSONALIZATION",
    "aws-personalized-ranking": "PERSONALIZED_RANKING",
    "aws-personalized-ranking-v2": "PERSONALIZED_RANKING",
    "aws-similar-items": "RELATED_ITEMS",
    "aws-sims": "RELATED_ITEMS",
    "aws-trending-now": "POPULAR_ITEMS",
    "aws-popularity-count": "POPULAR_ITEMS",
    "aws-item-affinity": "USER_SEGMENTATION",
}


def test_every_aws_recipe_is_offered_under_its_name():
    recipes = api.supported_recipes()
    assert {name: info.recipe_type for name, info in recipes.items()} == AWS_RECIPES
    assert {name for name, info in recipes.items() if info.supports_update} == {
        "aws-user-personalization",
        "aws-user-personalization-v2",
    }


@pytest.mark.parametrize("recipe", sorted(AWS_RECIPES))
def test_each_recipe_trains_reports_metrics_and_round_trips(recipe, clustered, tmp_path):
    model, metrics = api.train(TrainingRequest(recipe), TrainingData(clustered))
    assert tuple(metrics) == AWS_METRIC_NAMES and all(0 <= v <= 1 for v in metrics.values())
    model.save(tmp_path)
    loaded = api.load_model(tmp_path)
    assert loaded.recipe == recipe
    query = {"item_id": "i8"} if AWS_RECIPES[recipe] == "RELATED_ITEMS" else {}
    served = model.recommend("u8", num_results=25, excluded_item_ids=["i18"], **query)
    assert len(served) == 25 and "i18" not in dict(served)
    assert loaded.recommend("u8", num_results=25, excluded_item_ids=["i18"], **query) == served
    assert loaded.rank("u8", ["i1", "i2", "nope"]) == model.rank("u8", ["i1", "i2", "nope"])


def test_load_model_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(ValueError, match="holds no saved model"):
        api.load_model(tmp_path)


def test_num_results_outside_personalizes_range_names_it(clustered):
    model, _ = api.train(TrainingRequest("aws-popularity-count"), TrainingData(clustered))
    with pytest.raises(ValueError, match="numResults must be between 1 and 500"):
        model.recommend("u1", num_results=501)
