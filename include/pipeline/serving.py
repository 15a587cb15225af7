"""How each solution is asked for recommendations, by its recipe's type (personalize_contract.recipes
SERVING_INPUTS): the smoke test's runtime requests and the batch inference job's input lines.

- USER (user-personalization, trending-now, popularity-count): GetRecommendations with userId;
  batch lines `{"userId": ...}`.
- ITEM (similar-items, sims): GetRecommendations with itemId; batch lines `{"itemId": ...}`.
- USER_AND_ITEMS (personalized-ranking): GetPersonalizedRanking with userId and inputList; batch
  lines `{"userId": ..., "itemList": [...]}`.

Pure: requests and lines are built here and sent by the caller, so the mapping is unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from personalize_contract.recipes import serving_input

# GetPersonalizedRanking ranks at most 500 items per request.
MAX_RANKING_INPUT = 500


@dataclass(frozen=True)
class Filter:
    name: str
    arn: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeRequest:
    label: str  # what a person reads in the log: "user 17 with no filter"
    operation: str  # the personalize-runtime client method
    kwargs: dict[str, Any]


def smoke_requests(
    recipe: str,
    campaign_arn: str,
    *,
    users: Sequence[str],
    items: Sequence[str],
    num_results: int,
    filters: Sequence[Filter] = (),
) -> list[RuntimeRequest]:
    """The smoke test's requests: each sample user (or item) without and with each filter."""
    kind = serving_input(recipe)
    if kind == "ITEM":
        subjects = [("item", "itemId", item) for item in items]
    else:
        subjects = [("user", "userId", user) for user in users]
    requests = []
    for noun, key, subject in subjects:
        for flt in (None, *filters):
            kwargs: dict[str, Any] = {"campaignArn": campaign_arn, key: subject}
            if kind == "USER_AND_ITEMS":
                operation = "get_personalized_ranking"
                kwargs["inputList"] = list(items[:MAX_RANKING_INPUT])
            else:
                operation = "get_recommendations"
                kwargs["numResults"] = num_results
            if flt is not None:
                kwargs["filterArn"] = flt.arn
                if flt.values:
                    kwargs["filterValues"] = dict(flt.values)
            label = f"{noun} {subject} with {flt.name if flt else 'no filter'}"
            requests.append(RuntimeRequest(label, operation, kwargs))
    return requests


def recommended_items(response: Mapping[str, Any]) -> list[str]:
    """The item ids of a GetRecommendations (itemList) or GetPersonalizedRanking answer."""
    entries = response.get("itemList", response.get("personalizedRanking")) or []
    return [entry["itemId"] for entry in entries]


def batch_input_lines(recipe: str, *, users: Sequence[str], items: Sequence[str]) -> Iterator[dict]:
    """The batch inference job's JSON lines for a solution of `recipe`."""
    kind = serving_input(recipe)
    if kind == "USER":
        for user in users:
            yield {"userId": user}
    elif kind == "ITEM":
        for item in items:
            yield {"itemId": item}
    else:
        ranked = list(items[:MAX_RANKING_INPUT])
        for user in users:
            yield {"userId": user, "itemList": ranked}
