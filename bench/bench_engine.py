"""Training engine benchmark: FULL and UPDATE training on ~1M generated interactions.

Data: 50k users x 20k items, 1M events with 20 planted taste clusters (engine/synthetic.py).
Prints FULL training time (evaluation protocol + served model), UPDATE time (a day of new events
with 200 new items folded in), peak RSS, single-user inference latency, and NDCG@25 of
user-personalization (ALS) vs popularity-count under Personalize's offline protocol.
Goals on the 2-core machine: FULL < 30 s, NDCG@25 >= 2x popularity.

Run: PYTHONPATH=.:plugins .venv/bin/python bench/bench_engine.py [--hpo]   (--hpo adds a performHPO training)
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from include.local_personalize.engine import api, synthetic
from include.local_personalize.engine.api import TrainingData, TrainingRequest

USERS, ITEMS, EVENTS, CLUSTERS = 50_000, 20_000, 1_000_000, 20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_rss() -> None:
    """Start the peak over from the current RSS (Linux >= 4.0), so data generation's temporaries
    do not hide what training needs."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


class Seconds(float):
    """Wall seconds, printed with the process CPU seconds beside them: the machine is shared."""

    cpu: float

    def __format__(self, spec: str) -> str:
        return f"{float(self):{spec}} s wall, {self.cpu:{spec}} s CPU"


def timed(call):
    start, cpu_start = time.perf_counter(), time.process_time()
    result = call()
    elapsed = Seconds(time.perf_counter() - start)
    elapsed.cpu = time.process_time() - cpu_start
    return result, elapsed


def new_day(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """20k events a day later: existing users, and 200 new items that those users take up."""
    rng = np.random.default_rng(seed)
    later = frame.sample(20_000, random_state=seed).reset_index(drop=True)
    later["TIMESTAMP"] = frame["TIMESTAMP"].max() + 86_400 + np.arange(len(later))
    new_items = rng.random(len(later)) < 0.25
    later.loc[new_items, "ITEM_ID"] = np.char.add("new", rng.integers(0, 200, new_items.sum()).astype(str))
    return pd.concat([frame, later], ignore_index=True)


def main() -> None:
    frame, generation = timed(
        lambda: synthetic.interactions(USERS, ITEMS, EVENTS, clusters=CLUSTERS, in_cluster=0.7, seed=1)
    )
    print(
        f"data: {len(frame):,} interactions, {frame['USER_ID'].nunique():,} users, "
        f"{frame['ITEM_ID'].nunique():,} items (generated in {generation:.1f})"
    )
    reset_peak_rss()
    rss_before = peak_rss_mb()

    (_, popular_metrics), popular_seconds = timed(
        lambda: api.train(TrainingRequest("aws-popularity-count"), TrainingData(frame))
    )
    (model, als_metrics), full_seconds = timed(
        lambda: api.train(TrainingRequest("aws-user-personalization"), TrainingData(frame))
    )
    rss_after_full = peak_rss_mb()
    grown = new_day(frame, seed=2)
    (updated, _), update_seconds = timed(
        lambda: api.train(
            TrainingRequest("aws-user-personalization", training_mode="UPDATE"),
            TrainingData(grown),
            previous=model,
        )
    )
    users = frame["USER_ID"].drop_duplicates().sample(2_000, random_state=3).tolist()
    latencies = []
    for user in users:
        start = time.perf_counter()
        updated.recommend(user, num_results=25)
        latencies.append(time.perf_counter() - start)
    fold_in = []
    for user in users[:500]:
        start = time.perf_counter()
        updated.recommend(user, num_results=25, recent_item_ids=["i1", "i2", "new3"])
        fold_in.append(time.perf_counter() - start)

    key = "normalized_discounted_cumulative_gain_at_25"
    print(f"popularity-count FULL: {popular_seconds:.1f}, NDCG@25 {popular_metrics[key]:.4f}")
    print(
        f"user-personalization FULL: {full_seconds:.1f} (goal < 30 s wall), NDCG@25 {als_metrics[key]:.4f}, "
        f"{als_metrics[key] / popular_metrics[key]:.1f}x popularity (goal >= 2x), "
        f"coverage {als_metrics['coverage']:.3f}"
    )
    print(
        f"user-personalization UPDATE (+20k events, +200 items): {update_seconds:.1f}, "
        f"{len(updated.item_ids) - len(model.item_ids)} items added"
    )
    print(
        f"recommend, one user, 25 of {len(updated.item_ids):,} items: "
        f"p50 {np.percentile(latencies, 50) * 1e3:.2f} ms, p99 {np.percentile(latencies, 99) * 1e3:.2f} ms; "
        f"with 3 recent events folded in: p99 {np.percentile(fold_in, 99) * 1e3:.2f} ms"
    )
    if "--hpo" in sys.argv[1:]:
        request = TrainingRequest("aws-user-personalization", perform_hpo=True)
        (tuned, tuned_metrics), hpo_seconds = timed(lambda: api.train(request, TrainingData(frame)))
        print(
            f"user-personalization FULL with performHPO: {hpo_seconds:.1f}, NDCG@25 {tuned_metrics[key]:.4f}, "
            f"chosen {tuned.params}"
        )
    print(
        f"peak RSS: {rss_before:.0f} MB with the data loaded, {rss_after_full:.0f} MB after FULL, "
        f"{peak_rss_mb():.0f} MB at the end"
    )


if __name__ == "__main__":
    main()
