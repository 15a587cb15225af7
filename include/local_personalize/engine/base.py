"""What every recipe's model shares: id lookup, filtered top-k, ranking, and persistence.

A model is a handful of numpy arrays plus a small JSON manifest. It is saved as `arrays.npz`
(loaded with allow_pickle=False) and `manifest.json`, so loading runs no stored code.
Scoring one request is array arithmetic over the catalogue plus `argpartition`: no Python loop
over items.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
from threadpoolctl import ThreadpoolController

from include.local_personalize.engine.interactions import IdIndex
from include.local_personalize.engine.interface import TrainedModel

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
FORMAT_VERSION = 1
MAX_RESULTS = 500


@cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # finding the loaded BLAS takes milliseconds: once per process


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """BLAS on one thread: a multi-threaded matrix-vector product on a busy 2-core machine waits for
    its threads (12 ms instead of 0.7 ms at p50, measured), and implicit parallelises on its own."""
    with _threadpools().limit(limits=1, user_api="blas"):
        yield


class ArrayModel(TrainedModel):
    """A model whose state is `arrays` (numpy) and `params` (JSON-able); subclasses score."""

    kind: ClassVar[str]  # persisted, selects the class on load

    def __init__(
        self, recipe: str, items: IdIndex, arrays: dict[str, np.ndarray], params: dict, metrics: dict
    ) -> None:
        self.recipe = recipe
        self.items = items
        self.arrays = arrays
        self.params = params
        self.metrics = metrics  # offline metrics of the version; an UPDATE carries them over

    @property
    def item_ids(self) -> Sequence[str]:
        return self.items.ids.tolist()

    # --- scoring, implemented per recipe -------------------------------------------------------
    def preferences(
        self, user_id: str | None, item_id: str | None, recent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores in [0, 1] for every catalogue item, and item positions that must not be returned.

        recent: positions of items the user interacted with after training (or the evaluation input).
        """
        raise NotImplementedError

    def evaluation_rankings(self, histories: list[np.ndarray], k: int) -> list[np.ndarray]:
        """Top-k item positions per history (oldest first), history items excluded (metrics.py)."""
        rankings = []
        for history in histories:
            scores, excluded = self.preferences(None, None, history)
            rankings.append(top_k(scores, k, None, np.concatenate([excluded, history])))
        return rankings

    # --- the contract --------------------------------------------------------------------------
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
        if not 1 <= num_results <= MAX_RESULTS:
            raise ValueError(f"numResults must be between 1 and {MAX_RESULTS}, got {num_results}")
        with single_blas_thread():
            scores, excluded = self.preferences(user_id, item_id, self.items.known(recent_item_ids))
        allowed = None if allowed_item_ids is None else self.items.known(allowed_item_ids)
        excluded = np.concatenate([excluded, self.items.known(excluded_item_ids)])
        chosen = top_k(scores, num_results, allowed, excluded)
        ids = self.items.ids
        return [(str(ids[i]), float(scores[i])) for i in chosen]

    def rank(
        self, user_id: str, item_ids: Sequence[str], *, recent_item_ids: Sequence[str] = ()
    ) -> list[tuple[str, float]]:
        with single_blas_thread():
            scores, _ = self.preferences(user_id, None, self.items.known(recent_item_ids))
        positions = self.items.lookup(np.asarray(list(item_ids), dtype=object))
        known = positions >= 0
        list_scores = np.where(known, scores[np.where(known, positions, 0)], 0.0)
        total = list_scores.sum()
        if total > 0:
            list_scores = list_scores / total  # scores relative to the input list, as Personalize's
        # Known items first by score; unknown items keep their input order at the end.
        order = np.lexsort((np.arange(len(positions)), -list_scores, ~known))
        return [(str(item_ids[i]), float(list_scores[i])) for i in order]

    # --- persistence ---------------------------------------------------------------------------
    @classmethod
    def restore(cls, manifest: dict, arrays: dict[str, np.ndarray]) -> ArrayModel:
        arrays = dict(arrays)
        items = IdIndex(arrays.pop("item_ids"))
        return cls(manifest["recipe"], items, arrays, manifest["params"], manifest["metrics"])

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"item_ids": self.items.ids, **self.arrays}
        with open(directory / ARRAYS, "wb") as handle:
            np.savez(handle, **arrays)
        manifest = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "recipe": self.recipe,
            "params": self.params,
            "metrics": self.metrics,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_saved(directory: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Manifest and arrays of a saved model; ValueError naming the file when it is not one."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValueError(f"{directory} holds no saved model ({MANIFEST} is missing)") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{directory / MANIFEST}: unsupported format {manifest.get('format')!r}")
    with np.load(directory / ARRAYS, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return manifest, arrays


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None, excluded: np.ndarray) -> np.ndarray:
    """Positions of the k best scores among allowed minus excluded, best first, ties by position."""
    if allowed is not None:
        candidate = np.full(len(scores), -np.inf)
        candidate[allowed] = scores[allowed]
    else:
        candidate = np.array(scores, dtype=np.float64)
    if len(excluded):
        candidate[excluded.astype(np.int64)] = -np.inf
    available = int(np.isfinite(candidate).sum())
    k = min(k, available)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(-candidate, k - 1)[:k] if k < len(candidate) else np.arange(len(candidate))
    # argpartition may pick any of several tied items at the boundary; take all ties, then sort.
    cutoff = candidate[best].min()
    best = np.flatnonzero(candidate >= cutoff) if np.sum(candidate >= cutoff) > k else best
    order = np.lexsort((best, -candidate[best]))
    return best[order][:k]


def softmax(raw: np.ndarray) -> np.ndarray:
    shifted = np.exp(raw - raw.max())
    return shifted / shifted.sum()
