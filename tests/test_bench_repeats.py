"""bench/repeats.py: interleaved pairs alternate their order, and ratios summarise as median and spread."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("bench_repeats", REPO_ROOT / "bench" / "repeats.py")
repeats = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = repeats  # dataclasses look their module up there
_spec.loader.exec_module(repeats)


def test_pairs_alternate_which_side_runs_first():
    calls = []

    def run(side):
        def measure():
            calls.append(side)
            return {"seconds": len(calls)}

        return measure

    pairs = repeats.interleaved(4, run("baseline"), run("ours"))
    assert calls == ["baseline", "ours", "ours", "baseline", "baseline", "ours", "ours", "baseline"]
    # Each pair keeps (baseline, ours) whatever ran first.
    assert [(b["seconds"], o["seconds"]) for b, o in pairs] == [(1, 2), (4, 3), (5, 6), (8, 7)]
    with pytest.raises(ValueError, match="at least 1"):
        repeats.interleaved(0, run("baseline"), run("ours"))


def test_ratio_spread_reports_median_quartiles_and_range():
    pairs = [({"t": 1.0}, {"t": r}) for r in (0.9, 1.6, 1.1, 1.0, 1.2)]
    figure = repeats.ratio_spreads(pairs, {"ratio": "t"})["ratio"]
    assert (figure.median, figure.low, figure.high, figure.n) == (1.1, 0.9, 1.6, 5)
    assert (figure.q1, figure.q3) == pytest.approx((1.0, 1.2))
    assert str(figure) == "1.10 (IQR 1.00-1.20, range 0.90-1.60, n=5)"
    assert str(repeats.spread([1.14])) == "1.14 (one sample: no spread)"


def test_each_pair_gets_its_index_and_both_sides_share_its_data():
    """A benchmark that generates data gives each pair its own seed; both sides of a pair measure
    the same data, made once per pair and dropped when the next pair makes its own."""
    made, calls = [], []

    def make(index):
        made.append(index)
        return {"seed": 100 + index}

    data = repeats.per_pair(make)

    def run(side):
        def measure(index):
            calls.append((side, index))
            return {"seed": data(index)["seed"]}

        return measure

    pairs = repeats.interleaved_over(3, run("baseline"), run("ours"))
    assert calls == [
        ("baseline", 0), ("ours", 0), ("ours", 1), ("baseline", 1), ("baseline", 2), ("ours", 2)
    ]  # fmt: skip
    assert [(b["seed"], o["seed"]) for b, o in pairs] == [(100, 100), (101, 101), (102, 102)]
    assert made == [0, 1, 2]
    assert data(0) == {"seed": 100} and made == [0, 1, 2, 0]  # only the last pair's data is held
    with pytest.raises(ValueError, match="at least 1"):
        repeats.interleaved_over(0, run("baseline"), run("ours"))
