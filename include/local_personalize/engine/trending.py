"""aws-trending-now: items whose interactions grow fastest, the same list for every user.

The recent window is the newest tenth of the data's time span; the baseline window is the tenth
before it. An item's growth is its recent (weighted) event count minus what its baseline count
predicts once scaled by the overall change in traffic, so a busier day lifts no item by itself.
Scores are each item's share of the total positive growth; items that do not grow come after, in
order of recent events (a tiny tie-breaking score keeps that order without looking like growth).
"""

from __future__ import annotations

import numpy as np

from include.local_personalize.engine.base import ArrayModel
from include.local_personalize.engine.interactions import Events, IdIndex

WINDOW_SHARE = 0.1
TIE_BREAK = 1e-9


def _counts(positions: np.ndarray, weights: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(positions[mask], weights=weights[mask], minlength=size)


class TrendingModel(ArrayModel):
    kind = "trending"

    @classmethod
    def fit(cls, recipe: str, events: Events) -> TrendingModel:
        frame = events.frame
        items = IdIndex(np.asarray(sorted(frame["item"].unique()), dtype=str))
        positions = items.lookup(frame["item"].to_numpy())
        weights = frame["weight"].to_numpy(dtype=np.float64)
        timestamps = frame["timestamp"].to_numpy()
        newest, oldest = int(timestamps.max()), int(timestamps.min())
        window = max(1, int((newest - oldest) * WINDOW_SHARE))
        recent_mask = timestamps > newest - window
        baseline_mask = (timestamps > newest - 2 * window) & ~recent_mask
        recent = _counts(positions, weights, recent_mask, len(items))
        baseline = _counts(positions, weights, baseline_mask, len(items))
        traffic_change = recent.sum() / baseline.sum() if baseline.sum() > 0 else 1.0
        growth = np.clip(recent - baseline * traffic_change, 0.0, None)
        scores = growth / growth.sum() if growth.sum() > 0 else growth
        recent_share = recent / recent.sum() if recent.sum() > 0 else recent
        arrays = {"trend": scores + TIE_BREAK * recent_share}
        return cls(recipe, items, arrays, {"window_seconds": window, "newest_timestamp": newest}, {})

    def preferences(self, user_id, item_id, recent):
        return self.arrays["trend"], np.zeros(0, dtype=np.int64)
