"""Sensors that wait for a Personalize job, version or campaign to become ACTIVE.

Usable in poke and reschedule mode (``mode="reschedule"`` frees the worker between pokes) and in
deferrable mode (the wait runs in the triggerer). A failed resource fails the sensor at once,
with Personalize's ``failureReason``; soft_fail applies as for any sensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf

from personalize.hooks import PersonalizeHook
from personalize.kinds import (
    ACTIVE,
    BATCH_INFERENCE_JOB,
    CAMPAIGN,
    DATASET_IMPORT_JOB,
    SOLUTION_VERSION,
    ResourceKind,
    effective_status,
)
from personalize.operators.base import settles_before_deferring
from personalize.triggers import TRIGGER_FOR_KIND, validated_resource

if TYPE_CHECKING:
    from airflow.sdk import Context


class PersonalizeBaseSensor(AwsBaseSensor[PersonalizeHook]):
    """
    Poke until the resource is ACTIVE; raise, with the failureReason, when it failed.

    :param deferrable: Wait in the triggerer instead of poking from a worker. Requires aiobotocore.
        (default: ``[operators] default_deferrable``, else False)
    :param poke_interval: Seconds between status checks, in every mode.
    :param max_retries: Status checks the trigger makes before it gives up (deferrable mode;
        ``timeout`` bounds the wait in every mode, as for any sensor).
    :param defer_after_seconds: Deferrable only: poke in the worker this long first and defer only
        if the resource is still in progress. (default: 0, defer after the first poke)
    :param first_poll_delay: Deferrable only: seconds the trigger waits before its first status
        check (default: ``poke_interval``).
    """

    aws_hook_class = PersonalizeHook
    kind: ClassVar[ResourceKind]
    arn_field: ClassVar[str]
    ui_color = "#ffd7a8"

    def __init__(
        self,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_retries: int = 720,
        defer_after_seconds: float = 0,
        first_poll_delay: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.defer_after_seconds = defer_after_seconds
        self.first_poll_delay = first_poll_delay
        self.deferrable = deferrable
        self.max_retries = max_retries

    @property
    def arn(self) -> str:
        return getattr(self, self.arn_field)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context=context)
        if self.poke(context) or settles_before_deferring(
            self.hook, self.kind, self.arn, self.defer_after_seconds
        ):
            return None
        self.defer(
            trigger=TRIGGER_FOR_KIND[self.kind](
                arn=self.arn,
                waiter_delay=max(1, int(self.poke_interval)),  # the triggerer polls in whole seconds
                waiter_max_attempts=self.max_retries,
                first_poll_delay=self.first_poll_delay,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        resource = validated_resource(event)
        if event["status"] != "success":
            raise self.hook.explain_wait_failure(
                self.kind, resource["arn"], event.get("message", "unknown error")
            )
        self.log.info("Personalize %s %s is ACTIVE", self.kind.label, resource["arn"])

    def poke(self, context: Context) -> bool:
        description = self.hook.describe(self.kind, self.arn)
        self.hook.raise_if_failed(self.kind, self.arn, description)
        status = effective_status(self.kind, description)
        self.log.info("Personalize %s %s is %s", self.kind.label, self.arn, status)
        return status == ACTIVE


class PersonalizeDatasetImportJobSensor(PersonalizeBaseSensor):
    """
    Wait for a dataset import job to finish importing.

    :param job_arn: ARN of the dataset import job. (templated)
    """

    kind = DATASET_IMPORT_JOB
    arn_field = "job_arn"
    template_fields: Sequence[str] = aws_template_fields("job_arn")

    def __init__(self, *, job_arn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_arn = job_arn


class PersonalizeSolutionVersionSensor(PersonalizeBaseSensor):
    """
    Wait for a solution version to finish training.

    :param solution_version_arn: ARN of the solution version. (templated)
    """

    kind = SOLUTION_VERSION
    arn_field = "solution_version_arn"
    template_fields: Sequence[str] = aws_template_fields("solution_version_arn")

    def __init__(self, *, solution_version_arn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.solution_version_arn = solution_version_arn


class PersonalizeCampaignSensor(PersonalizeBaseSensor):
    """
    Wait for a campaign to be ACTIVE with its latest update, if any, ACTIVE too.

    :param campaign_arn: ARN of the campaign. (templated)
    """

    kind = CAMPAIGN
    arn_field = "campaign_arn"
    template_fields: Sequence[str] = aws_template_fields("campaign_arn")

    def __init__(self, *, campaign_arn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.campaign_arn = campaign_arn


class PersonalizeBatchInferenceJobSensor(PersonalizeBaseSensor):
    """
    Wait for a batch inference job to write its output.

    :param job_arn: ARN of the batch inference job. (templated)
    """

    kind = BATCH_INFERENCE_JOB
    arn_field = "job_arn"
    template_fields: Sequence[str] = aws_template_fields("job_arn")

    def __init__(self, *, job_arn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_arn = job_arn
