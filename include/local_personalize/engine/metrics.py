"""Offline metrics, the way Personalize documents them ("Evaluating a solution version with metrics").

Protocol: a seeded random 90% of users, with all their interactions, is the training set. For each
of the other 10%, the oldest 90% of their interactions is given to the model as input (folded in,
not trained on) and the model's top 25 is scored against their newest 10%. Then the served model
is trained on all the data (registry.py).

The split's seed comes from the selected events' content (`split_seed`): the same data always gets
the same split, in any row order, and different data a different one, so no single fixed split is
kinder to every version than chance. One split's figure is noisy (bench/bench_quality.py prints the
spread over several); GetSolutionMetrics reports it alone, without a spread, as Personalize does.

The per-list scores (reciprocal rank, NDCG, precision) are personalize_contract.metrics's, the
same code the pipeline's replay evaluation scores batch outputs with.

Where Personalize's docs are silent, this module chooses:
- Test users: drawn with numpy's default_rng(seed) from users with at least 2 selected events
  (a single event cannot be split into input and target); their number is 10% of those users,
  rounded down, at least 1. Users with a single event always train.
- A test user's events are ordered by TIMESTAMP, ties by dataset row order. Targets: the newest
  10%, rounded down, at least 1; input: the rest (so at least 1).
- Already-seen items: recommendations exclude the user's input items, and a target item that is
  also in the input does not count as relevant (the model could not recommend it). A test user
  left with no relevant item is not scored. Served recommendations do not exclude seen items
  (as in Personalize, where a filter does that).
- Input events fold in with weight 1 each, as events sent with PutEvents after training do.
  Input items the trained model never saw (only test users had them) cannot be folded in and
  are ignored.
- Query per recipe: user-personalization and personalized-ranking score the whole catalogue for
  the folded-in user (ranking "reranks" every known item); similar-items asks for items like the
  user's newest input item; popularity and trending recipes give their one list to everybody.
- coverage = unique items in all test users' top 25 / unique items in the interactions and items
  datasets.
- Every metric is the mean over scored users, rounded to 4 decimals as the console shows them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from personalize_contract.metrics import METRIC_NAMES, list_scores

from include.local_personalize.engine.interactions import Events

TOP_K = 25
TEST_USER_SHARE = 0.1
TARGET_SHARE = 0.1


def score_rankings(
    rankings: Sequence[Sequence[Hashable]], relevant: Sequence[set], catalog_size: int
) -> dict[str, float]:
    """Personalize's metric map for ranked lists against relevant sets (one pair per test user)."""
    scored = [(r, rel) for r, rel in zip(rankings, relevant, strict=True) if rel]
    recommended = {item for ranked in rankings for item in ranked[:TOP_K]}
    totals = dict.fromkeys(METRIC_NAMES[1:], 0.0)
    for ranked, rel in scored:
        for name, value in list_scores(ranked, rel).items():
            totals[name] += value
    metrics = {"coverage": len(recommended) / catalog_size if catalog_size else 0.0}
    metrics.update({name: total / len(scored) if scored else 0.0 for name, total in totals.items()})
    return {name: round(metrics[name], 4) for name in METRIC_NAMES}


def split_seed(events: Events, seed: int) -> int:
    """The evaluation split's seed for these events: a digest of their content mixed with `seed`.

    Each event (user, item, timestamp, weight) is hashed and the hashes are summed, so the digest
    ignores row order but changes with any added, removed or altered event. `seed` (the training
    request's, 42 in the service) picks one of many splits of the same data, for the benchmark.
    """
    columns = events.frame[["user", "item", "timestamp", "weight"]]
    row_hashes = pd.util.hash_pandas_object(columns, index=False).to_numpy(dtype=np.uint64)
    digest = int(row_hashes.sum(dtype=np.uint64))  # wraps modulo 2**64
    mixed = hashlib.blake2b(f"{digest}:{len(columns)}:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(mixed, "big")


class Holdout:
    """The protocol's split of events into training users and test users' input and targets."""

    def __init__(self, events: Events, seed: int) -> None:
        frame = events.frame
        counts = frame["user"].value_counts()
        eligible = np.sort(counts.index[counts >= 2].to_numpy(dtype=str))
        n_test = max(1, int(len(eligible) * TEST_USER_SHARE))
        test_users = set(np.random.default_rng(seed).choice(eligible, size=n_test, replace=False).tolist())
        is_test = frame["user"].isin(test_users).to_numpy()
        self.training = events.subset(~is_test)
        test = frame[is_test]
        # A stable sort keeps the dataset's row order among equal timestamps.
        test = test.iloc[np.lexsort((np.arange(len(test)), test["timestamp"].to_numpy()))]
        self.users: list[str] = []
        self.inputs: list[np.ndarray] = []  # item ids, oldest first
        self.targets: list[set[str]] = []  # relevant item ids (not already in the input)
        for user, group in test.groupby("user", sort=True):
            items = group["item"].to_numpy()
            n_target = max(1, int(len(items) * TARGET_SHARE))
            history = items[: len(items) - n_target]
            self.users.append(str(user))
            self.inputs.append(history)
            self.targets.append(set(items[len(items) - n_target :].tolist()) - set(history.tolist()))


def score_model(model, holdout: Holdout, catalog_size: int) -> dict[str, float]:
    histories = [model.items.known(history) for history in holdout.inputs]
    positions = model.evaluation_rankings(histories, TOP_K)
    ids = model.items.ids
    rankings = [ids[p].tolist() for p in positions]
    return score_rankings(rankings, holdout.targets, catalog_size)
