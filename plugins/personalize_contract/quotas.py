"""Amazon Personalize's quotas per dataset group: how many of each resource one dataset group holds.

Source: Amazon Personalize developer guide, "Amazon Personalize endpoints and quotas"
(https://docs.aws.amazon.com/personalize/latest/dg/limits.html), table "Each dataset group has the
following quotas"; docs/PERSONALIZE_FACTS.md, "Quotas per dataset group". Read by the config check
(include/pipeline/quota_config.py: a config that would exceed one fails at parse) and by the local
service (CreateSolution, CreateCampaign, CreateFilter, CreateRecommender answer LimitExceededException).
An adjustable quota can be raised for an account with the Service Quotas console; the config then
declares the raised value (`service_quotas:`), the local service keeps the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

QUOTAS_URL = "https://docs.aws.amazon.com/personalize/latest/dg/limits.html"


@dataclass(frozen=True)
class GroupQuota:
    resource: str  # as the quotas table names it, plural: "active solutions"
    limit: int  # the default quota per dataset group
    adjustable: bool  # raisable with the Service Quotas console

    def describe(self, limit: int | None = None) -> str:
        """ "at most 10 active solutions per dataset group (adjustable quota; <source>)"."""
        kind = "adjustable quota" if self.adjustable else "fixed quota"
        return f"at most {limit or self.limit} {self.resource} per dataset group ({kind}; {QUOTAS_URL})"


ACTIVE_SOLUTIONS = GroupQuota("active solutions", 10, adjustable=True)
ACTIVE_CAMPAIGNS = GroupQuota("active campaigns", 5, adjustable=True)
RECOMMENDERS = GroupQuota("recommenders", 5, adjustable=False)
FILTERS = GroupQuota("filters", 30, adjustable=True)
