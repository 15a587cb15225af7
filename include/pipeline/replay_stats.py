"""Noise made visible: a paired bootstrap over the held-out users.

Every model was scored on the same users (replay.py), so one resample of users (drawn with
replacement, numpy's default_rng(seed)) gives every model's mean on the same resampled users,
and the difference challenger - champion is taken within the resample: the user-to-user
variation both models share cancels, which is why a paired interval is much narrower than the two
models' own intervals side by side. Percentile intervals; coverage is recomputed per resample from
the resampled users' lists, and its interval is shifted by the resamples' bias (a resample has
fewer distinct users, so fewer distinct items). Pure and deterministic: the same scores and seed give the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from include.pipeline.replay import UserScores

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    value: float  # on all held-out users
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [round(self.value, 6), round(self.low, 6), round(self.high, 6)]

    @classmethod
    def from_list(cls, values) -> Interval:
        return cls(*(float(v) for v in values))

    def text(self, signed: bool = False) -> str:
        sign = "+" if signed else ""
        return f"{self.value:{sign}.4f} [{self.low:{sign}.4f}, {self.high:{sign}.4f}]"


@dataclass(frozen=True)
class ReplayResult:
    """Each model's metrics and each model's difference from the reference, with intervals."""

    metrics: Mapping[str, Mapping[str, Interval]]  # role -> metric -> interval
    differences: Mapping[str, Mapping[str, Interval]]  # role -> metric -> (role - reference)
    reference: str
    users: int
    resamples: int
    confidence: float
    seed: int

    def as_dict(self) -> dict:
        return {
            "metrics": {r: {m: i.as_list() for m, i in ms.items()} for r, ms in self.metrics.items()},
            "differences": {r: {m: i.as_list() for m, i in ms.items()} for r, ms in self.differences.items()},
            "reference": self.reference,
            "users": self.users,
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ReplayResult:
        def intervals(block):
            return {r: {m: Interval.from_list(v) for m, v in ms.items()} for r, ms in block.items()}

        return cls(
            metrics=intervals(data["metrics"]),
            differences=intervals(data["differences"]),
            reference=data["reference"],
            users=int(data["users"]),
            resamples=int(data["resamples"]),
            confidence=float(data["confidence"]),
            seed=int(data["seed"]),
        )

    def point(self, role: str) -> dict[str, float]:
        return {m: i.value for m, i in self.metrics[role].items()}


def bootstrap(
    scores: Mapping[str, UserScores],
    *,
    reference: str,
    resamples: int,
    seed: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> ReplayResult:
    """Intervals of every model's metrics and of each model minus `reference`, paired by user."""
    if reference not in scores:
        raise ValueError(f"reference {reference!r} is not among the scored models {sorted(scores)}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    users = scores[reference].users
    for role, score in scores.items():
        if score.users != users:
            raise ValueError(
                f"{role} was scored on other users than {reference}: the bootstrap pairs by user"
            )
    n = len(users)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    tail = (1 - confidence) / 2 * 100
    samples = {role: _resampled_means(score, draws) for role, score in scores.items()}

    def interval(name: str, value: float, sample: np.ndarray) -> Interval:
        low, high = np.percentile(sample, [tail, 100 - tail])
        if name == "coverage":
            # A resample holds ~63% of the distinct users, so it covers fewer items than all users
            # do: the percentiles sit below the value. Shift them by that bias (value - median).
            shift = value - float(np.median(sample))
            low, high = low + shift, high + shift
        return Interval(float(value), float(low), float(high))

    metrics = {
        role: {name: interval(name, value, samples[role][name]) for name, value in score.means().items()}
        for role, score in scores.items()
    }
    base = scores[reference].means()
    differences = {
        role: {
            name: interval(name, value - base[name], samples[role][name] - samples[reference][name])
            for name, value in score.means().items()
        }
        for role, score in scores.items()
        if role != reference
    }
    return ReplayResult(metrics, differences, reference, n, resamples, confidence, seed)


def _resampled_means(score: UserScores, draws: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric's mean on every resample (rows of `draws` are user positions)."""
    means = {name: values[draws].mean(axis=1) for name, values in score.per_user.items()}
    # Coverage is not a mean of per-user values: count the distinct items of the drawn lists.
    vocabulary: dict[str, int] = {}
    width = max((len(ranked) for ranked in score.lists), default=0)
    codes = np.full((len(score.lists), max(width, 1)), -1, dtype=np.int64)
    for row, ranked in enumerate(score.lists):
        codes[row, : len(ranked)] = [vocabulary.setdefault(item, len(vocabulary)) for item in ranked]
    covered = np.empty(len(draws))
    present = np.zeros(len(vocabulary) + 1, dtype=bool)
    for index, draw in enumerate(draws):
        present[:] = False
        present[codes[draw].ravel()] = True  # -1 (padding) marks the spare last slot
        covered[index] = np.count_nonzero(present[:-1])
    means["coverage"] = covered / score.catalog_size if score.catalog_size else np.zeros(len(draws))
    return means
