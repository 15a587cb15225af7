"""Batch inference jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from personalize.kinds import BATCH_INFERENCE_JOB, SOLUTION_VERSION
from personalize.links import (
    PersonalizeSolutionVersionLink,
)
from personalize.operators.base import CREATE_TEMPLATE_FIELDS, PersonalizeBaseOperator, attempt_name

if TYPE_CHECKING:
    from airflow.sdk import Context


class PersonalizeCreateBatchInferenceJobOperator(PersonalizeBaseOperator):
    """
    Score users (or items) in bulk from S3 to S3, or adopt the batch inference job of that name.

    :param job_name: Deterministic job name; a rerun with the same name waits on the existing
        job, or after a failed one runs ``{job_name}-a2`` (then ``-a3`` ...). (templated)
    :param solution_version_arn: Solution version to score with. (templated)
    :param input_path: ``s3://`` JSON-lines input, one ``{"userId": ...}`` (or itemId) per line.
        (templated)
    :param output_path: ``s3://`` prefix the job writes its results under. (templated)
    :param role_arn: IAM role Personalize assumes to read and write the buckets; required by
        CreateBatchInferenceJob. (templated)
    :param num_results: Recommendations per input line (default 25). (templated)
    :param filter_arn: Filter to apply. (templated)

    Returns the batch inference job ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name",
        "solution_version_arn",
        "input_path",
        "output_path",
        "role_arn",
        "num_results",
        "filter_arn",
        *CREATE_TEMPLATE_FIELDS,
    )
    operator_extra_links = (PersonalizeSolutionVersionLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 720

    def __init__(
        self,
        *,
        job_name: str,
        solution_version_arn: str,
        input_path: str,
        output_path: str,
        role_arn: str | None = None,
        num_results: int = 25,
        filter_arn: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.job_name = job_name
        self.solution_version_arn = solution_version_arn
        self.input_path = input_path
        self.output_path = output_path
        self.role_arn = role_arn
        self.num_results = num_results
        self.filter_arn = filter_arn

    def step(self, context: Context) -> Any:
        if not self.role_arn:
            raise ValueError(
                "role_arn is required: CreateBatchInferenceJob needs a role to read and write S3"
            )
        hook = self.hook

        def create(job_name: str) -> str:
            params: dict[str, Any] = {
                "jobName": job_name,
                "solutionVersionArn": self.solution_version_arn,
                "jobInput": {"s3DataSource": {"path": self.input_path}},
                "jobOutput": {"s3DataDestination": {"path": self.output_path}},
                "roleArn": self.role_arn,
                "numResults": int(self.num_results),
            }
            if self.filter_arn:
                params["filterArn"] = self.filter_arn
            params = self.create_params("CreateBatchInferenceJob", params)
            self.log.info("Starting batch inference job %s on %s", job_name, self.input_path)
            return hook.conn.create_batch_inference_job(**params)["batchInferenceJobArn"]

        arn = self._adopt_or_create_attempt(
            BATCH_INFERENCE_JOB,
            lambda attempt: attempt_name(self.job_name, attempt),
            lambda job_name: hook.find_batch_inference_job(self.solution_version_arn, job_name),
            create,
        )
        group_arn = hook.describe(SOLUTION_VERSION, self.solution_version_arn)["datasetGroupArn"]
        self._persist_link(
            context,
            PersonalizeSolutionVersionLink,
            dataset_group=group_arn,
            solution_version=self.solution_version_arn,
        )
        return self._pending(BATCH_INFERENCE_JOB, arn, result=arn) or arn
