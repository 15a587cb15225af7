"""Training engine benchmark: FULL and UPDATE training on ~1M generated interactions.

Data: 50k users x 20k items, 1M events with 20 planted taste clusters (engine/synthetic.py).
Runs --repeats interleaved pairs (bench/repeats.py), each on its own generated data (seed 1, 2, ...):
popularity-count is the baseline, user-personalization ours. Prints the median and spread (IQR,
range) of FULL training time (evaluation protocol + served model), of the ratios of NDCG@25 and
precision@25 under Personalize's offline protocol, of UPDATE time (a day of new events with 200 new
items folded in) and single-user inference latency, and the peak RSS.
Goals on the 2-core machine: FULL < 30 s, NDCG@25 >= 2x popularity.

Run: PYTHONPATH=.:plugins .venv/bin/python bench/bench_engine.py [--repeats 3] [--hpo]
     (--hpo adds a performHPO training on the first pair's data; --users/--items/--events shrink the data)
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
from repeats import interleaved_over, per_pair, ratio_spreads, spread

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
    """20k events (2% of smaller data) a day later: existing users, and up to 200 new items that
    those users take up."""
    rng = np.random.default_rng(seed)
    later = frame.sample(min(20_000, len(frame) // 50), random_state=seed).reset_index(drop=True)
    later["TIMESTAMP"] = frame["TIMESTAMP"].max() + 86_400 + np.arange(len(later))
    new_items = rng.random(len(later)) < 0.25
    later.loc[new_items, "ITEM_ID"] = np.char.add("new", rng.integers(0, 200, new_items.sum()).astype(str))
    return pd.concat([frame, later], ignore_index=True)


KEY = "normalized_discounted_cumulative_gain_at_25"
PRECISION = "precision_at_25"


def training(recipe: str, frame: pd.DataFrame) -> tuple[object, dict]:
    (model, metrics), seconds = timed(lambda: api.train(TrainingRequest(recipe), TrainingData(frame)))
    return model, {
        "seconds": float(seconds),
        "cpu": seconds.cpu,
        "ndcg": metrics[KEY],
        "precision": metrics[PRECISION],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs, each on its own data")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--hpo", action="store_true", help="also a performHPO training on pair 0's data")
    args = parser.parse_args()

    def generate(index: int) -> pd.DataFrame:
        frame, generation = timed(
            lambda: synthetic.interactions(
                args.users, args.items, args.events, clusters=CLUSTERS, in_cluster=0.7, seed=1 + index
            )
        )
        print(
            f"pair {index}: {len(frame):,} interactions, {frame['USER_ID'].nunique():,} users, "
            f"{frame['ITEM_ID'].nunique():,} items (seed {1 + index}, generated in {generation:.1f})"
        )
        reset_peak_rss()
        return frame

    data = per_pair(generate)

    def popularity(index: int) -> dict:
        return training("aws-popularity-count", data(index))[1]

    def personalization(index: int) -> dict:
        frame = data(index)
        model, figures = training("aws-user-personalization", frame)
        grown = new_day(frame, seed=1000 + index)
        (updated, _), update_seconds = timed(
            lambda: api.train(
                TrainingRequest("aws-user-personalization", training_mode="UPDATE"),
                TrainingData(grown),
                previous=model,
            )
        )
        users = (
            frame["USER_ID"].drop_duplicates().sample(min(2_000, frame["USER_ID"].nunique()), random_state=3)
        )
        latencies = []
        for user in users.tolist():
            start = time.perf_counter()
            updated.recommend(user, num_results=25)
            latencies.append(time.perf_counter() - start)
        fold_in = []
        for user in users.tolist()[:500]:
            start = time.perf_counter()
            updated.recommend(user, num_results=25, recent_item_ids=["i1", "i2", "new3"])
            fold_in.append(time.perf_counter() - start)
        return {
            **figures,
            "update_seconds": float(update_seconds),
            "events_added": len(grown) - len(frame),
            "items_added": len(updated.item_ids) - len(model.item_ids),
            "p50_ms": float(np.percentile(latencies, 50) * 1e3),
            "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "fold_in_p99_ms": float(np.percentile(fold_in, 99) * 1e3),
        }

    pairs = interleaved_over(args.repeats, popularity, personalization)
    ratios = ratio_spreads(pairs, {"ndcg": "ndcg", "precision": "precision", "seconds": "seconds"})
    ours = [o for _, o in pairs]
    print(f"\n{len(pairs)} interleaved pair(s), median (IQR, range):")
    print(f"popularity-count FULL seconds: {spread([b['seconds'] for b, _ in pairs])}")
    print(f"user-personalization FULL seconds (goal < 30 s wall): {spread([o['seconds'] for o in ours])}")
    print(f"user-personalization FULL CPU seconds: {spread([o['cpu'] for o in ours])}")
    print(f"NDCG@25 user-personalization / popularity (goal >= 2x): {ratios['ndcg']}")
    print(f"precision@25 user-personalization / popularity: {ratios['precision']}")
    print(f"FULL time user-personalization / popularity: {ratios['seconds']}")
    print(
        f"UPDATE seconds (+{ours[-1]['events_added']:,} events, {ours[-1]['items_added']} items added): "
        f"{spread([o['update_seconds'] for o in ours])}"
    )
    print(f"recommend one user, 25 items, p50 ms: {spread([o['p50_ms'] for o in ours])}")
    print(f"recommend one user, 25 items, p99 ms: {spread([o['p99_ms'] for o in ours])}")
    print(f"... with 3 recent events folded in, p99 ms: {spread([o['fold_in_p99_ms'] for o in ours])}")
    if args.hpo:
        request = TrainingRequest("aws-user-personalization", perform_hpo=True)
        (tuned, tuned_metrics), hpo_seconds = timed(lambda: api.train(request, TrainingData(data(0))))
        print(
            f"user-personalization FULL with performHPO (pair 0's data, one run): {hpo_seconds:.1f}, "
            f"NDCG@25 {tuned_metrics[KEY]:.4f}, chosen {tuned.params}"
        )
    print(f"peak RSS since the last pair's data was generated: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
