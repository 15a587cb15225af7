"""The recipes under their AWS names, and training / loading by recipe (see api.py for the contract)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from include.local_personalize.engine import metrics
from include.local_personalize.engine.api import RecipeInfo, TrainedModel, TrainingData, TrainingRequest
from include.local_personalize.engine.base import ArrayModel, read_saved
from include.local_personalize.engine.interactions import Events, select_events
from include.local_personalize.engine.popularity import PopularityModel

TRAINING_MODES = ("FULL", "UPDATE", "AUTOTRAIN")  # AUTOTRAIN versions are FULL trainings


@dataclass(frozen=True)
class Recipe:
    info: RecipeInfo
    # fit(recipe name, events, request, should_stop) -> model with metrics unset
    fit: Callable[[str, Events, TrainingRequest, Callable[[], bool]], ArrayModel]
    # update(previous, events, request, should_stop) -> model; None when UPDATE is not supported
    update: Callable[[ArrayModel, Events, TrainingRequest, Callable[[], bool]], ArrayModel] | None = None


def _fit_popularity(recipe, events, request, should_stop):
    return PopularityModel.fit(recipe, events)


_RECIPES: dict[str, Recipe] = {
    "aws-popularity-count": Recipe(
        RecipeInfo(
            "aws-popularity-count",
            "POPULAR_ITEMS",
            "Recommends the items with the most events across all users.",
            False,
        ),
        _fit_popularity,
    ),
}
RECIPES: dict[str, RecipeInfo] = {name: recipe.info for name, recipe in _RECIPES.items()}
MODEL_CLASSES: dict[str, type[ArrayModel]] = {cls.kind: cls for cls in (PopularityModel,)}


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
        if recipe.update is None:
            raise ValueError(
                f"trainingMode UPDATE is not supported by recipe {request.recipe}; use trainingMode FULL"
            )
        if not isinstance(previous, ArrayModel) or previous.recipe != request.recipe:
            raise ValueError("trainingMode UPDATE needs an active FULL solution version of the same solution")
    events = select_events(request, data)
    if request.training_mode == "UPDATE":
        model = recipe.update(previous, events, request, should_stop)
        # An UPDATE brings in new items and events; it is not evaluated again (no retraining).
        model.metrics = dict(previous.metrics)
        return model, dict(model.metrics)
    fit = partial(recipe.fit, request.recipe, request=request, should_stop=should_stop)
    evaluation = metrics.evaluate(fit, events, request.seed, should_stop)
    model = fit(events)
    model.metrics = evaluation
    return model, dict(evaluation)


def load_model(directory: Path) -> TrainedModel:
    manifest, arrays = read_saved(directory)
    model_class = MODEL_CLASSES.get(manifest.get("kind"))
    if model_class is None:
        raise ValueError(f"{directory}: unknown model kind {manifest.get('kind')!r}")
    return model_class.restore(manifest, arrays)
