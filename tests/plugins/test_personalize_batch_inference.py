"""PersonalizeCreateBatchInferenceJobOperator against the local Personalize service and moto's S3, in both
waiting modes.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

import json

import pytest
from personalize.hooks import (
    PersonalizeResourceFailedError,
)
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
)

from tests.plugins.conftest import (
    FAST,
    ROLE_ARN,
    make_context,
    unique_name,
)
from tests.plugins.operator_runs import MODES, run_operator


@MODES
def test_batch_inference_job_writes_output_and_a_rerun_adopts_it(world, s3_endpoint, deferrable):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = world["bucket"]
    users = "".join(json.dumps({"userId": f"u{n}"}) + "\n" for n in range(5))
    s3.put_object(Bucket=bucket, Key="batch/input.json", Body=users.encode())
    job_name = unique_name("batch")

    def operator():
        return PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch",
            job_name=job_name,
            solution_version_arn=world["version_arn"],
            input_path=f"s3://{bucket}/batch/input.json",
            output_path=f"s3://{bucket}/batch/{job_name}/",
            role_arn=ROLE_ARN,
            num_results=3,
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
        )

    first = operator()
    job_arn, triggers = run_operator(first, deferrable)
    assert set(triggers) <= {"PersonalizeBatchInferenceJobTrigger"}
    client = world["hook"].conn
    job = client.describe_batch_inference_job(batchInferenceJobArn=job_arn)["batchInferenceJob"]
    assert job["status"] == "ACTIVE"
    outputs = s3.list_objects_v2(Bucket=bucket, Prefix=f"batch/{job_name}/").get("Contents", [])
    assert outputs, "the batch inference job wrote nothing"

    rerun = operator()
    assert rerun.execute(make_context(rerun)) == job_arn
    jobs = [
        job
        for page in client.get_paginator("list_batch_inference_jobs").paginate(
            solutionVersionArn=world["version_arn"]
        )
        for job in page["batchInferenceJobs"]
        if job["jobName"] == job_name
    ]
    assert len(jobs) == 1


def test_a_batch_inference_job_that_failed_on_missing_input_runs_again_under_the_next_attempt_name(
    trained, s3_endpoint
):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = trained["bucket"]
    job_name = unique_name("batch-retry")
    input_key = f"batch/{job_name}/input.json"

    def operator():
        return PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch",
            job_name=job_name,
            solution_version_arn=trained["version_arn"],
            input_path=f"s3://{bucket}/{input_key}",
            output_path=f"s3://{bucket}/batch/{job_name}/out/",
            role_arn=ROLE_ARN,
            num_results=3,
            **FAST,
        )

    def jobs() -> dict[str, str]:
        client = trained["hook"].conn
        return {
            job["jobName"]: job["status"]
            for page in client.get_paginator("list_batch_inference_jobs").paginate(
                solutionVersionArn=trained["version_arn"]
            )
            for job in page["batchInferenceJobs"]
            if job["jobName"].startswith(job_name)
        }

    first = operator()
    with pytest.raises(PersonalizeResourceFailedError, match="CREATE FAILED"):
        first.execute(make_context(first))
    assert jobs() == {job_name: "CREATE FAILED"}

    s3.put_object(Bucket=bucket, Key=input_key, Body=b'{"userId": "u1"}\n{"userId": "u2"}\n')
    retry = operator()
    job_arn = retry.execute(make_context(retry))
    assert job_arn.endswith(f"/{job_name}-a2")
    assert jobs() == {job_name: "CREATE FAILED", f"{job_name}-a2": "ACTIVE"}
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"batch/{job_name}/out/").get("Contents")

    cleared = operator()
    assert cleared.execute(make_context(cleared)) == job_arn
    assert jobs() == {job_name: "CREATE FAILED", f"{job_name}-a2": "ACTIVE"}


def test_batch_inference_job_needs_a_role(trained):
    operator = PersonalizeCreateBatchInferenceJobOperator(
        task_id="batch",
        job_name="no-role",
        solution_version_arn=trained["version_arn"],
        input_path="s3://b/in.json",
        output_path="s3://b/out/",
    )
    with pytest.raises(ValueError, match="role_arn"):
        operator.execute(make_context(operator))
