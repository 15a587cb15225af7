"""The types of the contract between the local Personalize service and its training engine.

Imported by every engine module and by `api`, and importing none of them, so the engine's modules
depend one way: interface <- recipes' models <- registry <- api. The service calls `api` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class InsufficientDataError(ValueError):
    """Data below Personalize's training minimums; the message is Personalize's."""


class TrainingStopped(RuntimeError):
    """StopSolutionVersionCreation arrived while training."""


@dataclass(frozen=True)
class RecipeInfo:
    name: str  # e.g. "aws-user-personalization"; ARN is arn:aws:personalize:::recipe/<name>
    recipe_type: str  # USER_PERSONALIZATION | PERSONALIZED_RANKING | RELATED_ITEMS | POPULAR_ITEMS
    description: str
    supports_update: bool  # trainingMode UPDATE allowed


@dataclass
class TrainingData:
    """What the dataset group holds when a solution version starts.

    interactions: USER_ID, ITEM_ID (str), TIMESTAMP (int epoch seconds), and when present
    EVENT_TYPE (str), EVENT_VALUE (float, may be NaN), plus any other schema columns.
    items / users: ITEM_ID / USER_ID plus metadata columns, or None when the dataset is absent.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None


@dataclass(frozen=True)
class TrainingRequest:
    recipe: str
    training_mode: str = "FULL"  # FULL | UPDATE
    event_type: str | None = None  # CreateSolution eventType: train only on this event type
    perform_hpo: bool = False
    solution_config: dict | None = (
        None  # CreateSolution solutionConfig, as sent (eventValueThreshold is a string)
    )
    seed: int = 42


class TrainedModel(ABC):
    recipe: str

    @abstractmethod
    def save(self, directory: Path) -> None: ...

    @abstractmethod
    def recommend(
        self,
        user_id: str | None = None,
        *,
        item_id: str | None = None,
        num_results: int = 25,
        recent_item_ids: Sequence[str] = (),
        allowed_item_ids: Collection[str] | None = None,
        excluded_item_ids: Collection[str] = (),
    ) -> list[tuple[str, float]]:
        """Top items for a user (or, for RELATED_ITEMS, like `item_id`), best first, scores in [0, 1].

        recent_item_ids: interactions that arrived after training (PutEvents), folded in.
        Filters arrive as allowed/excluded ids and are applied before top-k.
        """

    @abstractmethod
    def rank(
        self, user_id: str, item_ids: Sequence[str], *, recent_item_ids: Sequence[str] = ()
    ) -> list[tuple[str, float]]:
        """item_ids reordered for the user, best first; items the model never saw go last."""

    @property
    @abstractmethod
    def item_ids(self) -> Sequence[str]: ...
