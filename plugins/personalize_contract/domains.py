"""Personalize's domain dataset groups and their use cases (recommenders), as AWS documents them.

Sources: developer guide "ECOMMERCE use cases" and "VIDEO_ON_DEMAND use cases" (recipe ARNs, which of
userId / itemId GetRecommendations needs, the event types each use case trains on, and the items the
service filters out by itself). A recommender is created with one of these recipe ARNs
(CreateRecommender) in a dataset group created with the matching `domain`; custom recipes
(`recipes.py`) belong to solutions instead.

`kind` says what the use case computes, so a stand-in can pick a model for it: `personalization`
(items for a user), `related_items` (items like a given item), `popularity` (most events of the type),
`trending` (fastest-growing items). It is this project's reading, not an AWS field.
"""

from __future__ import annotations

from dataclasses import dataclass

from personalize_contract.recipes import RECIPE_ARN_PREFIX

DOMAINS = ("ECOMMERCE", "VIDEO_ON_DEMAND")
# Every use case: at least 1000 interactions from at least 25 users with two or more each (the same
# minimums as custom solutions); the use case's own event type needs at least this many events.
MIN_USE_CASE_EVENTS = 1000


@dataclass(frozen=True)
class UseCase:
    recipe: str  # e.g. "aws-ecomm-recommended-for-you"; ARN = arn:aws:personalize:::recipe/<recipe>
    title: str  # the use case's name in the developer guide
    domain: str
    kind: str  # personalization | related_items | popularity | trending
    user_id: str  # GetRecommendations userId: "required" | "optional"
    item_id: str  # GetRecommendations itemId: "required" | "unused"
    event_type: str | None  # the event type the use case trains on; None: every event
    filters_out: str | None = None  # event type whose items the service removes for the userId

    @property
    def recipe_arn(self) -> str:
        return RECIPE_ARN_PREFIX + self.recipe


USE_CASES: dict[str, UseCase] = {
    use_case.recipe: use_case
    for use_case in (
        UseCase("aws-ecomm-popular-items-by-views", "Most viewed", "ECOMMERCE", "popularity", "required", "unused", "View"),
        UseCase("aws-ecomm-popular-items-by-purchases", "Best sellers", "ECOMMERCE", "popularity", "required", "unused", "Purchase"),
        UseCase("aws-ecomm-frequently-bought-together", "Frequently bought together", "ECOMMERCE", "related_items", "optional", "required", "Purchase"),
        UseCase("aws-ecomm-customers-who-viewed-x-also-viewed", "Customers who viewed X also viewed", "ECOMMERCE", "related_items", "required", "required", "View", filters_out="Purchase"),
        UseCase("aws-ecomm-recommended-for-you", "Recommended for you", "ECOMMERCE", "personalization", "required", "unused", None, filters_out="Purchase"),
        UseCase("aws-vod-because-you-watched-x", "Because you watched X", "VIDEO_ON_DEMAND", "related_items", "required", "required", "Watch", filters_out="Watch"),
        UseCase("aws-vod-more-like-x", "More like X", "VIDEO_ON_DEMAND", "related_items", "required", "required", "Watch", filters_out="Watch"),
        UseCase("aws-vod-most-popular", "Most popular", "VIDEO_ON_DEMAND", "popularity", "required", "unused", "Watch"),
        UseCase("aws-vod-trending-now", "Trending now", "VIDEO_ON_DEMAND", "trending", "optional", "unused", None),
        UseCase("aws-vod-top-picks", "Top picks for you", "VIDEO_ON_DEMAND", "personalization", "required", "unused", None),
    )
}  # fmt: skip


def use_case(recipe_arn_or_name: str) -> UseCase | None:
    return USE_CASES.get(recipe_arn_or_name.removeprefix(RECIPE_ARN_PREFIX))


def use_cases(domain: str) -> list[UseCase]:
    return [u for u in USE_CASES.values() if u.domain == domain]
