"""Recommendation quality of the local engine against references, under Personalize's protocol.

For each dataset and each of several evaluation splits (metrics.py: 90% of users train; each test
user's oldest 90% of events is input, the newest 10% is scored), every method sees the same split
and is scored by the same code (metrics.score_model). Prints NDCG@25, P@25 and coverage as
mean ± sample standard deviation over the splits, and whether the default user-personalization is
within the spread of the best reference (mean >= best mean - its std) with coverage >= the
reference ALS's.

Methods
- popularity: aws-popularity-count.
- ours default: aws-user-personalization, no HPO (the engine's shape rule and validation choice).
- ours v2: aws-user-personalization-v2 with the dataset's items (categorical metadata) when any.
- ours HPO: aws-user-personalization with performHPO.
- ALS (implicit defaults): implicit's AlternatingLeastSquares() as shipped (factors 100,
  regularization 0.01, alpha 1, 15 iterations) on the summed event counts; test users folded in
  with recalculate_user.
- EASE (ref): Steck 2019 in numpy on the binary user x item matrix, its L2 weight chosen from
  EASE_LAMBDAS by NDCG@25 on a validation split of the training users (as performHPO does).

Datasets (nothing is downloaded at run time)
- movielens-100k: MovieLens 100K (GroupLens; research use, no redistribution, so it is never
  committed), read in place from the recbole 1.2.1 wheel, which ships it as an example. Get the
  wheel once with `pip download --no-deps recbole==1.2.1 -d ~/.cache/personalize-bench`
  (or have recbole installed); every rating is one event, items carry their genres.
- online-retail: tests/data/online_retail_sample.csv (UCI Online Retail, CC BY 4.0), purchases of
  known customers, cancellations and returns removed.
- demo-shop: include/demo_data.py, 2000 users x 600 items x 90 days (seed 7), items with category.

Run: PYTHONPATH=. nice -n 10 .venv/bin/python bench/bench_quality.py [--splits 5] [--datasets a,b]
"""

from __future__ import annotations

import argparse
import os
import time
import zipfile
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from include.local_personalize.engine import api, metrics
from include.local_personalize.engine.api import TrainingData, TrainingRequest
from include.local_personalize.engine.interactions import Events, IdIndex, select_events, weight_matrix

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", Path.home() / ".cache" / "personalize-bench"))
MOVIELENS_IN_WHEEL = "recbole/dataset_example/ml-100k/ml-100k"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
EASE_LAMBDAS = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
NDCG, PRECISION, COVERAGE = (
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_25",
    "coverage",
)
REPORTED = {NDCG: "NDCG@25", PRECISION: "P@25", COVERAGE: "coverage"}
REFERENCES = ("ALS (implicit defaults)", "EASE (ref)")


# --- datasets ------------------------------------------------------------------------------------
def _movielens_file(suffix: str) -> bytes | None:
    try:
        installed = importlib_metadata.distribution("recbole")
        path = Path(installed.locate_file(f"{MOVIELENS_IN_WHEEL}.{suffix}"))
        if path.exists():
            return path.read_bytes()
    except importlib_metadata.PackageNotFoundError:
        pass
    wheel = DATA_DIR / RECBOLE_WHEEL
    if wheel.exists():
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(f"{MOVIELENS_IN_WHEEL}.{suffix}")
    return None


def movielens_100k() -> TrainingData | None:
    import io

    inter, item = _movielens_file("inter"), _movielens_file("item")
    if inter is None or item is None:
        return None
    ratings = pd.read_csv(io.BytesIO(inter), sep="\t")
    ratings.columns = [c.split(":")[0] for c in ratings.columns]
    interactions = pd.DataFrame(
        {
            "USER_ID": ratings["user_id"].astype(str),
            "ITEM_ID": ratings["item_id"].astype(str),
            "TIMESTAMP": ratings["timestamp"].astype(np.int64),
            "EVENT_TYPE": "rating",
            "EVENT_VALUE": ratings["rating"].astype(float),
        }
    )
    movies = pd.read_csv(io.BytesIO(item), sep="\t", encoding="latin-1")
    movies.columns = [c.split(":")[0] for c in movies.columns]
    items = pd.DataFrame(
        {
            "ITEM_ID": movies["item_id"].astype(str),
            "GENRES": movies["class"].fillna("").astype(str).str.replace(" ", "|"),
        }
    )
    return TrainingData(interactions, items)


