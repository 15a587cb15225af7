"""Hooks for Amazon Personalize: the control plane, the runtime and the events API.

``PersonalizeHook`` also holds the idempotent get-or-create helpers the operators build on: every
create first looks the resource up by name, and a ``ResourceAlreadyExistsException`` (another
writer won the race) means describe and adopt, never fail. botocore ships no Personalize waiters,
so the hook loads its own from ``waiters/personalize.json``.
"""

from __future__ import annotations

import json
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
from personalize_contract.data_rules import DATASET_TYPES

from personalize.create_kwargs import with_create_kwargs
from personalize.kinds import (
    ACTIVE,
    CAMPAIGN,
    DATASET,
    EVENT_TRACKER,
    FAILED_STATUSES,
    FILTER,
    SOLUTION,
    SOLUTION_VERSION,
    ResourceKind,
    effective_status,
    error_code,
    failure_reason,
    schema_differences,
    status_queries,
)

# Personalize answers LimitExceededException when throttling; botocore's standard mode retries it
# with backoff. Applied only when neither the caller nor the connection configured retries.
DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 10}


class PersonalizeResourceFailedError(AirflowException):
    """A Personalize resource reached a status from which it never becomes ACTIVE."""


class PersonalizeResourceNotFoundError(AirflowException):
    """A Personalize resource the task needs does not exist."""


class PersonalizeResourceConflictError(AirflowException):
    """A resource of the requested name exists with a different, immutable definition."""


class _DefaultRetriesMixin:
    """Give clients botocore's standard retry mode unless retries were configured elsewhere."""

    @property
    def config(self) -> Config:
        config = super().config  # type: ignore[misc]
        if config.retries is None:
            config = config.merge(Config(retries=DEFAULT_RETRIES))
        return config


