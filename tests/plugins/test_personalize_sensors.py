"""Sensors in poke, reschedule and deferrable mode, on finished, running and failed resources.

Running resources come from the slow local service (seconds per status step), so "still running"
is a state the sensors really observe rather than a race.
"""

from __future__ import annotations

import asyncio
import json

import boto3
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk.exceptions import AirflowRescheduleException
from personalize.hooks import (
    PersonalizeHook,
    PersonalizeResourceFailedError,
    PersonalizeResourceNotFoundError,
)
from personalize.kinds import CAMPAIGN
from personalize.sensors import (
    PersonalizeBatchInferenceJobSensor,
    PersonalizeCampaignSensor,
    PersonalizeDatasetImportJobSensor,
    PersonalizeSolutionVersionSensor,
)

from tests.plugins.conftest import (
    ROLE_ARN,
    first_event,
    make_context,
    unique_name,
)


def start_import(slow_dataset, key: str) -> str:
    return slow_dataset["hook"].conn.create_dataset_import_job(
        jobName=unique_name(key.split(".")[0]),
        datasetArn=slow_dataset["dataset_arn"],
        dataSource={"dataLocation": f"s3://{slow_dataset['bucket']}/{key}"},
        roleArn=ROLE_ARN,
        importMode="INCREMENTAL",
    )["datasetImportJobArn"]


def import_sensor(slow_dataset, job_arn: str, **kwargs) -> PersonalizeDatasetImportJobSensor:
    return PersonalizeDatasetImportJobSensor(
        task_id="wait_import", job_arn=job_arn, aws_conn_id=slow_dataset["conn_id"], **kwargs
    )


def status(slow_dataset, job_arn: str) -> str:
    return slow_dataset["hook"].conn.describe_dataset_import_job(datasetImportJobArn=job_arn)[
        "datasetImportJob"
    ]["status"]


def test_poke_mode_returns_once_the_running_job_is_active(slow_dataset):
    with slow_dataset["server"].backend.worker.held():  # not ACTIVE yet, however slow this machine is
        job_arn = start_import(slow_dataset, "good.csv")
        assert status(slow_dataset, job_arn) != "ACTIVE"
    sensor = import_sensor(slow_dataset, job_arn, poke_interval=0.5, timeout=120)
    sensor.execute(make_context(sensor))
    assert status(slow_dataset, job_arn) == "ACTIVE"


def test_reschedule_mode_frees_the_worker_between_pokes(slow_dataset):
    # The first poke sees the job pending however slow this machine is: the service holds it.
    with slow_dataset["server"].backend.worker.held():
        job_arn = start_import(slow_dataset, "good.csv")
        sensor = import_sensor(slow_dataset, job_arn, mode="reschedule", poke_interval=0.5, timeout=120)
        with pytest.raises(AirflowRescheduleException):
            sensor.execute(make_context(sensor))
    reschedules = 1
    while True:
        try:
            sensor.execute(make_context(sensor))
            break
        except AirflowRescheduleException:
            reschedules += 1
            assert reschedules < 200
            asyncio.run(asyncio.sleep(0.5))
    assert status(slow_dataset, job_arn) == "ACTIVE"


def test_deferrable_sensor_defers_while_running_and_completes_from_the_event(slow_dataset):
    job_arn = start_import(slow_dataset, "good.csv")
    sensor = import_sensor(slow_dataset, job_arn, deferrable=True, poke_interval=1, max_retries=120)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context(sensor))
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "personalize.triggers.PersonalizeDatasetImportJobTrigger"
    assert kwargs["arn"] == job_arn and kwargs["aws_conn_id"] == "aws_slow"
    event = asyncio.run(first_event(deferred.value.trigger))
    assert event.payload == {
        "status": "success",
        "resource": {"arn": job_arn, "kind": "datasetImportJob", "resume_state": {}},
    }
    sensor.execute_complete(make_context(sensor), event.payload)
    assert status(slow_dataset, job_arn) == "ACTIVE"


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_fails_with_the_failure_reason(slow_dataset, mode):
    job_arn = start_import(slow_dataset, "bad.csv")
    kwargs = {"deferrable": True} if mode == "deferrable" else {"mode": mode}
    sensor = import_sensor(slow_dataset, job_arn, poke_interval=1, timeout=120, **kwargs)
    with pytest.raises(PersonalizeResourceFailedError, match=r"bad\.csv line 4"):
        while True:
            try:
                sensor.execute(make_context(sensor))
                break
            except AirflowRescheduleException:
                asyncio.run(asyncio.sleep(0.5))
            except TaskDeferred as deferred:
                event = asyncio.run(first_event(deferred.trigger))
                assert event.payload["status"] == "error"
                sensor.execute_complete(make_context(sensor), event.payload)


def test_sensors_pass_on_finished_resources_and_name_missing_ones(trained, s3_endpoint):
    hook = PersonalizeHook()
    version_arn = trained["version_arn"]
    campaign_arn = hook.conn.create_campaign(name=unique_name("sensed"), solutionVersionArn=version_arn)[
        "campaignArn"
    ]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=trained["bucket"], Key="sensed/in.json", Body=json.dumps({"userId": "u1"}).encode())
    batch_arn = hook.conn.create_batch_inference_job(
        jobName=unique_name("sensed"),
        solutionVersionArn=version_arn,
        jobInput={"s3DataSource": {"path": f"s3://{trained['bucket']}/sensed/in.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{trained['bucket']}/sensed/out/"}},
        roleArn=ROLE_ARN,
    )["batchInferenceJobArn"]
    sensors = [
        PersonalizeSolutionVersionSensor(task_id="v", solution_version_arn=version_arn, poke_interval=0.2),
        PersonalizeCampaignSensor(task_id="c", campaign_arn=campaign_arn, poke_interval=0.2),
        PersonalizeBatchInferenceJobSensor(task_id="b", job_arn=batch_arn, poke_interval=0.2),
    ]
    for sensor in sensors:
        sensor.execute(make_context(sensor))
    assert hook.status(CAMPAIGN, campaign_arn) == "ACTIVE"

    missing = version_arn.rsplit("/", 1)[0] + "/nope"
    sensor = PersonalizeSolutionVersionSensor(
        task_id="missing", solution_version_arn=missing, poke_interval=0.2, timeout=30
    )
    with pytest.raises(PersonalizeResourceNotFoundError, match=r"solution version .*/nope does not exist"):
        sensor.execute(make_context(sensor))


def test_deferred_sensor_keeps_its_timeout(monkeypatch):
    """In deferrable mode the sensor's own timeout bounds the wait, as in the Amazon provider's sensors."""
    from datetime import timedelta

    sensor = PersonalizeSolutionVersionSensor(
        task_id="wait_version",
        solution_version_arn="arn:aws:personalize:us-east-1:000000000000:solution/s/1",
        deferrable=True,
        poke_interval=30,
        timeout=600,
    )
    monkeypatch.setattr(sensor, "poke", lambda context: False)  # still training
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    assert deferred.value.timeout == timedelta(seconds=600)