def online_retail() -> TrainingData:
    raw = pd.read_csv(ROOT / "tests" / "data" / "online_retail_sample.csv", dtype=str)
    quantity = pd.to_numeric(raw["Quantity"], errors="coerce")
    keep = raw["CustomerID"].notna() & (quantity > 0) & ~raw["InvoiceNo"].str.startswith("C")
    rows = raw[keep]
    timestamps = pd.to_datetime(rows["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    interactions = pd.DataFrame(
        {
            "USER_ID": rows["CustomerID"].str.replace(".0", "", regex=False),
            "ITEM_ID": rows["StockCode"],
            "TIMESTAMP": (timestamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1),
            "EVENT_TYPE": "purchase",
        }
    ).reset_index(drop=True)
    return TrainingData(interactions)


def demo_shop() -> TrainingData:
    from include.demo_data import build

    shop = build(users=2000, items=600, days=90, seed=7)
    items = pd.DataFrame({"ITEM_ID": shop.items["item_id"], "CATEGORY": shop.items["category"]})
    return TrainingData(shop.interactions(), items)


DATASETS: dict[str, Callable[[], TrainingData | None]] = {
    "movielens-100k": movielens_100k,
    "online-retail": online_retail,
    "demo-shop": demo_shop,
}


# --- references ----------------------------------------------------------------------------------
class _Reference:
    """What metrics.score_model needs: `items` and `evaluation_rankings(histories, k)`."""

    def __init__(self, events: Events) -> None:
        self.users = IdIndex(np.sort(events.frame["user"].unique()).astype(str))
        self.items = IdIndex(np.sort(events.frame["item"].unique()).astype(str))
        self.counts = weight_matrix(events.frame, self.users, self.items)

    def _rows(self, histories: list[np.ndarray]) -> sp.csr_matrix:
        lengths = [len(h) for h in histories]
        rows = sp.csr_matrix(
            (
                np.ones(sum(lengths), dtype=np.float32),
                np.concatenate(histories) if histories else np.zeros(0, dtype=np.int64),
                np.concatenate([[0], np.cumsum(lengths)]),
            ),
            shape=(len(histories), len(self.items)),
        )
        rows.sum_duplicates()
        return rows


class ImplicitAls(_Reference):
    def __init__(self, events: Events, seed: int) -> None:
        super().__init__(events)
        self.model = AlternatingLeastSquares(random_state=seed, num_threads=1)
        self.model.fit(self.counts, show_progress=False)

    def evaluation_rankings(self, histories, k):
        rows = self._rows(histories)
        ids, scores = self.model.recommend(
            np.arange(len(histories)), rows, N=k, recalculate_user=True, filter_already_liked_items=True
        )
        return [row[s > -1e38].astype(np.int64) for row, s in zip(ids, scores, strict=True)]


class Ease(_Reference):
    def __init__(self, events: Events, l2: float) -> None:
        super().__init__(events)
        binary = (self.counts > 0).astype(np.float64)
        gram = (binary.T @ binary).toarray()
        gram[np.diag_indices_from(gram)] += l2
        inverse = np.linalg.inv(gram)
        self.weights = inverse / -np.diag(inverse)
        self.weights[np.diag_indices_from(self.weights)] = 0.0

    def evaluation_rankings(self, histories, k):
        rows = self._rows(histories)
        rows.data[:] = 1.0
        scores = np.asarray(rows @ self.weights)
        scores[rows.nonzero()] = -np.inf
        rankings = []
        for row in scores:
            best = np.argpartition(-row, k)[:k]
            best = best[np.argsort(-row[best], kind="stable")]
            rankings.append(best[np.isfinite(row[best])].astype(np.int64))
        return rankings


def ease_tuned(events: Events, seed: int, catalog_size: int) -> Ease:
    validation = metrics.Holdout(events, seed + 1)
    scored = [
        (metrics.score_model(Ease(validation.training, l2), validation, catalog_size)[NDCG], l2)
        for l2 in EASE_LAMBDAS
    ]
    return Ease(events, max(scored)[1])


# --- the run -------------------------------------------------------------------------------------
def evaluate(data: TrainingData, split: int) -> dict[str, dict[str, float]]:
    """Metric maps per method on one split; the engine's split for seed `split` is used by all."""
    results: dict[str, dict[str, float]] = {}
    engine_runs = {
        "popularity": TrainingRequest("aws-popularity-count", seed=split),
        "ours default": TrainingRequest("aws-user-personalization", seed=split),
        "ours v2": TrainingRequest("aws-user-personalization-v2", seed=split),
        "ours HPO": TrainingRequest("aws-user-personalization", seed=split, perform_hpo=True),
    }
    for name, request in engine_runs.items():
        started = time.perf_counter()
        _, results[name] = api.train(request, data)
        results[name]["seconds"] = time.perf_counter() - started

    events = select_events(TrainingRequest("aws-user-personalization"), data)
    holdout = metrics.Holdout(events, metrics.split_seed(events, split))
    catalog = len(events.catalog_item_ids)
    for name, build in (
        ("ALS (implicit defaults)", lambda: ImplicitAls(holdout.training, split)),
        ("EASE (ref)", lambda: ease_tuned(holdout.training, split, catalog)),
    ):
        started = time.perf_counter()
        results[name] = metrics.score_model(build(), holdout, catalog)
        results[name]["seconds"] = time.perf_counter() - started
    return results


def _cell(values: list[float]) -> str:
    spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.4f} ± {spread:.4f}"


