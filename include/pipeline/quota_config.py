"""Amazon Personalize's quotas per dataset group, checked when a config is validated.

A config that would need more solutions, campaigns, filters or recommenders in its dataset group
than Personalize allows fails at parse, naming the key and the quota, instead of a train_deploy run
failing hours later on CreateSolution's LimitExceededException. The quotas are
personalize_contract.quotas'; an account whose adjustable quota was raised (Service Quotas console)
declares the raised value under `service_quotas:`.
"""

from __future__ import annotations

from typing import Any

from personalize_contract.quotas import (
    ACTIVE_CAMPAIGNS,
    ACTIVE_SOLUTIONS,
    FILTERS,
    RECOMMENDERS,
    GroupQuota,
)
from pydantic import Field

from include.pipeline.config_types import StrictModel


class ServiceQuotasConfig(StrictModel):
    """Adjustable per-dataset-group quotas as raised for this account; None: Personalize's default."""

    solutions_per_dataset_group: int | None = Field(None, ge=1)
    campaigns_per_dataset_group: int | None = Field(None, ge=1)
    filters_per_dataset_group: int | None = Field(None, ge=1)


def check_group_quotas(config: Any) -> None:
    """Raise ValueError naming the key when the config needs more of a resource than its group holds."""
    raised: ServiceQuotasConfig = config.service_quotas
    solutions = len(config.solutions) + (1 if config.baseline_solution else 0)
    what = f"{solutions} {ACTIVE_SOLUTIONS.resource}"
    if config.baseline_solution:
        what += f" ({len(config.solutions)} entries + the popularity baseline a gate asks for)"
    _check("solutions", what, solutions, ACTIVE_SOLUTIONS, raised, "solutions_per_dataset_group", config)
    campaigns = [index for index, entry in enumerate(config.solutions) if entry.campaign is not None]
    limit = raised.campaigns_per_dataset_group or ACTIVE_CAMPAIGNS.limit
    if len(campaigns) > limit:
        # The entry whose campaign is one too many.
        key = f"solutions.{campaigns[limit]}.campaign"
        what = f"{len(campaigns)} {ACTIVE_CAMPAIGNS.resource}"
        _check(key, what, len(campaigns), ACTIVE_CAMPAIGNS, raised, "campaigns_per_dataset_group", config)
    filters = len(config.filters)
    _check("filters", f"{filters} filters", filters, FILTERS, raised, "filters_per_dataset_group", config)
    recommenders = len(config.recommenders)
    _check("recommenders", f"{recommenders} recommenders", recommenders, RECOMMENDERS, raised, None, config)


def _check(
    key: str,
    what: str,
    count: int,
    quota: GroupQuota,
    raised: ServiceQuotasConfig,
    raised_key: str | None,
    config: Any,
) -> None:
    limit = (getattr(raised, raised_key) if raised_key else None) or quota.limit
    if count > limit:
        raise ValueError(
            f"{key}: {what} in dataset group {config.dataset_group}, but Amazon Personalize allows "
            f"{quota.describe(limit)}{_remedy(raised_key)}"
        )


def _remedy(raised_key: str | None) -> str:
    if raised_key is None:
        return "; use fewer, or a second dataset group (a second config file)"
    return (
        f"; use fewer, or have the quota raised (Service Quotas console) and set service_quotas.{raised_key} "
        "to the raised value"
    )
