"""Data deletion jobs (erasing users) and dataset export jobs (a dataset's records to S3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from personalize.kinds import DATA_DELETION_JOB, DATASET, DATASET_EXPORT_JOB
from personalize.links import PersonalizeDatasetGroupLink
from personalize.operators.base import CREATE_TEMPLATE_FIELDS, PersonalizeBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

INGESTION_MODES = ("BULK", "PUT", "ALL")


class PersonalizeCreateDataDeletionJobOperator(PersonalizeBaseOperator):
    """
    Erase the users listed in a CSV on S3 from a dataset group, or adopt the job of that name.

    :param job_name: Deterministic job name; a rerun with the same name waits on the existing
        job instead of erasing twice, and after a failed job runs ``{job_name}-a2`` (then
        ``-a3`` ...). (templated)
    :param dataset_group_arn: The dataset group to erase the users from. (templated)
    :param data_location: ``s3://`` CSV file (or folder) with the single column USER_ID. (templated)
    :param role_arn: IAM role Personalize assumes to read the file; required by
        CreateDataDeletionJob. (templated)

    Returns the data deletion job ARN. Waiting ends when the job is COMPLETED.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_group_arn", "data_location", "role_arn", *CREATE_TEMPLATE_FIELDS
    )
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 720

    def __init__(
        self,
        *,
        job_name: str,
        dataset_group_arn: str,
        data_location: str,
        role_arn: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.job_name = job_name
        self.dataset_group_arn = dataset_group_arn
        self.data_location = data_location
        self.role_arn = role_arn

    def step(self, context: Context) -> Any:
        if not self.role_arn:
            raise ValueError("role_arn is required: CreateDataDeletionJob needs a role to read S3")
        hook = self.hook

        def create(job_name: str) -> str:
            params = self.create_params(
                "CreateDataDeletionJob",
                {
                    "jobName": job_name,
                    "datasetGroupArn": self.dataset_group_arn,
                    "dataSource": {"dataLocation": self.data_location},
                    "roleArn": self.role_arn,
                },
            )
            self.log.info(
                "Erasing the users in %s from %s as job %s",
                self.data_location,
                self.dataset_group_arn,
                job_name,
            )
            return hook.conn.create_data_deletion_job(**params)["dataDeletionJobArn"]

        return self._converge_job(
            context,
            DATA_DELETION_JOB,
            lambda job_name: hook.find_data_deletion_job(self.dataset_group_arn, job_name),
            create,
            lambda: self.dataset_group_arn,
        )


class PersonalizeCreateDatasetExportJobOperator(PersonalizeBaseOperator):
    """
    Export a dataset's records to S3 as CSV, or adopt the export job of that name.

    :param job_name: Deterministic job name (e.g. per dataset and month); a rerun waits on the
        existing job, or after a failed one runs ``{job_name}-a2`` (then ``-a3`` ...). (templated)
    :param dataset_arn: The dataset to export. (templated)
    :param output_path: ``s3://`` folder the job writes under (Personalize adds a folder per job).
        (templated)
    :param role_arn: IAM role Personalize assumes to write the bucket; required by
        CreateDatasetExportJob. (templated)
    :param ingestion_mode: ``BULK`` (imported records), ``PUT`` (recorded by PutEvents / PutItems /
        PutUsers) or ``ALL``. (templated)

    Returns the dataset export job ARN.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_arn", "output_path", "role_arn", "ingestion_mode", *CREATE_TEMPLATE_FIELDS
    )
    operator_extra_links = (PersonalizeDatasetGroupLink(),)
    default_waiter_delay = 60
    default_waiter_max_attempts = 720

    def __init__(
        self,
        *,
        job_name: str,
        dataset_arn: str,
        output_path: str,
        role_arn: str | None = None,
        ingestion_mode: str = "ALL",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.job_name = job_name
        self.dataset_arn = dataset_arn
        self.output_path = output_path
        self.role_arn = role_arn
        self.ingestion_mode = ingestion_mode

    def step(self, context: Context) -> Any:
        if not self.role_arn:
            raise ValueError("role_arn is required: CreateDatasetExportJob needs a role to write S3")
        if self.ingestion_mode not in INGESTION_MODES:
            raise ValueError(f"ingestion_mode must be one of {INGESTION_MODES}, got {self.ingestion_mode!r}")
        hook = self.hook

        def create(job_name: str) -> str:
            params = self.create_params(
                "CreateDatasetExportJob",
                {
                    "jobName": job_name,
                    "datasetArn": self.dataset_arn,
                    "ingestionMode": self.ingestion_mode,
                    "roleArn": self.role_arn,
                    "jobOutput": {"s3DataDestination": {"path": self.output_path}},
                },
            )
            self.log.info(
                "Exporting %s (%s) to %s as job %s",
                self.dataset_arn,
                self.ingestion_mode,
                self.output_path,
                job_name,
            )
            return hook.conn.create_dataset_export_job(**params)["datasetExportJobArn"]

        return self._converge_job(
            context,
            DATASET_EXPORT_JOB,
            lambda job_name: hook.find_dataset_export_job(self.dataset_arn, job_name),
            create,
            lambda: hook.describe(DATASET, self.dataset_arn)["datasetGroupArn"],
        )
