"""PersonalizeCreateDatasetImportJobOperator against the local Personalize service and moto's S3, in both
waiting modes.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

import time

import pytest
from personalize.hooks import (
    PersonalizeHook,
    PersonalizeResourceFailedError,
    PersonalizeResourceNotFoundError,
)
from personalize.kinds import DATASET_IMPORT_JOB
from personalize.operators import (
    PersonalizeCreateDatasetImportJobOperator,
)

from tests.plugins.conftest import (
    FAST,
    ROLE_ARN,
    ensure_operator,
    interactions_csv,
    make_context,
    run_deferrable,
    unique_name,
)
from tests.plugins.operator_runs import MODES, count, run_operator


@pytest.fixture
def group(world, s3_endpoint):
    """A fresh dataset (on the service the mode uses) and a bucket for its files."""
    import boto3

    prefix = unique_name("import")
    operator = ensure_operator(
        prefix,
        spec={"solutions": [], "filters": [], "event_tracker_name": None},
        aws_conn_id=world["conn_id"],
    )
    resources = operator.execute(make_context(operator))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)
    return {
        "prefix": prefix,
        "bucket": prefix,
        "s3": s3,
        "conn_id": world["conn_id"],
        "hook": world["hook"],
        "dataset_arn": resources["dataset_arns"]["INTERACTIONS"],
    }


def import_operator(group, key: str, **kwargs) -> PersonalizeCreateDatasetImportJobOperator:
    return PersonalizeCreateDatasetImportJobOperator(
        task_id="import",
        job_name=f"{group['prefix']}-{key.replace('.', '-').replace('/', '-')}",
        dataset_arn=group["dataset_arn"],
        data_location=f"s3://{group['bucket']}/{key}",
        role_arn=ROLE_ARN,
        aws_conn_id=group["conn_id"],
        **FAST,
        **kwargs,
    )


@MODES
def test_import_job_imports_and_a_rerun_adopts_it(group, deferrable):
    group["s3"].put_object(Bucket=group["bucket"], Key="interactions.csv", Body=interactions_csv().encode())
    operator = import_operator(group, "interactions.csv", deferrable=deferrable)
    context = make_context(operator)
    job_arn, triggers = run_operator(operator, deferrable, context)
    assert set(triggers) <= {"PersonalizeDatasetImportJobTrigger"}
    client = group["hook"].conn
    job = client.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
    assert job["status"] == "ACTIVE"
    assert job["importMode"] == "INCREMENTAL"
    assert "personalize_dataset_group" in context["ti"].xcoms

    rerun = import_operator(group, "interactions.csv", deferrable=deferrable)
    assert rerun.execute(make_context(rerun)) == job_arn
    jobs = count(client, "list_dataset_import_jobs", "datasetImportJobs", datasetArn=group["dataset_arn"])
    assert jobs == 1


def bad_csv() -> str:
    lines = interactions_csv().splitlines()
    user, item, _, event_type = lines[6].split(",")
    lines[6] = f"{user},{item},yesterday,{event_type}"  # line 7 of the file
    return "\n".join(lines) + "\n"


def job_names(client, dataset_arn: str) -> dict[str, str]:
    """{jobName: status} of the dataset's import jobs."""
    return {
        job["jobName"]: job["status"]
        for page in client.get_paginator("list_dataset_import_jobs").paginate(datasetArn=dataset_arn)
        for job in page["datasetImportJobs"]
    }


