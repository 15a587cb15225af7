"""PersonalizeCreateDataDeletionJobOperator and PersonalizeCreateDatasetExportJobOperator against the
local Personalize service and moto's S3, in both waiting modes; a rerun adopts the job by name."""

from __future__ import annotations

import csv
import io

import boto3
import pytest
from personalize.hooks import PersonalizeResourceFailedError
from personalize.kinds import DATASET
from personalize.operators import (
    PersonalizeCreateDataDeletionJobOperator,
    PersonalizeCreateDatasetExportJobOperator,
)

from tests.plugins.conftest import FAST, ROLE_ARN, make_context, unique_name
from tests.plugins.operator_runs import MODES, run_operator


def jobs_named(client, operation: str, key: str, name: str, **filters) -> int:
    return sum(1 for job in getattr(client, operation)(**filters)[key] if job["jobName"].startswith(name))


@MODES
def test_export_writes_the_dataset_and_a_rerun_adopts_the_job(world, s3_endpoint, deferrable):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    dataset_arn = world["resources"]["dataset_arns"]["INTERACTIONS"]
    name = unique_name("export")

    def operator():
        return PersonalizeCreateDatasetExportJobOperator(
            task_id="export",
            job_name=name,
            dataset_arn=dataset_arn,
            output_path=f"s3://{world['bucket']}/exports/",
            role_arn=ROLE_ARN,
            ingestion_mode="BULK",
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
        )

    arn, triggers = run_operator(operator(), deferrable)
    assert triggers in ([], ["PersonalizeDatasetExportJobTrigger"])
    body = s3.get_object(Bucket=world["bucket"], Key=f"exports/{name}/part-00000.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows and {"USER_ID", "ITEM_ID", "TIMESTAMP"} <= set(rows[0])
    again = operator()
    assert again.execute(make_context(again)) == arn
    client = world["hook"].conn
    assert (
        jobs_named(client, "list_dataset_export_jobs", "datasetExportJobs", name, datasetArn=dataset_arn) == 1
    )


@MODES
def test_deletion_job_completes_and_a_rerun_adopts_it(world, s3_endpoint, deferrable):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client = world["hook"].conn
    group_arn = world["hook"].describe(DATASET, world["resources"]["dataset_arns"]["INTERACTIONS"])[
        "datasetGroupArn"
    ]
    name = unique_name("erase")
    # A user the shared world does not have: the job runs to COMPLETED and erases nothing others need.
    s3.put_object(Bucket=world["bucket"], Key=f"erase/{name}.csv", Body=b"USER_ID\nno-such-user\n")

    def operator():
        return PersonalizeCreateDataDeletionJobOperator(
            task_id="erase",
            job_name=name,
            dataset_group_arn=group_arn,
            data_location=f"s3://{world['bucket']}/erase/{name}.csv",
            role_arn=ROLE_ARN,
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
        )

    arn, triggers = run_operator(operator(), deferrable)
    assert triggers in ([], ["PersonalizeDataDeletionJobTrigger"])
    job = client.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"]
    assert job["status"] == "COMPLETED" and job["numDeleted"] == 0
    again = operator()
    assert again.execute(make_context(again)) == arn
    assert (
        jobs_named(client, "list_data_deletion_jobs", "dataDeletionJobs", name, datasetGroupArn=group_arn)
        == 1
    )


def test_a_failed_deletion_job_fails_the_task_with_its_reason(trained, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    group_arn = trained["hook"].describe(DATASET, trained["resources"]["dataset_arns"]["INTERACTIONS"])[
        "datasetGroupArn"
    ]
    name = unique_name("erase-bad")
    s3.put_object(Bucket=trained["bucket"], Key=f"erase/{name}.csv", Body=b"USER,ITEM\nu1,i1\n")
    operator = PersonalizeCreateDataDeletionJobOperator(
        task_id="erase",
        job_name=name,
        dataset_group_arn=group_arn,
        data_location=f"s3://{trained['bucket']}/erase/{name}.csv",
        role_arn=ROLE_ARN,
        aws_conn_id=trained["conn_id"],
        **FAST,
    )
    with pytest.raises(PersonalizeResourceFailedError, match="USER_ID"):
        operator.execute(make_context(operator))