def report(name: str, data: TrainingData, runs: list[dict[str, dict[str, float]]]) -> None:
    frame = data.interactions
    print(
        f"\n## {name}: {len(frame):,} events, {frame['USER_ID'].nunique():,} users, "
        f"{frame['ITEM_ID'].nunique():,} items, {len(runs)} splits (mean ± std)"
    )
    header = f"{'method':<26}" + "".join(f"{label:>20}" for label in REPORTED.values()) + f"{'s/split':>10}"
    print(header)
    for method in runs[0]:
        cells = "".join(f"{_cell([r[method][key] for r in runs]):>20}" for key in REPORTED)
        print(f"{method:<26}{cells}{np.mean([r[method]['seconds'] for r in runs]):>10.1f}")
    mean = {m: np.mean([r[m][NDCG] for r in runs]) for m in runs[0]}
    std = {m: np.std([r[m][NDCG] for r in runs], ddof=1) if len(runs) > 1 else 0.0 for m in runs[0]}
    best = max(REFERENCES, key=mean.get)
    coverage = {m: np.mean([r[m][COVERAGE] for r in runs]) for m in runs[0]}
    within = mean["ours default"] >= mean[best] - std[best]
    covered = coverage["ours default"] >= coverage["ALS (implicit defaults)"]
    print(
        f"ours default vs best reference ({best}): NDCG@25 {mean['ours default']:.4f} vs "
        f"{mean[best]:.4f} ± {std[best]:.4f} -> {'within spread or above' if within else 'BELOW'}; "
        f"coverage {coverage['ours default']:.4f} vs ALS {coverage['ALS (implicit defaults)']:.4f} "
        f"-> {'ok' if covered else 'BELOW'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):
        for name in args.datasets.split(","):
            data = DATASETS[name]()
            if data is None:
                print(
                    f"\n## {name}: skipped, not found; run once: "
                    f"pip download --no-deps recbole==1.2.1 -d {DATA_DIR}"
                )
                continue
            runs = [evaluate(data, split) for split in range(args.splits)]
            report(name, data, runs)


if __name__ == "__main__":
    main()