@MODES
def test_a_bad_csv_fails_the_task_and_a_rerun_after_the_fix_imports_under_the_next_attempt_name(
    group, deferrable
):
    key = "bad/interactions.csv"
    group["s3"].put_object(Bucket=group["bucket"], Key=key, Body=bad_csv().encode())
    operator = import_operator(group, key, deferrable=deferrable)
    name = operator.job_name
    with pytest.raises(PersonalizeResourceFailedError) as raised:
        run_operator(operator, deferrable)
    message = str(raised.value)
    assert "CREATE FAILED" in message
    assert "interactions.csv" in message
    assert "line 7" in message
    client = group["hook"].conn
    assert job_names(client, group["dataset_arn"]) == {name: "CREATE FAILED"}

    # The upstream extract is rerun and writes a good file; the cleared task imports it once.
    group["s3"].put_object(Bucket=group["bucket"], Key=key, Body=interactions_csv().encode())
    rerun = import_operator(group, key, deferrable=deferrable)
    if deferrable:
        run = run_deferrable(rerun, make_context(rerun))
        job_arn = run.result
        # The trigger waited on the new attempt; the task resumed from its event and returned that.
        assert run.deferrals
        assert {kwargs["arn"] for _, kwargs, _ in run.deferrals} == {job_arn}
    else:
        job_arn = rerun.execute(make_context(rerun))
    job = client.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
    assert job["jobName"] == f"{name}-a2"
    assert job["status"] == "ACTIVE"
    assert job_names(client, group["dataset_arn"]) == {name: "CREATE FAILED", f"{name}-a2": "ACTIVE"}

    # Cleared again after success: the ACTIVE attempt is adopted and nothing new is imported.
    again = import_operator(group, key, deferrable=deferrable)
    assert again.execute(make_context(again)) == job_arn
    assert job_names(client, group["dataset_arn"]) == {name: "CREATE FAILED", f"{name}-a2": "ACTIVE"}


def test_import_attempts_run_out_naming_every_attempt_and_the_last_reason(
    aws_default_connection, s3_endpoint
):
    import boto3

    prefix = unique_name("attempts")
    ensure = ensure_operator(prefix, spec={"solutions": [], "filters": [], "event_tracker_name": None})
    dataset_arn = ensure.execute(make_context(ensure))["dataset_arns"]["INTERACTIONS"]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)
    s3.put_object(Bucket=prefix, Key="bad.csv", Body=bad_csv().encode())
    group = {"prefix": prefix, "bucket": prefix, "conn_id": "aws_default", "dataset_arn": dataset_arn}

    def attempt():
        operator = import_operator(group, "bad.csv")
        operator.MAX_ATTEMPTS = 2
        return operator, make_context(operator)

    for _ in range(2):  # the first try, then Airflow's retry: each imports the still-bad file once
        operator, context = attempt()
        with pytest.raises(PersonalizeResourceFailedError, match="line 7"):
            operator.execute(context)
    operator, context = attempt()
    with pytest.raises(PersonalizeResourceFailedError) as raised:
        operator.execute(context)
    name = operator.job_name
    assert f"({name}, {name}-a2)" in str(raised.value)
    assert "line 7" in str(raised.value)
    client = PersonalizeHook().conn
    assert job_names(client, dataset_arn) == {name: "CREATE FAILED", f"{name}-a2": "CREATE FAILED"}


def test_import_job_into_a_missing_dataset_names_it(aws_default_connection):
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset/nowhere/INTERACTIONS"
    operator = PersonalizeCreateDatasetImportJobOperator(
        task_id="import", job_name="orphan", dataset_arn=missing, data_location="s3://b/k.csv", **FAST
    )
    with pytest.raises(PersonalizeResourceNotFoundError, match="nowhere"):
        operator.execute(make_context(operator))


def test_import_without_waiting_returns_while_the_job_runs(slow_personalize):
    world = {"conn_id": slow_personalize["conn_id"], "hook": PersonalizeHook(aws_conn_id="aws_slow")}
    prefix = unique_name("nowait")
    ensure = ensure_operator(
        prefix,
        spec={"solutions": [], "filters": [], "event_tracker_name": None},
        aws_conn_id=world["conn_id"],
    )
    dataset_arn = ensure.execute(make_context(ensure))["dataset_arns"]["INTERACTIONS"]
    operator = PersonalizeCreateDatasetImportJobOperator(
        task_id="import",
        job_name=f"{prefix}-job",
        dataset_arn=dataset_arn,
        data_location=f"s3://{prefix}/none.csv",
        aws_conn_id=world["conn_id"],
        wait_for_completion=False,
    )
    # The service holds the job until the operator has returned: "returns while the job runs" must not
    # depend on how fast this machine is (the job fails at once: there is no file to import).
    with slow_personalize["server"].backend.worker.held():
        job_arn = operator.execute(make_context(operator))
        assert world["hook"].status(DATASET_IMPORT_JOB, job_arn) == "CREATE PENDING"
    deadline = time.monotonic() + 120
    while (status := world["hook"].status(DATASET_IMPORT_JOB, job_arn)) != "CREATE FAILED":
        assert time.monotonic() < deadline, f"the import job is still {status}"
        time.sleep(0.05)
