"""Generated interactions with planted taste clusters, for tests and the benchmark.

Users and items each belong to one of `clusters` clusters. A user's event is, with probability
`in_cluster`, an item of the user's own cluster, else any item; within either pool items are
drawn with a Zipf-like popularity, so a popularity model has something to find too, but a model
that learns the clusters does much better. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = 1_700_000_000


def cluster_of(index: np.ndarray, clusters: int) -> np.ndarray:
    return index % clusters


def interactions(
    users: int,
    items: int,
    events: int,
    *,
    clusters: int = 10,
    in_cluster: float = 0.8,
    seed: int = 0,
    span_seconds: int = 30 * 86_400,
) -> pd.DataFrame:
    """USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE; ids "u<n>" / "i<n>", cluster = n % clusters."""
    rng = np.random.default_rng(seed)
    # Every user gets at least 2 events; the rest are spread with a skew (some users are heavy).
    activity = rng.gamma(1.0, 1.0, users)
    extra = rng.multinomial(events - 2 * users, activity / activity.sum())
    user_of_event = np.repeat(np.arange(users), extra + 2)
    user_cluster = cluster_of(user_of_event, clusters)

    # Zipf-like popularity over item ranks, shuffled so popularity and cluster are independent.
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity = popularity[rng.permutation(items)]
    item_cluster = cluster_of(np.arange(items), clusters)

    chosen = np.empty(len(user_of_event), dtype=np.int64)
    own = rng.random(len(user_of_event)) < in_cluster
    for cluster in range(clusters):
        members = np.flatnonzero(item_cluster == cluster)
        weights = popularity[members] / popularity[members].sum()
        pick = own & (user_cluster == cluster)
        chosen[pick] = rng.choice(members, size=int(pick.sum()), p=weights)
    chosen[~own] = rng.choice(items, size=int((~own).sum()), p=popularity / popularity.sum())

    timestamps = START + np.sort(rng.integers(0, span_seconds, len(chosen)))
    order = rng.permutation(len(chosen))  # events of all users interleave in time
    purchase = rng.random(len(chosen)) < 0.2
    return pd.DataFrame(
        {
            "USER_ID": np.char.add("u", user_of_event[order].astype(str)),
            "ITEM_ID": np.char.add("i", chosen[order].astype(str)),
            "TIMESTAMP": timestamps,
            "EVENT_TYPE": np.where(purchase, "purchase", "click"),
            "EVENT_VALUE": np.round(rng.random(len(chosen)), 3),
        }
    )
