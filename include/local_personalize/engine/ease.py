"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", 2019) for small catalogues.

One closed-form item x item weight matrix B: with X the users x items matrix of log2(1 + summed
event weight) and G = X^T X, P = (G + l2 I)^-1 and B = I - P / diag(P) (diagonal forced to 0).
A user's scores are their history row times B, so events that arrive later (`recent_item_ids`)
fold in by adding them to the row: nothing is re-solved. An unknown user with no events gets
popularity, as with ALS.

Cost: G, its inverse and B are dense, so memory and time grow with items^2 and items^3; the
engine picks EASE only up to defaults.EASE_MAX_ITEMS items (see defaults.py for the measured cost).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from include.local_personalize.engine.api import TrainingStopped
from include.local_personalize.engine.base import ArrayModel, softmax, top_k
from include.local_personalize.engine.factorization import confidence
from include.local_personalize.engine.interactions import Events, IdIndex, weight_matrix
from include.local_personalize.engine.item_metadata import item_metadata_rows
from include.local_personalize.engine.popularity import popularity

# How strongly -v2's categorical item metadata ties items together (defaults.py, metadata_gram).
METADATA_WEIGHT = 0.05


def ease_weights(user_items: sp.csr_matrix, l2: float, extra_gram: np.ndarray | None = None) -> np.ndarray:
    """B for this (confidence-valued) users x items matrix; `extra_gram` is added to X^T X (metadata)."""
    gram = (user_items.T @ user_items).toarray().astype(np.float64)
    if extra_gram is not None:
        gram += extra_gram
    gram[np.diag_indices_from(gram)] += l2
    # G + l2 I is symmetric positive definite: a Cholesky inverse costs half of a general one.
    factor, info = scipy.linalg.lapack.dpotrf(gram, lower=False, overwrite_a=True)
    if info != 0:
        raise ValueError(f"EASE: the item Gram matrix is not positive definite (LAPACK info {info})")
    inverse, info = scipy.linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE: inverting the item Gram matrix failed (LAPACK info {info})")
    inverse = np.triu(inverse) + np.triu(inverse, 1).T  # dpotri fills one triangle
    weights = inverse / -np.diag(inverse)
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def metadata_gram(events: Events, items: IdIndex, l2: float) -> np.ndarray | None:
    """What item metadata rows add to X^T X: METADATA_WEIGHT x l2 per shared value, over the mean
    number of values an item holds (so the pull does not grow with the number of fields)."""
    rows = item_metadata_rows(events, items)
    if rows is None:
        return None
    shared = (rows.T @ rows).toarray().astype(np.float64)  # values each pair of items shares
    per_item = max(1.0, float(np.mean(np.diag(shared))))
    return (METADATA_WEIGHT * l2 / per_item) * shared


class EaseModel(ArrayModel):
    """Item x item weights; score = max(history row @ B, 0) / (1 + item's users)^popularity_discount.

    params: l2 (absolute), popularity_discount (beta), item_metadata (bool, -v2).
    """

    kind = "ease"

    @classmethod
    def fit_on(
        cls,
        recipe: str,
        events: Events,
        users: IdIndex,
        items: IdIndex,
        params: dict,
        should_stop: Callable[[], bool],
    ) -> EaseModel:
        weights = weight_matrix(events.frame, users, items)
        if should_stop():
            raise TrainingStopped("solution version creation stopped while training")
        l2 = float(params["l2"])
        extra = metadata_gram(events, items, l2) if params.get("item_metadata") else None
        arrays = {
            "user_ids": users.ids,
            "item_weights": ease_weights(confidence(weights), l2, extra),
            "history_indptr": weights.indptr.astype(np.int64),
            "history_indices": weights.indices.astype(np.int32),
            "history_weights": weights.data.astype(np.float32),
            "item_user_counts": np.diff(weights.tocsc().indptr).astype(np.float32),
            "popularity": popularity(events, items),
        }
        return cls(recipe, items, arrays, dict(params), {})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.users = IdIndex(self.arrays["user_ids"])

    def _row(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        row = np.bincount(items, weights=weights, minlength=len(self.items))
        return np.log2(1.0 + row).astype(np.float32)

    def _discounted(self, raw: np.ndarray) -> np.ndarray:
        beta = float(self.params.get("popularity_discount", 0.0))
        if beta == 0.0:
            return raw
        return np.maximum(raw, 0.0) * (1.0 + self.arrays["item_user_counts"]) ** -beta

    def preferences(self, user_id, item_id, recent):
        row = self.users.positions.get(user_id) if user_id is not None else None
        if row is None and not len(recent):
            return self.arrays["popularity"], np.zeros(0, dtype=np.int64)
        items, weights = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if row is not None:
            start, end = self.arrays["history_indptr"][row : row + 2]
            items = self.arrays["history_indices"][start:end].astype(np.int64)
            weights = self.arrays["history_weights"][start:end]
        items = np.concatenate([items, recent.astype(np.int64)])
        weights = np.concatenate([weights, np.ones(len(recent), dtype=np.float32)])
        raw = self._discounted(self._row(items, weights) @ self.arrays["item_weights"])
        # softmax of the raw scores: scores in [0, 1] that keep the ranking, as FactorModel's do
        return softmax(raw.astype(np.float64)), np.zeros(0, dtype=np.int64)

    def evaluation_rankings(self, histories, k):
        popular = top_k(self.arrays["popularity"], k, None, np.zeros(0, dtype=np.int64))
        rankings = []
        for start in range(0, len(histories), 512):  # bounded memory: 512 dense score rows at a time
            batch = histories[start : start + 512]
            rows = np.stack([self._row(h.astype(np.int64), np.ones(len(h), dtype=np.float32)) for h in batch])
            scores = self._discounted(rows @ self.arrays["item_weights"])
            for history, row_scores in zip(batch, scores, strict=True):
                if not len(history):
                    rankings.append(popular)  # a cold user gets popularity, as when served
                else:
                    rankings.append(top_k(row_scores, k, None, history.astype(np.int64)))
        return rankings

    def updated(self, events: Events, should_stop: Callable[[], bool]) -> EaseModel:
        """UPDATE: the closed form again on the current events, new users and items added, with
        this version's hyperparameters.

        EASE has no iterations to skip; its catalogue is small by construction (defaults.py), so
        re-solving costs about what folding in would. Known items keep their positions.
        """
        users = self.users.extended(events.frame["user"].to_numpy())
        items = self.items.extended(events.frame["item"].to_numpy())
        return self.fit_on(self.recipe, events, users, items, self.params, should_stop)
