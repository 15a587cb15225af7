"""Replay evaluation's pure core: the held-out users and their events, the batch inference input,
the batch output read back, and each user's scores. No I/O (replay_tasks.py reads S3 and calls this).

The protocol (docs/PERSONALIZE_FACTS.md, "Replay evaluation"), the same for every model scored:
- window `[start, end)`: whole UTC days no scored model was trained on;
- held-out users: users with at least one event before the window (the models know them) and at
  least one item in the window they had not interacted with before it; a deterministic sample of
  `sample_size` of them (numpy's default_rng(seed) over the sorted eligible users);
- relevant items of a user: the distinct window items not interacted with before the window;
- a model's list for a user: its batch recommendations minus the user's items from before the
  window (as Personalize's offline protocol excludes input items), cut to the top 25;
- precision@5/10/25, NDCG@5/10/25 and MRR@25 per user with personalize_contract.metrics (the
  local engine's offline metrics use the same functions); coverage = distinct items in all lists
  / distinct items in the catalogue (every item in the interactions read, plus the items dataset).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from personalize_contract.metrics import METRIC_NAMES, MRR_K, list_scores

TOP_K = MRR_K  # every ranking metric cuts at 25 or less
RANKING_METRICS = tuple(name for name in METRIC_NAMES if name != "coverage")
MAX_NUM_RESULTS = 500  # CreateBatchInferenceJob's numResults maximum
# Recommendations asked per user: the top 25 plus room for the seen items dropped from the list,
# enough for this share of the held-out users (a few heavy users may keep fewer than 25).
SEEN_QUANTILE = 0.9


class ReplayError(ValueError):
    pass


@dataclass(frozen=True)
class HeldOut:
    users: tuple[str, ...]  # the sample, sorted
    relevant: Mapping[str, frozenset[str]]  # user -> window items new to them
    seen: Mapping[str, frozenset[str]]  # user -> items before the window (dropped from lists)
    catalog_size: int
    eligible_users: int
    window_events: int


def held_out(
    window_rows: Iterable[tuple[str, str]],
    history_rows: Iterable[tuple[str, str]],
    *,
    sample_size: int,
    seed: int,
    catalog_items: Iterable[str] = (),
) -> HeldOut:
    """The sample of held-out users from (user, item) rows inside and before the window.

    `history_rows` is read once and only the window's users' rows are kept, so the history can
    stream from S3; `catalog_items` adds the items dataset's ids to the coverage denominator.
    """
    if sample_size < 1:
        raise ReplayError(f"sample_size must be at least 1, got {sample_size}")
    in_window: dict[str, set[str]] = {}
    window_events = 0
    catalogue: set[str] = set(catalog_items)
    for user, item in window_rows:
        in_window.setdefault(user, set()).add(item)
        catalogue.add(item)
        window_events += 1
    seen: dict[str, set[str]] = {}
    for user, item in history_rows:
        catalogue.add(item)
        if user in in_window:
            seen.setdefault(user, set()).add(item)
    eligible = sorted(u for u, items in in_window.items() if u in seen and items - seen[u])
    if not eligible:
        raise ReplayError(
            f"no held-out user: of {len(in_window)} users active in the window, none was also active "
            "before it with a new item in it"
        )
    count = min(sample_size, len(eligible))
    chosen = np.random.default_rng(seed).choice(len(eligible), size=count, replace=False)
    users = tuple(sorted(eligible[i] for i in chosen))
    return HeldOut(
        users=users,
        relevant={u: frozenset(in_window[u] - seen[u]) for u in users},
        seen={u: frozenset(seen[u]) for u in users},
        catalog_size=len(catalogue),
        eligible_users=len(eligible),
        window_events=window_events,
    )


def num_results(held: HeldOut) -> int:
    """numResults of the batch jobs: 25 plus the seen items of SEEN_QUANTILE of the users."""
    counts = sorted(len(held.seen[u]) for u in held.users)
    room = counts[min(len(counts) - 1, math.ceil(SEEN_QUANTILE * len(counts)) - 1)]
    return min(MAX_NUM_RESULTS, TOP_K + room)


def batch_input(users: Sequence[str]) -> str:
    """The batch inference job's input: one JSON line per user."""
    return "".join(json.dumps({"userId": user}) + "\n" for user in users)


def read_batch_output(lines: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """{user: recommended items in order} and the error lines, from a batch job's JSON-lines output."""
    lists: dict[str, list[str]] = {}
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            user = str(record["input"]["userId"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ReplayError(
                f"batch output line {number} is not a scored user: {err}: {line[:200]}"
            ) from None
        output = record.get("output") or {}
        if record.get("error") or "recommendedItems" not in output:
            errors.append(f"user {user}: {record.get('error') or 'no recommendedItems'}")
            continue
        lists[user] = [str(item) for item in output["recommendedItems"]]
    return lists, errors


@dataclass(frozen=True)
class UserScores:
    """One model on the held-out users: each ranking metric per user (users' order), and the lists."""

    users: tuple[str, ...]
    per_user: Mapping[str, np.ndarray]  # metric name -> scores, one per user
    lists: tuple[tuple[str, ...], ...]  # top-25 per user, seen items removed
    catalog_size: int
    missing_users: int  # users the batch output did not score (counted as empty lists)

    def means(self) -> dict[str, float]:
        means = {name: float(values.mean()) for name, values in self.per_user.items()}
        return {"coverage": coverage(self.lists, self.catalog_size), **means}


def score_users(outputs: Mapping[str, Sequence[str]], held: HeldOut) -> UserScores:
    """Every ranking metric for every held-out user, from one model's batch recommendations."""
    lists = []
    per_user = {name: np.zeros(len(held.users)) for name in RANKING_METRICS}
    for index, user in enumerate(held.users):
        seen = held.seen[user]
        ranked = tuple(item for item in outputs.get(user, ()) if item not in seen)[:TOP_K]
        lists.append(ranked)
        for name, value in list_scores(ranked, set(held.relevant[user])).items():
            per_user[name][index] = value
    return UserScores(
        users=held.users,
        per_user=per_user,
        lists=tuple(lists),
        catalog_size=held.catalog_size,
        missing_users=sum(1 for u in held.users if u not in outputs),
    )


def coverage(lists: Iterable[Sequence[str]], catalog_size: int) -> float:
    recommended = {item for ranked in lists for item in ranked}
    return len(recommended) / catalog_size if catalog_size else 0.0
