"""aws-popularity-count: items by how often they were interacted with (weighted event count)."""

from __future__ import annotations

import numpy as np

from include.local_personalize.engine.base import ArrayModel
from include.local_personalize.engine.interactions import Events, IdIndex


def popularity(events: Events, items: IdIndex) -> np.ndarray:
    """Each item's share of all (weighted) events, in [0, 1]; 0 for items without events."""
    positions = items.lookup(events.frame["item"].to_numpy())
    known = positions >= 0
    counts = np.bincount(
        positions[known], weights=events.frame["weight"].to_numpy()[known], minlength=len(items)
    )
    total = counts.sum()
    return counts / total if total > 0 else counts


class PopularityModel(ArrayModel):
    kind = "popularity"

    @classmethod
    def fit(cls, recipe: str, events: Events) -> PopularityModel:
        items = IdIndex(np.asarray(sorted(events.frame["item"].unique()), dtype=str))
        return cls(recipe, items, {"popularity": popularity(events, items)}, {}, {})

    def preferences(self, user_id, item_id, recent):
        return self.arrays["popularity"], np.zeros(0, dtype=np.int64)
