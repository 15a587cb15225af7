"""Demo app DB: generation speed, and whether its structure is learnable.

Generates the default demo shop (1000 users, 500 items, 60 days) and a large one, timing both,
then runs --repeats interleaved pairs (bench/repeats.py), each on its own shop (seed 42, 43, ...):
popularity-count (the baseline) and user-personalization trained with the local service's engine
under Personalize's offline protocol. The demo is only worth running if a per-user model clearly
beats "most popular": goal NDCG@25 and precision@25 >= 1.5x popularity, as medians with their
spread (IQR, range) over the pairs.

Run: PYTHONPATH=.:plugins .venv/bin/python bench/bench_demo_data.py [--repeats 5] [--generate default]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from repeats import interleaved_over, per_pair, ratio_spreads, spread

from include import demo_data
from include.local_personalize.engine import api
from include.local_personalize.engine.api import TrainingData, TrainingRequest

END = datetime(2026, 11, 1, tzinfo=UTC)
SIZES = {
    "default": {"users": 1000, "items": 500, "days": 60},
    "large": {"users": 10_000, "items": 5000, "days": 365},
}
KEYS = (
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_25",
    "mean_reciprocal_rank_at_25",
    "coverage",
)
SEED = 42


def time_generation(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            size = SIZES[name]
            start = time.perf_counter()
            summary = demo_data.generate(Path(folder) / f"{name}.db", seed=SEED, end=END, **size)
            print(
                f"{name}: {summary['users']} users, {summary['items']} items, {size['days']} days -> "
                f"{summary['events']:,} events, generated and written to SQLite in {time.perf_counter() - start:.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved pairs, each on its own shop")
    parser.add_argument(
        "--generate", nargs="*", choices=sorted(SIZES), default=list(SIZES), help="shop sizes to time"
    )
    args = parser.parse_args()
    time_generation(args.generate)

    shop = per_pair(
        lambda index: demo_data.build(seed=SEED + index, end=END, **SIZES["default"]).interactions()
    )

    def trained(recipe: str):
        def measure(index: int) -> dict:
            start = time.perf_counter()
            _, metrics = api.train(TrainingRequest(recipe), TrainingData(shop(index)))
            return {**{k: metrics[k] for k in KEYS}, "seconds": time.perf_counter() - start}

        return measure

    pairs = interleaved_over(
        args.repeats, trained("aws-popularity-count"), trained("aws-user-personalization")
    )
    print(f"{len(pairs)} interleaved pair(s) on the default shop (seeds {SEED}-{SEED + len(pairs) - 1}):")
    for label, side in (("aws-popularity-count", 0), ("aws-user-personalization", 1)):
        shown = ", ".join(f"{k} {spread([pair[side][k] for pair in pairs]).median:.4f}" for k in KEYS)
        seconds = spread([pair[side]["seconds"] for pair in pairs])
        print(f"{label}: median {shown}; training seconds {seconds}")
    ratios = ratio_spreads(pairs, {key: key for key in KEYS[:2]})
    for key, figure in ratios.items():
        print(f"user-personalization / popularity on {key} (goal >= 1.5x): {figure}")


if __name__ == "__main__":
    main()
