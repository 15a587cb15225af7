"""From a dataset group's interactions to the weighted events a recipe trains on.

Applies CreateSolution's event selection the way Personalize describes it, then checks the training
minimums on what is left (Personalize counts them after filtering):
- `eventType`: only events of that type.
- `solutionConfig.eventValueThreshold` (a string in the API): only events whose EVENT_VALUE is >= it;
  events without a value do not pass a threshold.
- `solutionConfig.eventsConfig.eventParametersList`: only the listed event types, each with its own
  `eventValueThreshold` and `weight` (the weight is how much one such event counts).
Without eventsConfig every event weighs 1.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from include.local_personalize.engine.api import InsufficientDataError, TrainingData, TrainingRequest
from include.pipeline.rules import REQUIRED_FIELDS, training_shortfall


@dataclass(frozen=True)
class Events:
    """Selected events, in the dataset's row order: user, item (str), timestamp (int64), weight."""

    frame: pd.DataFrame
    catalog_item_ids: frozenset[str]  # every item in the datasets (interactions and items): coverage's base
    item_metadata: pd.DataFrame | None = None  # the items dataset as given (ITEM_ID + fields), if any

    def subset(self, mask: np.ndarray) -> Events:
        return Events(self.frame[mask].reset_index(drop=True), self.catalog_item_ids, self.item_metadata)


