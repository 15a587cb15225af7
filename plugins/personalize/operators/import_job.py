"""Dataset import jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from personalize.kinds import DATASET, DATASET_IMPORT_JOB
from personalize.links import (
    PersonalizeDatasetGroupLink,
)
from personalize.operators.base import CREATE_TEMPLATE_FIELDS, PersonalizeBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class PersonalizeCreateDatasetImportJobOperator(PersonalizeBaseOperator):
    """
    Import a CSV file or prefix from S3 into a dataset, or adopt the import job of that name.

    :param job_name: Deterministic job name, e.g. from the DAG and data interval; a rerun with
        the same name waits on the existing job instead of importing twice, and after a failed
        job imports once more as ``{job_name}-a2`` (then ``-a3`` ...). (templated)
    :param dataset_arn: ARN of the dataset to import into. (templated)
    :param data_location: ``s3://bucket/key`` of a CSV file, or a prefix ending in ``/``. (templated)
    :param role_arn: IAM role Personalize assumes to read the bucket. (templated)
    :param import_mode: ``INCREMENTAL`` appends (and replaces records with the same IDs);
        ``FULL`` replaces the dataset's bulk data. (templated)

    Returns the dataset import job ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_arn", "data_location", "role_arn", "import_mode", *CREATE_TEMPLATE_FIELDS
    )
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 240

    def __init__(
        self,
        *,
        job_name: str,
        dataset_arn: str,
        data_location: str,
        role_arn: str | None = None,
        import_mode: str = "INCREMENTAL",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.job_name = job_name
        self.dataset_arn = dataset_arn
        self.data_location = data_location
        self.role_arn = role_arn
        self.import_mode = import_mode

    def step(self, context: Context) -> Any:
        if self.import_mode not in ("FULL", "INCREMENTAL"):
            raise ValueError(f"import_mode must be FULL or INCREMENTAL, got {self.import_mode!r}")
        hook = self.hook

        def create(job_name: str) -> str:
            self.log.info(
                "Importing %s into %s (%s) as job %s",
                self.data_location,
                self.dataset_arn,
                self.import_mode,
                job_name,
            )
            params: dict[str, Any] = {
                "jobName": job_name,
                "datasetArn": self.dataset_arn,
                "dataSource": {"dataLocation": self.data_location},
                "importMode": self.import_mode,
            }
            if self.role_arn:
                params["roleArn"] = self.role_arn
            params = self.create_params("CreateDatasetImportJob", params)
            return hook.conn.create_dataset_import_job(**params)["datasetImportJobArn"]

        return self._converge_job(
            context,
            DATASET_IMPORT_JOB,
            lambda job_name: hook.find_dataset_import_job(self.dataset_arn, job_name),
            create,
            lambda: hook.describe(DATASET, self.dataset_arn)["datasetGroupArn"],
        )
