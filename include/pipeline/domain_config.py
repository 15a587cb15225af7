"""Config of domain dataset groups: `domain`, `recommenders`, `recommender_schedule`.

A domain config (`domain: ECOMMERCE` or `VIDEO_ON_DEMAND`) is served by recommenders, which
Personalize trains itself, instead of a custom solution behind a campaign: so it has
`recommenders` and no `solution` / `campaign`, and a config without `domain` is the other way
round. `check_domain_keys` says which keys go together, naming them.
"""

from __future__ import annotations

from typing import Annotated, Any

from personalize_contract import domains
from personalize_contract.names import NAME_MAX_LENGTH, NAME_PATTERN
from personalize_contract.recipes import RECIPE_ARN_PREFIX
from pydantic import StringConstraints, field_validator

from include.pipeline.config_types import Cron, StrictModel, check_botocore_shape

DOMAINS = domains.DOMAINS


class RecommenderConfig(StrictModel):
    """One recommender: a use case of the config's domain, under a name of its own."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=NAME_MAX_LENGTH)]
    # The use case's recipe, e.g. aws-ecomm-recommended-for-you (the ARN works too).
    use_case: str
    # CreateRecommender recommenderConfig, Personalize's own camelCase keys.
    recommender_config: dict[str, Any] = {}

    @field_validator("use_case")
    @classmethod
    def _known_use_case(cls, value: str) -> str:
        found = domains.use_case(value)
        if found is None:
            raise ValueError(f"{value!r} is not a domain use case; use one of {sorted(domains.USE_CASES)}")
        return found.recipe

    @field_validator("recommender_config")
    @classmethod
    def _recommender_config_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_botocore_shape(value, "RecommenderConfig")

    @property
    def recipe_arn(self) -> str:
        return RECIPE_ARN_PREFIX + self.use_case

    @property
    def definition(self) -> domains.UseCase:
        return domains.USE_CASES[self.use_case]


class RecommenderScheduleConfig(StrictModel):
    """Stop every recommender on `stop` and start it again on `start` (a stopped one is not billed)."""

    stop: Cron
    start: Cron


# `config` is a PipelineConfig (not imported: config.py imports this module).
def check_domain_keys(config: Any) -> None:
    """Which keys go together: raise naming the key that is missing or out of place."""
    if config.domain is None:
        for key in ("recommenders", "recommender_schedule"):
            if getattr(config, key):
                raise ValueError(f"{key}: needs `domain: ECOMMERCE` or `domain: VIDEO_ON_DEMAND`")
        # A missing solution: or campaign: is named before validation (solution_config.check_shorthand).
        if not config.solutions:
            raise ValueError(
                "solutions: at least 1 entry (a config without `domain` trains custom solutions and serves "
                "them from a campaign or by batch)"
            )
        return
    for key in ("solutions", "solution", "campaign"):
        if getattr(config, key):
            raise ValueError(
                f"{key}: a domain config (domain: {config.domain}) has no custom solution or campaign: "
                "its recommenders serve; remove solutions, solution and campaign, or remove domain"
            )
    if not config.recommenders:
        raise ValueError(f"recommenders: a domain config (domain: {config.domain}) needs at least one")
    names = [r.name for r in config.recommenders]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"recommenders: names repeated: {repeated}")
    for index, recommender in enumerate(config.recommenders):
        if recommender.definition.domain != config.domain:
            raise ValueError(
                f"recommenders.{index}.use_case: {recommender.use_case} is a {recommender.definition.domain} "
                f"use case, not {config.domain}; {config.domain}'s are "
                f"{[u.recipe for u in domains.use_cases(config.domain)]}"
            )


def domain_create_kwargs(config: Any) -> dict[str, dict[str, str]]:
    """EnsureResources' extra_create_kwargs: the domain on the dataset group and its schemas."""
    if config.domain is None:
        return {}
    return {"dataset_group": {"domain": config.domain}, "schema": {"domain": config.domain}}
