"""Campaigns: create, or UpdateCampaign to serve another solution version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from personalize.hooks import PersonalizeResourceFailedError
from personalize.kinds import ACTIVE, CAMPAIGN, SOLUTION_VERSION, failure_reason
from personalize.links import (
    PersonalizeCampaignLink,
)
from personalize.operators.base import (
    CREATE_TEMPLATE_FIELDS,
    IN_PROGRESS_STATUSES,
    Pending,
    PersonalizeBaseOperator,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class PersonalizeDeployCampaignOperator(PersonalizeBaseOperator):
    """
    Make a campaign serve a solution version: create it when absent, else UpdateCampaign.

    Nothing is called when the campaign already serves that version with the same settings. An
    update or creation already in progress is waited for before anything new is asked.

    :param campaign_name: Name of the campaign. (templated)
    :param solution_version_arn: Solution version to serve. (templated)
    :param min_provisioned_tps: Minimum provisioned transactions per second (>= 1). (templated)
    :param campaign_config: ``campaignConfig`` for the API, e.g. ``{"itemExplorationWeight": ...}``.
        (templated)

    Returns the campaign ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "campaign_name",
        "solution_version_arn",
        "min_provisioned_tps",
        "campaign_config",
        *CREATE_TEMPLATE_FIELDS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **PersonalizeBaseOperator.template_fields_renderers,
        "campaign_config": "json",
    }
    operator_extra_links = (PersonalizeCampaignLink(),)
    default_waiter_delay = 30
    default_waiter_max_attempts = 240

    def __init__(
        self,
        *,
        campaign_name: str,
        solution_version_arn: str,
        min_provisioned_tps: int = 1,
        campaign_config: Mapping[str, Any] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.campaign_name = campaign_name
        self.solution_version_arn = solution_version_arn
        self.min_provisioned_tps = min_provisioned_tps
        self.campaign_config = campaign_config

    def _requested(self) -> dict[str, Any]:
        requested: dict[str, Any] = {
            "solutionVersionArn": self.solution_version_arn,
            "minProvisionedTPS": int(self.min_provisioned_tps),
        }
        if self.campaign_config:
            requested["campaignConfig"] = dict(self.campaign_config)
        return requested

    def step(self, context: Context) -> Any:
        hook = self.hook
        requested = self._requested()
        if requested["minProvisionedTPS"] < 1:
            raise ValueError(f"min_provisioned_tps must be at least 1, got {self.min_provisioned_tps}")
        campaign = hook.find_campaign(self.campaign_name)
        if campaign is None:
            self.log.info("Creating campaign %s serving %s", self.campaign_name, self.solution_version_arn)
            arn, _ = hook.create_or_adopt(
                "campaign",
                self.campaign_name,
                lambda: hook.conn.create_campaign(
                    **self.create_params("CreateCampaign", {"name": self.campaign_name, **requested})
                )["campaignArn"],
                lambda: (hook.find_campaign(self.campaign_name) or {}).get("campaignArn"),
            )
            self._link(context, arn)
            return Pending(CAMPAIGN, arn, result=arn)

        arn = campaign["campaignArn"]
        self._link(context, arn)
        update = campaign.get("latestCampaignUpdate") or {}
        if campaign["status"] in IN_PROGRESS_STATUSES or update.get("status") in IN_PROGRESS_STATUSES:
            self.log.info("Campaign %s is being created or updated; waiting before deciding", arn)
            return Pending(CAMPAIGN, arn, result=arn, blocking=True)
        if campaign["status"] == ACTIVE and self._serves_requested(campaign, requested):
            self.log.info("Campaign %s already serves %s; nothing to do", arn, self.solution_version_arn)
            return arn
        if campaign["status"] not in (ACTIVE, "CREATE FAILED"):
            raise PersonalizeResourceFailedError(
                f"Personalize campaign {arn} is {campaign['status']} and cannot be updated: "
                f"{failure_reason(CAMPAIGN, campaign)}"
            )
        self.log.info("Updating campaign %s to serve %s", arn, self.solution_version_arn)
        hook.conn.update_campaign(campaignArn=arn, **requested)
        return Pending(CAMPAIGN, arn, result=arn)

    @staticmethod
    def _serves_requested(campaign: Mapping[str, Any], requested: Mapping[str, Any]) -> bool:
        if "campaignConfig" in requested:
            current_config = campaign.get("campaignConfig") or {}
            if any(current_config.get(key) != value for key, value in requested["campaignConfig"].items()):
                return False
        return (
            campaign.get("solutionVersionArn") == requested["solutionVersionArn"]
            and campaign.get("minProvisionedTPS") == requested["minProvisionedTPS"]
        )

    def _link(self, context: Context, campaign_arn: str) -> None:
        group_arn = self.hook.describe(SOLUTION_VERSION, self.solution_version_arn)["datasetGroupArn"]
        self._persist_link(context, PersonalizeCampaignLink, dataset_group=group_arn, campaign=campaign_arn)
