"""The recipes under their AWS names, and training / loading by recipe (see api.py for the contract).

FULL training: select events (interactions.py), evaluate with Personalize's protocol on a held-out
10% of users (metrics.py), then train the served model on all events with the same hyperparameters.
performHPO first picks those hyperparameters from a small grid by NDCG@25 on a validation split of
the training users (the protocol again, seed + 1), so the test users never influence the choice.
UPDATE (user-personalization only): the previous version's model folds in the current events
without retraining; its offline metrics are carried over, since nothing was re-evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from include.local_personalize.engine import defaults, factorization, metrics
from include.local_personalize.engine.base import ArrayModel, read_saved
from include.local_personalize.engine.ease import EaseModel
from include.local_personalize.engine.factorization import FactorModel, ItemSimilarityModel
from include.local_personalize.engine.interactions import Events, select_events
from include.local_personalize.engine.interface import (
    RecipeInfo,
    TrainedModel,
    TrainingData,
    TrainingRequest,
    TrainingStopped,
)
from include.local_personalize.engine.popularity import PopularityModel
from include.local_personalize.engine.trending import TrendingModel

TRAINING_MODES = ("FULL", "UPDATE", "AUTOTRAIN")  # AUTOTRAIN versions are FULL trainings
HPO_OBJECTIVE = "normalized_discounted_cumulative_gain_at_25"

Fit = Callable[[str, Events, dict, int, Callable[[], bool]], ArrayModel]


@dataclass(frozen=True)
class Recipe:
    info: RecipeInfo
    fit: Fit  # fit(recipe name, events, hyperparameters, seed, should_stop) -> model
    params: Callable[[dict | None], dict] = lambda solution_config: {}
    # performHPO's candidates from (solutionConfig, default hyperparameters); None: nothing to tune
    search_space: Callable[[dict | None, dict], list[dict]] | None = None
    supports_update: bool = False


def _ignore_params(model_fit: Callable[[str, Events], ArrayModel]) -> Fit:
    return lambda recipe, events, params, seed, should_stop: model_fit(recipe, events)


def _factor_recipe(name: str, recipe_type: str, description: str, *, update: bool) -> Recipe:
    # -v2 recipes also learn from the items dataset's categorical fields, as AWS's v2 can.
    return Recipe(
        RecipeInfo(name, recipe_type, description, update),
        partial(defaults.fit, use_metadata=name.endswith("-v2")),
        defaults.params_from_config,
        defaults.search_space,
        supports_update=update,
    )


def _similar_items_recipe(name: str) -> Recipe:
    return Recipe(
        RecipeInfo(
            name, "RELATED_ITEMS", "Items like a given item, from item factors of implicit ALS.", False
        ),
        ItemSimilarityModel.fit,
        factorization.params_from_config,
        factorization.search_space,
    )


_USER_PERSONALIZATION = (
    "Items for a user from EASE (small catalogues) or implicit-feedback ALS; new events folded in, "
    "cold users get popular items."
)
_RANKING = "Reorders a list of items for a user by EASE or implicit-feedback ALS scores."
_RECIPE_LIST = [
    _factor_recipe("aws-user-personalization", "USER_PERSONALIZATION", _USER_PERSONALIZATION, update=True),
    _factor_recipe("aws-user-personalization-v2", "USER_PERSONALIZATION", _USER_PERSONALIZATION, update=True),
    _factor_recipe("aws-personalized-ranking", "PERSONALIZED_RANKING", _RANKING, update=False),
    _factor_recipe("aws-personalized-ranking-v2", "PERSONALIZED_RANKING", _RANKING, update=False),
    # User segmentation: the user-personalization model, read the other way round (users for an
    # item) by batch segment jobs (backend/batch_segments.py).
    _factor_recipe(
        "aws-item-affinity",
        "USER_SEGMENTATION",
        "Users most likely to interact with an item, from the user-personalization model's scores.",
        update=False,
    ),
    _similar_items_recipe("aws-similar-items"),
    _similar_items_recipe("aws-sims"),
    Recipe(
        RecipeInfo(
            "aws-trending-now",
            "POPULAR_ITEMS",
            "Items whose interactions grow fastest in the newest tenth of the data's time span.",
            False,
        ),
        _ignore_params(TrendingModel.fit),
    ),
    Recipe(
        RecipeInfo(
            "aws-popularity-count",
            "POPULAR_ITEMS",
            "Recommends the items with the most events across all users.",
            False,
        ),
        _ignore_params(PopularityModel.fit),
    ),
]
_RECIPES: dict[str, Recipe] = {recipe.info.name: recipe for recipe in _RECIPE_LIST}
RECIPES: dict[str, RecipeInfo] = {name: recipe.info for name, recipe in _RECIPES.items()}
MODEL_CLASSES: dict[str, type[ArrayModel]] = {
    cls.kind: cls for cls in (PopularityModel, TrendingModel, FactorModel, EaseModel, ItemSimilarityModel)
}


def train(
    request: TrainingRequest,
    data: TrainingData,
    *,
    previous: TrainedModel | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[TrainedModel, dict[str, float]]:
    recipe = _RECIPES.get(request.recipe)
    if recipe is None:
        raise ValueError(f"recipe {request.recipe!r} is not one of {sorted(_RECIPES)}")
    if request.training_mode not in TRAINING_MODES:
        raise ValueError(f"trainingMode {request.training_mode!r} is not one of {TRAINING_MODES}")
    if request.training_mode == "UPDATE":
        if not recipe.supports_update:
            raise ValueError(
                f"trainingMode UPDATE is not supported by recipe {request.recipe}; use trainingMode FULL"
            )
        if not isinstance(previous, FactorModel | EaseModel) or previous.recipe != request.recipe:
            raise ValueError("trainingMode UPDATE needs an active FULL solution version of the same solution")
    params = recipe.params(request.solution_config)
    events = select_events(request, data)
    _check_stop(should_stop)
    if request.training_mode == "UPDATE":
        model = previous.updated(events, should_stop)
        model.metrics = dict(previous.metrics)
        return model, dict(model.metrics)

    holdout = metrics.Holdout(events, metrics.split_seed(events, request.seed))
    if request.perform_hpo and recipe.search_space is not None:
        params = _tune(recipe, holdout.training, params, request, should_stop)
    evaluated = recipe.fit(request.recipe, holdout.training, params, request.seed, should_stop)
    _check_stop(should_stop)
    evaluation = metrics.score_model(evaluated, holdout, len(events.catalog_item_ids))
    model = recipe.fit(request.recipe, events, params, request.seed, should_stop)
    model.metrics = evaluation
    return model, dict(evaluation)


def _tune(
    recipe: Recipe, events: Events, base: dict, request: TrainingRequest, should_stop: Callable[[], bool]
) -> dict:
    validation = metrics.Holdout(events, request.seed + 1)
    best, best_score = base, -1.0
    for candidate in recipe.search_space(request.solution_config, base):
        _check_stop(should_stop)
        model = recipe.fit(request.recipe, validation.training, candidate, request.seed, should_stop)
        score = metrics.score_model(model, validation, len(events.catalog_item_ids))[HPO_OBJECTIVE]
        if score > best_score:  # the first of equal candidates wins: deterministic
            best, best_score = candidate, score
    return best


def _check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise TrainingStopped("solution version creation stopped")


def load_model(directory: Path) -> TrainedModel:
    manifest, arrays = read_saved(directory)
    model_class = MODEL_CLASSES.get(manifest.get("kind"))
    if model_class is None:
        raise ValueError(f"{directory}: unknown model kind {manifest.get('kind')!r}")
    return model_class.restore(manifest, arrays)
