"""Implicit-feedback matrix factorization (implicit's ALS) behind the personalised recipes.

aws-user-personalization(-v2) and aws-personalized-ranking(-v2) serve `FactorModel` when
defaults.py picks ALS (large catalogues, or hidden_dimension given); aws-similar-items and aws-sims serve `ItemSimilarityModel`, cosine similarity of the same item
factors (item-item co-occurrence would need an items x items matrix; the factors are already a
compressed co-occurrence and keep inference to one vector product).

Confidence of a user-item pair is alpha * log2(1 + summed event weight): one event counts alpha,
repeats add less and less, so a user who bought the same thing 50 times does not swamp the rest.
A user seen in training is scored with their trained factors; events that arrived later
(`recent_item_ids`) are folded in by re-solving the user's least-squares problem against fixed
item factors (what implicit's recalculate_user does), and an unknown user with no events gets
popularity, as cold users get in Personalize.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.topk import topk

from include.local_personalize.engine.api import TrainingStopped
from include.local_personalize.engine.base import ArrayModel, single_blas_thread, softmax, top_k
from include.local_personalize.engine.interactions import Events, IdIndex, weight_matrix
from include.local_personalize.engine.item_metadata import item_metadata_rows
from include.local_personalize.engine.popularity import popularity

# Chosen on the benchmark's clustered data (bench/bench_engine.py), where users have ~20 events:
# strong regularisation and a modest dimension generalise best; performHPO searches around them.
# The similar-items recipes use them as they are; user-personalization and ranking start from them
# and take factors and alpha from the data's shape (defaults.py).
DEFAULTS = {"factors": 32, "regularization": 10.0, "alpha": 10.0, "iterations": 15}
# What AWS's algorithmHyperParameters mean here; the others are accepted and ignored, as AWS does.
HYPERPARAMETER_NAMES = {"hidden_dimension": "factors", "item_id_hidden_dimension": "factors"}
MIN_FACTORS, MAX_FACTORS = 8, 512
# Below this many user-item pairs one thread is faster: implicit's OpenMP threads spin between the
# many short parallel steps, which costs 10x on a busy 2-core machine.
PARALLEL_MIN_PAIRS = 200_000
FILTERED_SCORE = -1e38  # implicit's top-k gives filtered items -FLT_MAX


def params_from_config(solution_config: dict | None) -> dict:
    params = dict(DEFAULTS)
    for name, value in ((solution_config or {}).get("algorithmHyperParameters") or {}).items():
        target = HYPERPARAMETER_NAMES.get(name)
        if target is None:
            continue
        try:
            factors = int(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"solutionConfig.algorithmHyperParameters.{name} must be an integer, got {value!r}"
            ) from None
        if not MIN_FACTORS <= factors <= MAX_FACTORS:
            raise ValueError(
                f"solutionConfig.algorithmHyperParameters.{name} must be between "
                f"{MIN_FACTORS} and {MAX_FACTORS}, got {factors}"
            )
        params[target] = factors
    return params


def search_space(solution_config: dict | None, base: dict) -> list[dict]:
    """performHPO's candidates: a small grid around `base`, within hpoConfig's hidden_dimension range."""
    ranges = ((solution_config or {}).get("hpoConfig") or {}).get("algorithmHyperParameterRanges") or {}
    low, high = MIN_FACTORS, MAX_FACTORS
    for entry in ranges.get("integerHyperParameterRanges") or []:
        if HYPERPARAMETER_NAMES.get(entry.get("name")) == "factors":
            try:
                low, high = int(entry.get("minValue", low)), int(entry.get("maxValue", high))
            except (TypeError, ValueError):
                raise ValueError(
                    f"solutionConfig.hpoConfig.algorithmHyperParameterRanges: {entry.get('name')} "
                    f"minValue and maxValue must be integers, got {entry!r}"
                ) from None
    others = sorted({min(max(f, low), high) for f in (16, 64)} - {base["factors"]})
    factor_choices = [base["factors"], *others]
    candidates = [{**base, "factors": f} for f in factor_choices]
    candidates += [{**base, "alpha": a} for a in (2.0, 40.0)]
    candidates += [{**base, "regularization": r} for r in (1.0, 50.0)]
    return candidates


def confidence(weights: sp.csr_matrix) -> sp.csr_matrix:
    """log2(1 + summed weight) per pair; implicit multiplies by alpha itself."""
    matrix = weights.copy()
    matrix.data = np.log2(1.0 + matrix.data).astype(np.float32)
    return matrix


def _solver(params: dict, seed: int, pairs: int) -> AlternatingLeastSquares:
    with single_blas_thread():
        return AlternatingLeastSquares(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=float(params["alpha"]),
            iterations=int(params["iterations"]),
            random_state=seed,
            num_threads=0 if pairs >= PARALLEL_MIN_PAIRS else 1,  # 0: all cores
        )


def fit_factors(
    events: Events, params: dict, seed: int, should_stop: Callable[[], bool]
) -> tuple[IdIndex, IdIndex, sp.csr_matrix, AlternatingLeastSquares]:
    users = IdIndex(np.sort(events.frame["user"].unique()).astype(str))
    items = IdIndex(np.sort(events.frame["item"].unique()).astype(str))
    weights = weight_matrix(events.frame, users, items)
    solver = _solver(params, seed, weights.nnz)

    def stop_between_iterations(iteration, elapsed, loss):
        if should_stop():
            raise TrainingStopped("solution version creation stopped while training")

    user_items = confidence(weights)
    metadata = item_metadata_rows(events, items) if params.get("item_metadata") else None
    if metadata is not None:  # -v2: categorical values as extra rows (item_metadata.py)
        user_items = sp.vstack([user_items, metadata], format="csr")
    with single_blas_thread():
        solver.fit(user_items, show_progress=False, callback=stop_between_iterations)
    solver.user_factors = solver.user_factors[: len(users)]  # the real users only
    return users, items, weights, solver


class FactorModel(ArrayModel):
    """User and item factors; score = item_factors @ user_factor, softmax over the catalogue."""

    kind = "factors"

    @classmethod
    def fit(
        cls, recipe: str, events: Events, params: dict, seed: int, should_stop: Callable[[], bool]
    ) -> FactorModel:
        users, items, weights, solver = fit_factors(events, params, seed, should_stop)
        return cls._from_parts(recipe, users, items, weights, solver, popularity(events, items), params)

    @classmethod
    def _from_parts(cls, recipe, users, items, weights, solver, item_popularity, params) -> FactorModel:
        arrays = {
            "user_ids": users.ids,
            "user_factors": np.ascontiguousarray(solver.user_factors, dtype=np.float32),
            "item_factors": np.ascontiguousarray(solver.item_factors, dtype=np.float32),
            # Each user's summed event weights per item, for folding in events that arrive later.
            "history_indptr": weights.indptr.astype(np.int64),
            "history_indices": weights.indices.astype(np.int32),
            "history_weights": weights.data.astype(np.float32),
            "popularity": item_popularity,
        }
        return cls(recipe, items, arrays, dict(params), {})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.users = IdIndex(self.arrays["user_ids"])
        factors = self.arrays["item_factors"].astype(np.float64)
        self._item_factors = self.arrays["item_factors"]
        self._gram = factors.T @ factors  # Y^T Y, shared by every fold-in

    # --- scoring -------------------------------------------------------------------------------
    def preferences(self, user_id, item_id, recent):
        row = self.users.positions.get(user_id) if user_id is not None else None
        if row is None and not len(recent):
            return self.arrays["popularity"], np.zeros(0, dtype=np.int64)
        if len(recent):
            items, weights = self._history(row)
            items = np.concatenate([items, recent])
            weights = np.concatenate([weights, np.ones(len(recent), dtype=np.float32)])
            user_factor = self._fold_in(items, weights)
        else:
            user_factor = self.arrays["user_factors"][row]
        return softmax(self._item_factors @ user_factor.astype(np.float32)), np.zeros(0, dtype=np.int64)

    def _history(self, row: int | None) -> tuple[np.ndarray, np.ndarray]:
        if row is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        start, end = self.arrays["history_indptr"][row : row + 2]
        return (
            self.arrays["history_indices"][start:end].astype(np.int64),
            self.arrays["history_weights"][start:end],
        )

    def _fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Least-squares user factor for these (item, weight) events against fixed item factors.

        Same confidence as training and the same equation as implicit's solver:
        (Y^T Y + reg I + Y_s^T (C_s - I) Y_s) x = Y_s^T C_s 1.
        """
        unique, inverse = np.unique(items, return_inverse=True)
        summed = float(self.params["alpha"]) * np.log2(1.0 + np.bincount(inverse, weights=weights))
        factors = self._item_factors[unique].astype(np.float64)
        matrix = self._gram + float(self.params["regularization"]) * np.eye(len(self._gram))
        matrix += factors.T @ ((summed - 1.0)[:, None] * factors)
        return np.linalg.solve(matrix, factors.T @ summed)

    def evaluation_rankings(self, histories, k):
        solver = self._solver(sum(len(h) for h in histories))
        rows = sp.csr_matrix(
            (
                np.ones(sum(len(h) for h in histories), dtype=np.float32),
                np.concatenate(histories) if histories else np.zeros(0, dtype=np.int64),
                np.concatenate([[0], np.cumsum([len(h) for h in histories])]),
            ),
            shape=(len(histories), len(self.items)),
        )
        rows.sum_duplicates()
        rows.data = np.log2(1.0 + rows.data)
        k = min(k, len(self.items))
        with single_blas_thread():
            user_factors = solver.recalculate_user(np.arange(len(histories)), rows)
            # implicit's C++ top-k: the product, history filtering and selection in one batched pass.
            best, scores = topk(
                self._item_factors, user_factors, k, filter_query_items=rows, num_threads=solver.num_threads
            )
        popular = top_k(self.arrays["popularity"], k, None, np.zeros(0, dtype=np.int64))
        rankings = []
        for history_length, row_best, row_scores in zip(np.diff(rows.indptr), best, scores, strict=True):
            if history_length == 0:
                rankings.append(popular)  # a cold user gets popularity, as when served
            else:
                rankings.append(row_best[row_scores > FILTERED_SCORE].astype(np.int64))
        return rankings

    def _solver(self, pairs: int) -> AlternatingLeastSquares:
        solver = _solver(self.params, 0, pairs)
        # Copies: implicit's partial_fit_* write into these, and this version must stay as it was.
        solver.user_factors = self.arrays["user_factors"].copy()
        solver.item_factors = self._item_factors.copy()
        return solver

    # --- UPDATE --------------------------------------------------------------------------------
    def updated(self, events: Events, should_stop: Callable[[], bool]) -> FactorModel:
        """Fold in new users, items and events with the item factors of this version fixed.

        Three least-squares passes instead of 2 x iterations: (1) every user against the known
        items, (2) new items against those users, (3) users with events on new items again, now
        that those items have factors. Known items keep their factors, as in Personalize's UPDATE.
        """
        users = self.users.extended(events.frame["user"].to_numpy())
        items = self.items.extended(events.frame["item"].to_numpy())
        weights = weight_matrix(events.frame, users, items)
        user_items = confidence(weights)
        known_items = len(self.items)
        solver = self._solver(user_items.nnz)
        all_users = np.arange(len(users))
        with single_blas_thread():
            solver.partial_fit_users(all_users, user_items[:, :known_items])
            if len(items) > known_items:
                if should_stop():
                    raise TrainingStopped("solution version creation stopped while updating")
                new_items = np.arange(known_items, len(items))
                solver.partial_fit_items(new_items, user_items[:, known_items:].T.tocsr())
                touched = np.unique(user_items[:, known_items:].tocoo().row)
                solver.partial_fit_users(touched, user_items[touched])
        return self._from_parts(
            self.recipe, users, items, weights, solver, popularity(events, items), self.params
        )


class ItemSimilarityModel(ArrayModel):
    """Items like a given item: cosine of ALS item factors; popularity for an unknown item."""

    kind = "item_similarity"

    @classmethod
    def fit(
        cls, recipe: str, events: Events, params: dict, seed: int, should_stop: Callable[[], bool]
    ) -> ItemSimilarityModel:
        _, items, _, solver = fit_factors(events, params, seed, should_stop)
        factors = np.asarray(solver.item_factors, dtype=np.float32)
        norms = np.linalg.norm(factors, axis=1, keepdims=True)
        unit = np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)
        arrays = {"unit_factors": unit, "popularity": popularity(events, items)}
        return cls(recipe, items, arrays, dict(params), {})

    def preferences(self, user_id, item_id, recent):
        """Similarity to `item_id` (or, when absent, to the newest recent item) mapped to [0, 1]."""
        query = self.items.positions.get(item_id) if item_id is not None else None
        if query is None and len(recent):
            query = int(recent[-1])
        if query is None:
            return self.arrays["popularity"], np.zeros(0, dtype=np.int64)
        unit = self.arrays["unit_factors"]
        return (unit @ unit[query] + 1.0) / 2.0, np.array([query], dtype=np.int64)
