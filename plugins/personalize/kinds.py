"""The Personalize resource kinds the hooks, operators, sensors and triggers act on: how each is
described, its ARN and status fields, its waiter, and what its status and failure reason mean."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

ACTIVE = "ACTIVE"
# Statuses from which a resource never becomes ACTIVE. The waiters JSON fails on the same set
# (a test keeps them in step). Batch inference jobs are documented with both failure spellings.
FAILED_STATUSES = frozenset(
    {"CREATE FAILED", "FAILED", "CREATE STOPPING", "CREATE STOPPED", "DELETE PENDING", "DELETE IN_PROGRESS"}
)


@dataclass(frozen=True)
class ResourceKind:
    """How to describe and wait for one kind of Personalize resource."""

    label: str  # as Personalize names it in its documentation
    describe_method: str
    arn_parameter: str
    response_key: str
    waiter_name: str
    # The status that means done (jobs that end rather than serve, e.g. data deletion: COMPLETED)
    # and the one that means failed, as Personalize spells them for this kind.
    done_status: str = "ACTIVE"
    failed_status: str = "CREATE FAILED"
    # Resources updated in place (campaigns, recommenders) report the update in this member.
    update_key: str | None = None


DATASET_GROUP = ResourceKind(
    "dataset group", "describe_dataset_group", "datasetGroupArn", "datasetGroup", "dataset_group_active"
)
DATASET = ResourceKind("dataset", "describe_dataset", "datasetArn", "dataset", "dataset_active")
SOLUTION = ResourceKind("solution", "describe_solution", "solutionArn", "solution", "solution_active")
FILTER = ResourceKind("filter", "describe_filter", "filterArn", "filter", "filter_active")
EVENT_TRACKER = ResourceKind(
    "event tracker", "describe_event_tracker", "eventTrackerArn", "eventTracker", "event_tracker_active"
)
DATASET_IMPORT_JOB = ResourceKind(
    "dataset import job",
    "describe_dataset_import_job",
    "datasetImportJobArn",
    "datasetImportJob",
    "dataset_import_job_active",
)
SOLUTION_VERSION = ResourceKind(
    "solution version",
    "describe_solution_version",
    "solutionVersionArn",
    "solutionVersion",
    "solution_version_active",
)
CAMPAIGN = ResourceKind(
    "campaign",
    "describe_campaign",
    "campaignArn",
    "campaign",
    "campaign_active",
    update_key="latestCampaignUpdate",
)
RECOMMENDER = ResourceKind(
    "recommender",
    "describe_recommender",
    "recommenderArn",
    "recommender",
    "recommender_active",
    update_key="latestRecommenderUpdate",
)
BATCH_INFERENCE_JOB = ResourceKind(
    "batch inference job",
    "describe_batch_inference_job",
    "batchInferenceJobArn",
    "batchInferenceJob",
    "batch_inference_job_active",
)
DATA_DELETION_JOB = ResourceKind(
    "data deletion job",
    "describe_data_deletion_job",
    "dataDeletionJobArn",
    "dataDeletionJob",
    "data_deletion_job_completed",
    done_status="COMPLETED",
    failed_status="FAILED",
)
DATASET_EXPORT_JOB = ResourceKind(
    "dataset export job",
    "describe_dataset_export_job",
    "datasetExportJobArn",
    "datasetExportJob",
    "dataset_export_job_active",
)
RESOURCE_KINDS = {
    kind.response_key: kind
    for kind in (
        DATASET_GROUP,
        DATASET,
        SOLUTION,
        FILTER,
        EVENT_TRACKER,
        DATASET_IMPORT_JOB,
        SOLUTION_VERSION,
        CAMPAIGN,
        RECOMMENDER,
        BATCH_INFERENCE_JOB,
        DATA_DELETION_JOB,
        DATASET_EXPORT_JOB,
    )
}


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def effective_status(kind: ResourceKind, description: Mapping[str, Any]) -> str:
    """The status that decides whether the resource is usable.

    A campaign being updated keeps status ACTIVE while ``latestCampaignUpdate`` moves through its
    own statuses; until the update settles the campaign is not yet what was asked for.
    """
    status = description["status"]
    if status == kind.done_status != ACTIVE:
        # One word for "usable" across kinds, so every wait and operator step asks the same question.
        return ACTIVE
    if kind.update_key and status == ACTIVE:
        return (description.get(kind.update_key) or {}).get("status", ACTIVE)
    return status


def failure_reason(kind: ResourceKind, description: Mapping[str, Any]) -> str:
    reason = description.get("failureReason")
    if kind.update_key and description.get("status") == ACTIVE:
        reason = (description.get(kind.update_key) or {}).get("failureReason") or reason
    return reason or "Personalize gave no failureReason"


def schema_differences(existing: str, requested: str) -> list[str]:
    """Human-readable differences between two Avro schema documents, one entry per field."""
    old, new = json.loads(existing), json.loads(requested)
    old_fields = {field["name"]: field for field in old.get("fields", [])}
    new_fields = {field["name"]: field for field in new.get("fields", [])}
    differences = [f"field {name} added" for name in new_fields if name not in old_fields]
    differences += [f"field {name} removed" for name in old_fields if name not in new_fields]
    for name in new_fields.keys() & old_fields.keys():
        old_field, new_field = old_fields[name], new_fields[name]
        for attribute in sorted(old_field.keys() | new_field.keys()):
            if old_field.get(attribute) != new_field.get(attribute):
                differences.append(
                    f"field {name} {attribute} {old_field.get(attribute)!r} -> {new_field.get(attribute)!r}"
                )
    for attribute in sorted((old.keys() | new.keys()) - {"fields"}):
        if old.get(attribute) != new.get(attribute):
            differences.append(f"record {attribute} {old.get(attribute)!r} -> {new.get(attribute)!r}")
    return sorted(differences)


def status_queries(kind: ResourceKind) -> list[str]:
    """JMESPath queries the waiters log after each attempt."""
    queries = [f"{kind.response_key}.status", f"{kind.response_key}.failureReason"]
    if kind.update_key:
        update = f"{kind.response_key}.{kind.update_key}"
        queries += [f"{update}.status", f"{update}.failureReason"]
    return queries
