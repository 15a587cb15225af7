"""The contract between the local Personalize service and its training engine: what the service calls.

The service (HTTP, state, jobs) calls only what is declared here; the engine knows nothing of HTTP.
Implementations live in one module per recipe, chosen by `registry`; metrics in `metrics.py`; the
types both sides share in `interface.py` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from include.local_personalize.engine import registry
from include.local_personalize.engine.interface import (
    InsufficientDataError,
    RecipeInfo,
    TrainedModel,
    TrainingData,
    TrainingRequest,
    TrainingStopped,
)

__all__ = [
    "InsufficientDataError",
    "RecipeInfo",
    "TrainedModel",
    "TrainingData",
    "TrainingRequest",
    "TrainingStopped",
    "load_model",
    "supported_recipes",
    "train",
]


def train(
    request: TrainingRequest,
    data: TrainingData,
    *,
    previous: TrainedModel | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[TrainedModel, dict[str, float]]:
    """Evaluate with Personalize's offline protocol, then train the served model on all data.

    Returns the model and GetSolutionMetrics' `metrics` map. UPDATE needs `previous`.
    Raises InsufficientDataError, TrainingStopped, or ValueError naming a bad parameter.
    """
    return registry.train(request, data, previous=previous, should_stop=should_stop)


def load_model(directory: Path) -> TrainedModel:
    return registry.load_model(directory)


def supported_recipes() -> dict[str, RecipeInfo]:
    return registry.RECIPES
