"""Hooks for Amazon Personalize: the control plane, the runtime and the events API.

``PersonalizeHook`` also holds the idempotent get-or-create helpers the operators build on
(``get_or_create.py``). botocore ships no Personalize waiters, so the hook loads its own from
``waiters/personalize.json``. The errors live in ``errors.py`` and are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException
from botocore.config import Config
from botocore.exceptions import ClientError

from personalize.errors import (
    PersonalizeResourceConflictError,
    PersonalizeResourceFailedError,
    PersonalizeResourceNotFoundError,
)
from personalize.get_or_create import GetOrCreateMixin
from personalize.kinds import (
    ACTIVE,
    CAMPAIGN,
    FAILED_STATUSES,
    SOLUTION_VERSION,
    ResourceKind,
    effective_status,
    error_code,
    failure_reason,
    status_queries,
)

__all__ = [
    "PersonalizeEventsHook",
    "PersonalizeHook",
    "PersonalizeResourceConflictError",
    "PersonalizeResourceFailedError",
    "PersonalizeResourceNotFoundError",
    "PersonalizeRuntimeHook",
]

# Personalize answers LimitExceededException when throttling; botocore's standard mode retries it
# with backoff. Applied only when neither the caller nor the connection configured retries.
DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 10}


class _PersonalizeClientHook(AwsBaseHook):
    """A hook for one of Personalize's clients (``client_type``), in botocore's standard retry mode
    unless retries were configured elsewhere."""

    client_type: str

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = self.client_type
        super().__init__(*args, **kwargs)

    @property
    def config(self) -> Config:
        config = super().config
        if config.retries is None:
            config = config.merge(Config(retries=DEFAULT_RETRIES))
        return config


class PersonalizeHook(GetOrCreateMixin, _PersonalizeClientHook):
    """
    Interact with Amazon Personalize's control plane.

    Provide thin wrapper around :external+boto3:py:class:`boto3.client("personalize") <Personalize.Client>`,
    with waiters for every resource that has a status and idempotent get-or-create helpers.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    client_type = "personalize"

    @cached_property
    def waiter_path(self) -> Path:
        return Path(__file__).parent / "waiters" / "personalize.json"

    # ----------------------------------------------------------------- describe, wait, fail loudly

    def describe(self, kind: ResourceKind, arn: str) -> dict[str, Any]:
        """Describe one resource; a missing one raises an error naming its kind and ARN."""
        try:
            response = getattr(self.conn, kind.describe_method)(**{kind.arn_parameter: arn})
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise PersonalizeResourceNotFoundError(
                    f"Personalize {kind.label} {arn} does not exist: {error}"
                ) from error
            raise
        return response[kind.response_key]

    def status(self, kind: ResourceKind, arn: str) -> str:
        return effective_status(kind, self.describe(kind, arn))

    def raise_if_failed(self, kind: ResourceKind, arn: str, description: Mapping[str, Any] | None = None):
        """Raise with Personalize's failureReason when the resource can never become ACTIVE."""
        description = description if description is not None else self.describe(kind, arn)
        status = effective_status(kind, description)
        if status in FAILED_STATUSES:
            raise PersonalizeResourceFailedError(
                f"Personalize {kind.label} {arn} is {status}: {failure_reason(kind, description)}"
            )

    def explain_wait_failure(self, kind: ResourceKind, arn: str, message: str) -> AirflowException:
        """Turn a failed wait into the error a person can act on: the resource's own failureReason."""
        try:
            self.raise_if_failed(kind, arn)
        except (PersonalizeResourceFailedError, PersonalizeResourceNotFoundError) as error:
            return error
        return AirflowException(
            f"Waiting for Personalize {kind.label} {arn} to become ACTIVE failed: {message}"
        )

    def wait_until_active(
        self, kind: ResourceKind, arn: str, *, waiter_delay: int = 30, waiter_max_attempts: int = 720
    ) -> None:
        """Block until the resource is ACTIVE; fail fast, with the failureReason, when it fails."""
        try:
            wait(
                waiter=self.get_waiter(kind.waiter_name),
                waiter_delay=waiter_delay,
                waiter_max_attempts=waiter_max_attempts,
                args={kind.arn_parameter: arn},
                failure_message=f"Personalize {kind.label} {arn} failed",
                status_message=f"Personalize {kind.label} {arn} status",
                status_args=status_queries(kind),
            )
        except WaiterTerminalFailure as error:
            raise self.explain_wait_failure(kind, arn, str(error)) from error

    # ------------------------------------------------------------------------- listing by name

    def _paginate(self, operation: str, result_key: str, **filters: Any) -> Iterator[dict[str, Any]]:
        try:
            for page in self.conn.get_paginator(operation).paginate(**filters):
                yield from page.get(result_key, [])
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise PersonalizeResourceNotFoundError(
                    f"Personalize {operation} found no resource {filters}: {error}"
                ) from error
            raise

    def _find(
        self, operation: str, result_key: str, arn_key: str, name: str, name_key: str = "name", **filters: Any
    ) -> str | None:
        for summary in self._paginate(operation, result_key, **filters):
            if summary.get(name_key) == name:
                return summary[arn_key]
        return None

    def create_or_adopt(
        self, label: str, name: str, create: Callable[[], str], find: Callable[[], str | None]
    ):
        """Create, or adopt what a concurrent writer created under the same name. Returns (arn, created)."""
        try:
            return create(), True
        except ClientError as error:
            if error_code(error) != "ResourceAlreadyExistsException":
                raise
            arn = find()
            if arn is None:
                raise PersonalizeResourceNotFoundError(
                    f"Personalize says {label} {name!r} already exists, but it is not listed: {error}"
                ) from error
            self.log.info("Adopting existing Personalize %s %s", label, arn)
            return arn, False

    def find_dataset_group(self, name: str) -> str | None:
        return self._find("list_dataset_groups", "datasetGroups", "datasetGroupArn", name)

    def find_schema(self, name: str) -> str | None:
        return self._find("list_schemas", "schemas", "schemaArn", name)

    def find_solution(self, name: str, dataset_group_arn: str | None = None) -> str | None:
        filters = {"datasetGroupArn": dataset_group_arn} if dataset_group_arn else {}
        return self._find("list_solutions", "solutions", "solutionArn", name, **filters)

    def find_filter(self, name: str, dataset_group_arn: str | None = None) -> str | None:
        filters = {"datasetGroupArn": dataset_group_arn} if dataset_group_arn else {}
        return self._find("list_filters", "Filters", "filterArn", name, **filters)

    def find_dataset_import_job(self, dataset_arn: str, job_name: str) -> str | None:
        return self._find(
            "list_dataset_import_jobs",
            "datasetImportJobs",
            "datasetImportJobArn",
            job_name,
            name_key="jobName",
            datasetArn=dataset_arn,
        )

    def find_batch_inference_job(self, solution_version_arn: str, job_name: str) -> str | None:
        return self._find(
            "list_batch_inference_jobs",
            "batchInferenceJobs",
            "batchInferenceJobArn",
            job_name,
            name_key="jobName",
            solutionVersionArn=solution_version_arn,
        )

    def find_data_deletion_job(self, dataset_group_arn: str, job_name: str) -> str | None:
        # botocore has no paginator for ListDataDeletionJobs: follow nextToken by hand.
        params: dict[str, Any] = {"datasetGroupArn": dataset_group_arn}
        while True:
            page = self.conn.list_data_deletion_jobs(**params)
            for summary in page.get("dataDeletionJobs", []):
                if summary.get("jobName") == job_name:
                    return summary["dataDeletionJobArn"]
            if not page.get("nextToken"):
                return None
            params["nextToken"] = page["nextToken"]

    def find_dataset_export_job(self, dataset_arn: str, job_name: str) -> str | None:
        return self._find(
            "list_dataset_export_jobs",
            "datasetExportJobs",
            "datasetExportJobArn",
            job_name,
            name_key="jobName",
            datasetArn=dataset_arn,
        )

    def find_solution_version(self, solution_arn: str, name: str) -> str | None:
        """The solution's version called ``name``; summaries carry no name, so newest are described first."""
        summaries = sorted(
            self._paginate("list_solution_versions", "solutionVersions", solutionArn=solution_arn),
            key=lambda summary: summary["creationDateTime"],
            reverse=True,
        )
        for summary in summaries:
            arn = summary["solutionVersionArn"]
            if self.describe(SOLUTION_VERSION, arn).get("name") == name:
                return arn
        return None

    def find_campaign(self, name: str) -> dict[str, Any] | None:
        """The campaign called ``name`` as DescribeCampaign returns it, or None when there is none."""
        arn = self._find("list_campaigns", "campaigns", "campaignArn", name)
        return self.describe(CAMPAIGN, arn) if arn else None

    # ------------------------------------------------------------------------------ model state

    def get_latest_active_solution_version(self, solution_arn: str) -> str | None:
        """The most recently created ACTIVE version of the solution, or None when none is ACTIVE."""
        active = [
            summary
            for summary in self._paginate(
                "list_solution_versions", "solutionVersions", solutionArn=solution_arn
            )
            if summary["status"] == ACTIVE
        ]
        if not active:
            return None
        return max(active, key=lambda summary: summary["creationDateTime"])["solutionVersionArn"]

    def get_serving_solution_version(self, campaign_name_or_arn: str) -> str | None:
        """The solution version the campaign serves now (the champion), or None when nothing serves."""
        if campaign_name_or_arn.startswith("arn:"):
            try:
                campaign = self.describe(CAMPAIGN, campaign_name_or_arn)
            except PersonalizeResourceNotFoundError:
                return None
        else:
            campaign = self.find_campaign(campaign_name_or_arn)
        return serving_version(campaign)

    def campaign_arns(self) -> dict[str, str]:
        """Name -> ARN of every campaign (ListCampaigns, all pages): one listing for many campaigns."""
        return {
            summary["name"]: summary["campaignArn"]
            for summary in self._paginate("list_campaigns", "campaigns")
        }


def serving_version(campaign: Mapping[str, Any] | None) -> str | None:
    """The solution version a described campaign serves now, or None when nothing serves.

    During an update the campaign keeps serving its previous version, which solutionVersionArn still
    names; a campaign that never became ACTIVE serves nothing.
    """
    if campaign is None or campaign["status"] != ACTIVE:
        return None
    return campaign.get("solutionVersionArn")


class PersonalizeRuntimeHook(_PersonalizeClientHook):
    """
    Interact with Amazon Personalize Runtime (GetRecommendations, GetPersonalizedRanking).

    Provide thin wrapper around
    :external+boto3:py:class:`boto3.client("personalize-runtime") <PersonalizeRuntime.Client>`.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    client_type = "personalize-runtime"


class PersonalizeEventsHook(_PersonalizeClientHook):
    """
    Interact with Amazon Personalize Events (PutEvents, PutItems, PutUsers).

    Provide thin wrapper around
    :external+boto3:py:class:`boto3.client("personalize-events") <PersonalizeEvents.Client>`.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    client_type = "personalize-events"
