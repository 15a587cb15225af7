"""Demo app DB: generation speed, and whether its structure is learnable.

Generates the default demo shop (1000 users, 500 items, 60 days) and a large one, timing both,
then trains popularity-count and user-personalization on the default shop's interactions with the
local service's engine under Personalize's offline protocol. The demo is only worth running if a
per-user model clearly beats "most popular": goal NDCG@25 and precision@25 >= 1.5x popularity.

Run: PYTHONPATH=.:plugins .venv/bin/python bench/bench_demo_data.py
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

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


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, size in SIZES.items():
            start = time.perf_counter()
            summary = demo_data.generate(Path(folder) / f"{name}.db", seed=42, end=END, **size)
            print(
                f"{name}: {summary['users']} users, {summary['items']} items, {size['days']} days -> "
                f"{summary['events']:,} events, generated and written to SQLite in {time.perf_counter() - start:.1f} s"
            )
    frame = demo_data.build(seed=42, end=END, **SIZES["default"]).interactions()
    results = {}
    for recipe in ("aws-popularity-count", "aws-user-personalization"):
        start = time.perf_counter()
        _, metrics = api.train(TrainingRequest(recipe), TrainingData(frame))
        results[recipe] = metrics
        shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in KEYS)
        print(f"{recipe} on the default shop ({time.perf_counter() - start:.1f} s): {shown}")
    popular, personal = results["aws-popularity-count"], results["aws-user-personalization"]
    for key in KEYS[:2]:
        print(
            f"user-personalization / popularity on {key}: {personal[key] / popular[key]:.2f}x (goal >= 1.5x)"
        )


if __name__ == "__main__":
    main()