def select_events(request: TrainingRequest, data: TrainingData) -> Events:
    """The events this solution trains on; raises InsufficientDataError below Personalize's minimums."""
    interactions = data.interactions
    missing = [c for c in REQUIRED_FIELDS["INTERACTIONS"] if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions lack required columns {missing}")
    config = request.solution_config or {}
    keep = np.ones(len(interactions), dtype=bool)
    weight = np.ones(len(interactions), dtype=np.float32)

    if request.event_type is not None:
        event_types = _event_types(interactions, "eventType")
        keep &= event_types == request.event_type

    if config.get("eventValueThreshold") is not None:
        threshold = _number(config["eventValueThreshold"], "solutionConfig.eventValueThreshold")
        keep &= _event_values(interactions, "solutionConfig.eventValueThreshold") >= threshold

    parameters = (config.get("eventsConfig") or {}).get("eventParametersList")
    if parameters:
        event_types = _event_types(interactions, "solutionConfig.eventsConfig")
        listed = np.zeros(len(interactions), dtype=bool)
        for position, entry in enumerate(parameters):
            where = f"solutionConfig.eventsConfig.eventParametersList[{position}]"
            if not isinstance(entry, dict) or not entry.get("eventType"):
                raise ValueError(f"{where}.eventType is required")
            of_type = event_types == entry["eventType"]
            if entry.get("eventValueThreshold") is not None:
                threshold = _number(entry["eventValueThreshold"], f"{where}.eventValueThreshold")
                of_type &= _event_values(interactions, f"{where}.eventValueThreshold") >= threshold
            event_weight = _number(entry.get("weight", 1.0), f"{where}.weight")
            if not 0.0 <= event_weight <= 1.0:
                raise ValueError(f"{where}.weight must be between 0 and 1, got {event_weight}")
            weight[of_type] = event_weight
            listed |= of_type
        keep &= listed & (weight > 0)

    frame = pd.DataFrame(
        {
            "user": interactions["USER_ID"].astype(str).to_numpy()[keep],
            "item": interactions["ITEM_ID"].astype(str).to_numpy()[keep],
            "timestamp": _timestamps(interactions)[keep],
            "weight": weight[keep],
        }
    )
    shortfall = training_shortfall(frame["user"].tolist())
    if shortfall:
        raise InsufficientDataError(shortfall)
    catalog = set(interactions["ITEM_ID"].astype(str).unique())
    if data.items is not None and "ITEM_ID" in data.items.columns:
        catalog.update(data.items["ITEM_ID"].astype(str))
    return Events(frame, frozenset(catalog), data.items)


def _timestamps(interactions: pd.DataFrame) -> np.ndarray:
    timestamps = pd.to_numeric(interactions["TIMESTAMP"], errors="coerce")
    bad = timestamps.isna().to_numpy() | (timestamps.to_numpy() % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"interactions row {row}: TIMESTAMP {interactions['TIMESTAMP'].iloc[row]!r} is not integer epoch seconds"
        )
    return timestamps.to_numpy().astype(np.int64)


def _event_types(interactions: pd.DataFrame, parameter: str) -> np.ndarray:
    if "EVENT_TYPE" not in interactions.columns:
        raise ValueError(f"{parameter} needs an EVENT_TYPE column in the interactions dataset")
    return interactions["EVENT_TYPE"].astype(str).to_numpy()


def _event_values(interactions: pd.DataFrame, parameter: str) -> np.ndarray:
    if "EVENT_VALUE" not in interactions.columns:
        raise ValueError(f"{parameter} needs an EVENT_VALUE column in the interactions dataset")
    # NaN >= threshold is False: an event without a value does not pass a threshold.
    return pd.to_numeric(interactions["EVENT_VALUE"], errors="coerce").to_numpy(dtype=float)


def _number(value: object, parameter: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{parameter} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{parameter} must be a finite number, got {value!r}")
    return number


VECTORISED_LOOKUP_MIN = 1000  # above this many ids a hashed pandas lookup beats a Python loop
# Filters hand the same frozenset object back for the same filter values (filters.py caches them), so
# remembering a few lookups turns thousands of string lookups per request into one dict hit.
KNOWN_CACHE_SIZE = 64


class IdIndex:
    """Stable string id <-> row position mapping; new ids are appended, old positions never move."""

    def __init__(self, ids: np.ndarray | list[str] = ()) -> None:
        self.ids = np.asarray(ids, dtype=str)
        self.positions: dict[str, int] = {v: i for i, v in enumerate(self.ids.tolist())}
        self._known_cache: OrderedDict[frozenset, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    def extended(self, more: np.ndarray) -> IdIndex:
        """This index plus the ids of `more` it lacks, in order of first appearance."""
        new = pd.unique(pd.Series(more, dtype=object))
        new = [v for v in new if v not in self.positions]
        return IdIndex(np.concatenate([self.ids, np.asarray(new, dtype=str)])) if new else self

    @cached_property
    def _hashed(self) -> pd.Index:
        return pd.Index(self.ids.astype(object))

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Positions of `values`; -1 where unknown."""
        return self._hashed.get_indexer(np.asarray(values, dtype=object)).astype(np.int64)

    def known(self, values: Collection[str]) -> np.ndarray:
        """Positions of the known ids among `values`, unknown ones skipped (in order)."""
        if not isinstance(values, frozenset):
            return self._known(values)
        cached = self._known_cache.get(values)
        if cached is None:
            cached = self._known(values)
            cached.flags.writeable = False  # shared between requests
            self._known_cache[values] = cached
            if len(self._known_cache) > KNOWN_CACHE_SIZE:
                self._known_cache.popitem(last=False)
        else:
            self._known_cache.move_to_end(values)
        return cached

    def _known(self, values: Collection[str]) -> np.ndarray:
        if len(values) > VECTORISED_LOOKUP_MIN:
            found = self.lookup(np.fromiter(values, dtype=object, count=len(values)))
            return found[found >= 0]
        positions = self.positions
        return np.fromiter((positions[v] for v in values if v in positions), dtype=np.int64)


def weight_matrix(frame: pd.DataFrame, users: IdIndex, items: IdIndex) -> sp.csr_matrix:
    """Users x items matrix of summed event weights (repeated events add up)."""
    rows = users.lookup(frame["user"].to_numpy())
    cols = items.lookup(frame["item"].to_numpy())
    known = (rows >= 0) & (cols >= 0)
    matrix = sp.coo_matrix(
        (frame["weight"].to_numpy(dtype=np.float32)[known], (rows[known], cols[known])),
        shape=(len(users), len(items)),
    ).tocsr()
    matrix.sum_duplicates()
    return matrix