class PersonalizeHook(_DefaultRetriesMixin, AwsBaseHook):
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

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = self.client_type
        super().__init__(*args, **kwargs)

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

    # ---------------------------------------------------------------------------- get-or-create
    # Each get_or_create_* takes `create_kwargs`: more members for its Create* call (tags, domain,
    # ...), passed only when it creates; see `with_create_kwargs`.

    def get_or_create_dataset_group(
        self,
        name: str,
        *,
        role_arn: str | None = None,
        kms_key_arn: str | None = None,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the dataset group called ``name``."""
        if arn := self.find_dataset_group(name):
            return arn, False
        params = {"name": name, "roleArn": role_arn, "kmsKeyArn": kms_key_arn}
        params = with_create_kwargs(
            "CreateDatasetGroup", {k: v for k, v in params.items() if v}, create_kwargs
        )

        def create() -> str:
            response = self.conn.create_dataset_group(**params)
            return response["datasetGroupArn"]

        return self.create_or_adopt("dataset group", name, create, lambda: self.find_dataset_group(name))

    def get_or_create_schema(
        self, name: str, schema: str, create_kwargs: Mapping[str, Any] | None = None
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the schema; an existing one with another definition is an error."""
        try:
            json.loads(schema)
        except ValueError as error:
            raise ValueError(f"Schema {name!r} is not a valid Avro JSON document: {error}") from error
        arn = self.find_schema(name)
        created = False
        if arn is None:

            def create() -> str:
                params = with_create_kwargs("CreateSchema", {"name": name, "schema": schema}, create_kwargs)
                return self.conn.create_schema(**params)["schemaArn"]

            arn, created = self.create_or_adopt("schema", name, create, lambda: self.find_schema(name))
        if not created:
            existing = self.conn.describe_schema(schemaArn=arn)["schema"]["schema"]
            if differences := schema_differences(existing, schema):
                raise PersonalizeResourceConflictError(
                    f"Personalize schema {name!r} ({arn}) already exists with a different definition: "
                    f"{'; '.join(differences)}. Schemas cannot be changed: give the new definition a "
                    "new schema name."
                )
        return arn, created

    def get_or_create_dataset(
        self,
        *,
        dataset_group_arn: str,
        dataset_type: str,
        name: str,
        schema_arn: str,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the group's dataset of ``dataset_type`` (one per type per group)."""
        if dataset_type not in DATASET_TYPES:
            raise ValueError(f"Unknown dataset type {dataset_type!r}; expected one of {DATASET_TYPES}")

        def find() -> str | None:
            return self._find(
                "list_datasets",
                "datasets",
                "datasetArn",
                dataset_type,
                name_key="datasetType",
                datasetGroupArn=dataset_group_arn,
            )

        if arn := find():
            existing = self.describe(DATASET, arn)
            if existing["schemaArn"] != schema_arn:
                raise PersonalizeResourceConflictError(
                    f"Personalize dataset {existing['name']!r} ({dataset_type}, {arn}) uses schema "
                    f"{existing['schemaArn']}, not the requested {schema_arn}."
                )
            return arn, False

        def create() -> str:
            params = {
                "name": name,
                "schemaArn": schema_arn,
                "datasetGroupArn": dataset_group_arn,
                "datasetType": dataset_type,
            }
            return self.conn.create_dataset(**with_create_kwargs("CreateDataset", params, create_kwargs))[
                "datasetArn"
            ]

        return self.create_or_adopt("dataset", name, create, find)

    def get_or_create_solution(
        self,
        *,
        name: str,
        dataset_group_arn: str,
        recipe_arn: str,
        event_type: str | None = None,
        perform_hpo: bool = False,
        perform_auto_training: bool = False,
        solution_config: Mapping[str, Any] | None = None,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """
        Return (ARN, created) of the solution called ``name``.

        ``perform_auto_training`` defaults to False, unlike the API: automatic training retrains
        (and bills) every seven days behind the pipeline's back.
        """

        def find() -> str | None:
            return self.find_solution(name)

        if (arn := find()) is None:
            params: dict[str, Any] = {
                "name": name,
                "datasetGroupArn": dataset_group_arn,
                "recipeArn": recipe_arn,
                "performHPO": perform_hpo,
                "performAutoTraining": perform_auto_training,
            }
            if event_type:
                params["eventType"] = event_type
            if solution_config:
                params["solutionConfig"] = dict(solution_config)
            params = with_create_kwargs("CreateSolution", params, create_kwargs)
            arn, created = self.create_or_adopt(
                "solution", name, lambda: self.conn.create_solution(**params)["solutionArn"], find
            )
            if created:
                return arn, True
        existing = self.describe(SOLUTION, arn)
        for attribute, requested in (("datasetGroupArn", dataset_group_arn), ("recipeArn", recipe_arn)):
            if existing.get(attribute) != requested:
                raise PersonalizeResourceConflictError(
                    f"Personalize solution {name!r} ({arn}) has {attribute} {existing.get(attribute)}, "
                    f"not the requested {requested}."
                )
        return arn, False

    def get_or_create_filter(
        self,
        *,
        name: str,
        dataset_group_arn: str,
        filter_expression: str,
        create_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Return (ARN, created) of the filter; an existing one with another expression is an error."""

        def find() -> str | None:
            return self.find_filter(name)

        if (arn := find()) is None:

            def create() -> str:
                params = {
                    "name": name,
                    "datasetGroupArn": dataset_group_arn,
                    "filterExpression": filter_expression,
                }
                return self.conn.create_filter(**with_create_kwargs("CreateFilter", params, create_kwargs))[
                    "filterArn"
                ]

            arn, created = self.create_or_adopt("filter", name, create, find)
            if created:
                return arn, True
        existing = self.describe(FILTER, arn)
        if existing.get("filterExpression") != filter_expression:
            raise PersonalizeResourceConflictError(
                f"Personalize filter {name!r} ({arn}) has expression {existing.get('filterExpression')!r}, "
                f"not the requested {filter_expression!r}. Filters cannot be changed: use a new name."
            )
        return arn, False

    def get_or_create_event_tracker(
        self, *, name: str, dataset_group_arn: str, create_kwargs: Mapping[str, Any] | None = None
    ) -> tuple[str, str, bool]:
        """Return (ARN, trackingId, created); a dataset group holds at most one event tracker."""

        def find() -> str | None:
            for summary in self._paginate(
                "list_event_trackers", "eventTrackers", datasetGroupArn=dataset_group_arn
            ):
                if summary["name"] != name:
                    self.log.warning(
                        "Dataset group %s already has event tracker %r; using it instead of creating %r",
                        dataset_group_arn,
                        summary["name"],
                        name,
                    )
                return summary["eventTrackerArn"]
            return None

        arn = find()
        created = False
        if arn is None:

            def create() -> str:
                params = {"name": name, "datasetGroupArn": dataset_group_arn}
                return self.conn.create_event_tracker(
                    **with_create_kwargs("CreateEventTracker", params, create_kwargs)
                )["eventTrackerArn"]

            arn, created = self.create_or_adopt("event tracker", name, create, find)
        return arn, self.describe(EVENT_TRACKER, arn)["trackingId"], created

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


class PersonalizeRuntimeHook(_DefaultRetriesMixin, AwsBaseHook):
    """
    Interact with Amazon Personalize Runtime (GetRecommendations, GetPersonalizedRanking).

    Provide thin wrapper around
    :external+boto3:py:class:`boto3.client("personalize-runtime") <PersonalizeRuntime.Client>`.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    client_type = "personalize-runtime"

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = self.client_type
        super().__init__(*args, **kwargs)


class PersonalizeEventsHook(_DefaultRetriesMixin, AwsBaseHook):
    """
    Interact with Amazon Personalize Events (PutEvents, PutItems, PutUsers).

    Provide thin wrapper around
    :external+boto3:py:class:`boto3.client("personalize-events") <PersonalizeEvents.Client>`.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    client_type = "personalize-events"

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = self.client_type
        super().__init__(*args, **kwargs)
