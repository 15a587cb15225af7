"""Repeated, interleaved measurements and their summary, for every benchmark with a baseline.

One sample of a ratio on a shared machine is noise: the extraction ratio read 1.14, 0.91 and 1.60 in
three single runs. So a benchmark runs baseline and ours `repeats` times, alternating which goes
first (AB, BA, AB, ...) so a change in the machine's load hits both alike, takes the ratio within
each pair, and reports the median with its spread (interquartile range and full range).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def interleaved(
    repeats: int, baseline: Callable[[], dict], ours: Callable[[], dict]
) -> list[tuple[dict, dict]]:
    """`repeats` (baseline, ours) pairs of measurements, the order alternating from pair to pair."""
    return interleaved_over(repeats, lambda _index: baseline(), lambda _index: ours())


def interleaved_over(
    repeats: int, baseline: Callable[[int], dict], ours: Callable[[int], dict]
) -> list[tuple[dict, dict]]:
    """As `interleaved`, each side called with the pair's index (0, 1, ...): a benchmark that
    generates its data gives each pair its own seed, so the figures are not one data set's luck."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    pairs = []
    for index in range(repeats):
        if index % 2 == 0:
            first = baseline(index)
            pairs.append((first, ours(index)))
        else:
            second = ours(index)
            pairs.append((baseline(index), second))
    return pairs


def per_pair(make: Callable[[int], T]) -> Callable[[int], T]:
    """`make(index)` once per pair: both sides of a pair measure the same data (held until the
    next pair asks for its own, so only one pair's data is in memory)."""
    held: dict[int, T] = {}

    def get(index: int) -> T:
        if index not in held:
            held.clear()
            held[index] = make(index)
        return held[index]

    return get


@dataclass(frozen=True)
class Spread:
    """The median of some samples and how far they spread."""

    median: float
    low: float  # smallest sample
    high: float  # largest sample
    q1: float  # interquartile range: the middle half of the samples
    q3: float
    n: int

    def __str__(self) -> str:
        if self.n == 1:
            return f"{self.median:.2f} (one sample: no spread)"
        return (
            f"{self.median:.2f} (IQR {self.q1:.2f}-{self.q3:.2f}, range {self.low:.2f}-{self.high:.2f}, "
            f"n={self.n})"
        )


def spread(samples: list[float]) -> Spread:
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(statistics.median(ordered), ordered[0], ordered[-1], q1, q3, len(ordered))


def ratio_spreads(pairs: list[tuple[dict, dict]], keys: Mapping[str, str]) -> dict[str, Spread]:
    """For each `label: key`, the spread of ours[key] / baseline[key] over the pairs."""
    return {label: spread([ours[key] / base[key] for base, ours in pairs]) for label, key in keys.items()}
