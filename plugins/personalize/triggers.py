"""Triggers that wait, in the triggerer, for a Personalize resource to become ACTIVE.

They live in the plugins folder because the triggerer has the plugins folder on ``sys.path`` but
not the DAG folder. Each emits ``{"status": "success"|"error", "message"?: ...,
"resource": {"arn", "kind", "resume_state"}}``; the deferring task's ``execute_complete`` turns an
error into Personalize's own ``failureReason``. ``resume_state`` carries what a multi-step operator
needs after the wait inside the event itself, which every way of running triggers delivers
(``dag.test()`` drops the ``kwargs`` given to ``defer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException

from personalize.hooks import PersonalizeHook
from personalize.kinds import (
    BATCH_INFERENCE_JOB,
    CAMPAIGN,
    DATA_DELETION_JOB,
    DATASET,
    DATASET_EXPORT_JOB,
    DATASET_GROUP,
    DATASET_IMPORT_JOB,
    EVENT_TRACKER,
    FILTER,
    RECOMMENDER,
    RESOURCE_KINDS,
    SOLUTION,
    SOLUTION_VERSION,
    ResourceKind,
    status_queries,
)


class PersonalizeResourceActiveTrigger(AwsBaseWaiterTrigger):
    """
    Base for the triggers below: wait with the resource kind's waiter until it is ACTIVE.

    :param arn: ARN of the resource to wait for.
    :param resume_state: JSON-serialisable state handed back in the event for the deferring task.
    :param waiter_delay: The amount of time in seconds to wait between attempts.
    :param waiter_max_attempts: The maximum number of attempts to be made.
    :param first_poll_delay: Seconds before the first status check (default ``waiter_delay``): the
        task polled just before deferring, and an event within seconds of the deferral meets the
        scheduler's stale "success" of the defer exit (apache/airflow#72716), failing the resumed try.
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region where the resource is.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    aws_hook_class = PersonalizeHook
    kind: ResourceKind

    def __init__(
        self,
        *,
        arn: str,
        resume_state: dict | None = None,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        first_poll_delay: float | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        self.first_poll_delay = waiter_delay if first_poll_delay is None else max(0.0, first_poll_delay)
        super().__init__(
            serialized_fields={
                "arn": arn,
                "resume_state": resume_state or {},
                "first_poll_delay": self.first_poll_delay,
            },
            waiter_name=self.kind.waiter_name,
            waiter_args={self.kind.arn_parameter: arn},
            failure_message=f"Personalize {self.kind.label} {arn} failed",
            status_message=f"Personalize {self.kind.label} {arn} status",
            status_queries=status_queries(self.kind),
            return_key="resource",
            return_value={"arn": arn, "kind": self.kind.response_key, "resume_state": resume_state or {}},
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )

    async def run(self) -> AsyncIterator:
        await asyncio.sleep(self.first_poll_delay)
        async for event in super().run():
            yield event


class PersonalizeDatasetGroupActiveTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a dataset group is ACTIVE."""

    kind = DATASET_GROUP


class PersonalizeDatasetActiveTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a dataset is ACTIVE."""

    kind = DATASET


class PersonalizeSolutionActiveTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a solution is ACTIVE."""

    kind = SOLUTION


class PersonalizeFilterActiveTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a filter is ACTIVE."""

    kind = FILTER


class PersonalizeEventTrackerActiveTrigger(PersonalizeResourceActiveTrigger):
    """Wait until an event tracker is ACTIVE."""

    kind = EVENT_TRACKER


class PersonalizeDatasetImportJobTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a dataset import job is ACTIVE (its data imported)."""

    kind = DATASET_IMPORT_JOB


class PersonalizeSolutionVersionTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a solution version is ACTIVE (trained)."""

    kind = SOLUTION_VERSION


class PersonalizeCampaignTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a campaign is ACTIVE and its latest update, if any, is ACTIVE too."""

    kind = CAMPAIGN


class PersonalizeBatchInferenceJobTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a batch inference job has written its output."""

    kind = BATCH_INFERENCE_JOB


class PersonalizeRecommenderTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a recommender is ACTIVE and its latest update, if any, is ACTIVE too."""

    kind = RECOMMENDER


class PersonalizeDataDeletionJobTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a data deletion job is COMPLETED (the users' records erased)."""

    kind = DATA_DELETION_JOB


class PersonalizeDatasetExportJobTrigger(PersonalizeResourceActiveTrigger):
    """Wait until a dataset export job is ACTIVE (its files written)."""

    kind = DATASET_EXPORT_JOB


TRIGGER_FOR_KIND: dict[ResourceKind, type[PersonalizeResourceActiveTrigger]] = {
    trigger.kind: trigger
    for trigger in (
        PersonalizeDatasetGroupActiveTrigger,
        PersonalizeDatasetActiveTrigger,
        PersonalizeSolutionActiveTrigger,
        PersonalizeFilterActiveTrigger,
        PersonalizeEventTrackerActiveTrigger,
        PersonalizeDatasetImportJobTrigger,
        PersonalizeSolutionVersionTrigger,
        PersonalizeCampaignTrigger,
        PersonalizeBatchInferenceJobTrigger,
        PersonalizeRecommenderTrigger,
        PersonalizeDataDeletionJobTrigger,
        PersonalizeDatasetExportJobTrigger,
    )
}


def validated_resource(event: dict[str, Any] | None) -> dict[str, Any]:
    """The ``resource`` of a Personalize trigger's event; anything else is an error naming what is wrong."""
    validated_event = validate_execute_complete_event(event)
    resource = validated_event.get("resource")
    if (
        validated_event.get("status") not in ("success", "error")
        or not isinstance(resource, dict)
        or resource.get("kind") not in RESOURCE_KINDS
        or not resource.get("arn")
    ):
        raise AirflowException(f"Not an event of a Personalize trigger: {validated_event!r}")
    resource.setdefault("resume_state", {})
    return resource
