"""Asynchronous behaviour that needs time to observe: a server whose transitions take 0.3 s each."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.config import Config

from include.local_personalize.server import start_in_thread
from tests.include.local_personalize.conftest import checked_client, interactions_csv, wait_for_status
from tests.include.local_personalize.test_control_plane import ARN_PREFIX
from tests.include.local_personalize.test_imports import make_dataset
from tests.include.local_personalize.test_workflow import POPULARITY, ROLE, build_world

DELAY = 0.3


@pytest.fixture(scope="module")
def slow(personalize_endpoint, s3_endpoint, tmp_path_factory):
    server = start_in_thread(tmp_path_factory.mktemp("slow-personalize"), transition_delay=DELAY)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="pp-local-personalize-slow")
    yield {
        "personalize": checked_client("personalize", server.url),
        "runtime": checked_client("personalize-runtime", server.url),
        "s3": s3,
        "bucket": "pp-local-personalize-slow",
        "server": server,
    }
    server.stop()


@pytest.fixture(scope="module")
def slow_world(slow):
    return build_world(slow["personalize"], slow["s3"], slow["bucket"], "slow", users=False)


def test_callers_see_pending_then_in_progress_then_active(slow, monkeypatch):
    personalize, store = slow["personalize"], slow["server"].backend.store
    statuses = []
    update = store.update

    def recording_update(arn, **changes):
        if "status" in changes and "slow-statuses" in arn:
            statuses.append(changes["status"])
        return update(arn, **changes)

    monkeypatch.setattr(store, "update", recording_update)
    # Held, so the first answer is CREATE PENDING however slow this machine is; which later statuses
    # a 20 ms poll catches depends on the machine, so the order is checked, and the full sequence
    # is read from the service's own record.
    with slow["server"].backend.worker.held():
        arn = personalize.create_dataset_group(name="slow-statuses")["datasetGroupArn"]
        assert (
            personalize.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"]["status"]
            == "CREATE PENDING"
        )
    group = wait_for_status(lambda: personalize.describe_dataset_group(datasetGroupArn=arn), "datasetGroup")
    order = ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]
    assert group["_seen"][-1] == "ACTIVE"
    assert group["_seen"] == sorted(group["_seen"], key=order.index)
    assert statuses == ["CREATE IN_PROGRESS", "ACTIVE"]


def test_one_import_job_per_dataset_at_a_time(slow):
    personalize, s3, bucket = slow["personalize"], slow["s3"], slow["bucket"]
    _, dataset = make_dataset(personalize, "slow-one-import")
    s3.put_object(Bucket=bucket, Key="one/i.csv", Body=interactions_csv())
    location = {"dataLocation": f"s3://{bucket}/one/i.csv"}
    with slow["server"].backend.worker.held():  # the first job is still running, however slow this machine is
        first = personalize.create_dataset_import_job(
            jobName="slow-one-1", datasetArn=dataset, dataSource=location
        )
        with pytest.raises(personalize.exceptions.ResourceInUseException, match="slow-one-1"):
            personalize.create_dataset_import_job(
                jobName="slow-one-2", datasetArn=dataset, dataSource=location
            )
    wait_for_status(
        lambda: personalize.describe_dataset_import_job(datasetImportJobArn=first["datasetImportJobArn"]),
        "datasetImportJob",
    )
    second = personalize.create_dataset_import_job(
        jobName="slow-one-2", datasetArn=dataset, dataSource=location, importMode="INCREMENTAL", roleArn=ROLE
    )
    done = wait_for_status(
        lambda: personalize.describe_dataset_import_job(datasetImportJobArn=second["datasetImportJobArn"]),
        "datasetImportJob",
    )
    assert done["status"] == "ACTIVE"


def test_stop_solution_version_creation(slow, slow_world):
    personalize = slow["personalize"]
    # Held: the version is still being created when the stop arrives, however slow this machine is.
    with slow["server"].backend.worker.held():
        version = personalize.create_solution_version(solutionArn=slow_world["solution"])[
            "solutionVersionArn"
        ]
        with pytest.raises(personalize.exceptions.ResourceInUseException):
            personalize.create_solution_version(solutionArn=slow_world["solution"])
        personalize.stop_solution_version_creation(solutionVersionArn=version)
        stopping = personalize.describe_solution_version(solutionVersionArn=version)["solutionVersion"]
        assert stopping["status"] == "CREATE STOPPING"

    stopped = wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
    )
    assert stopped["status"] == "CREATE STOPPED"
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.stop_solution_version_creation(solutionVersionArn=version)


def test_campaign_keeps_serving_the_old_version_during_an_update(slow, slow_world):
    personalize, runtime = slow["personalize"], slow["runtime"]
    campaign_arn = slow_world["campaign"]
    newer = personalize.create_solution_version(solutionArn=slow_world["solution"])["solutionVersionArn"]
    wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=newer), "solutionVersion"
    )

    # Held, so "during" is during the update however slow this machine is.
    with slow["server"].backend.worker.held():
        personalize.update_campaign(campaignArn=campaign_arn, solutionVersionArn=newer)
        during = personalize.describe_campaign(campaignArn=campaign_arn)["campaign"]
        assert during["status"] == "ACTIVE"
        assert during["solutionVersionArn"] == slow_world["version"]
        assert during["latestCampaignUpdate"]["solutionVersionArn"] == newer
        assert during["latestCampaignUpdate"]["status"] == "CREATE PENDING"
        assert runtime.get_recommendations(campaignArn=campaign_arn, userId="u1", numResults=3)["itemList"]

    deadline = time.monotonic() + 30
    while personalize.describe_campaign(campaignArn=campaign_arn)["campaign"]["solutionVersionArn"] != newer:
        assert time.monotonic() < deadline, "the campaign never switched to the new solution version"
        time.sleep(0.05)
    after = personalize.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert after["latestCampaignUpdate"]["status"] == "ACTIVE"


def test_campaign_is_not_served_before_it_is_active(slow, slow_world):
    personalize, runtime = slow["personalize"], slow["runtime"]
    with slow["server"].backend.worker.held():  # still CREATE PENDING, however slow this machine is
        arn = personalize.create_campaign(name="slow-pending", solutionVersionArn=slow_world["version"])[
            "campaignArn"
        ]
        with pytest.raises(runtime.exceptions.ResourceNotFoundException, match="not ACTIVE"):
            runtime.get_recommendations(campaignArn=arn, userId="u1")
        with pytest.raises(personalize.exceptions.ResourceInUseException):
            personalize.update_campaign(campaignArn=arn, minProvisionedTPS=2)
    wait_for_status(lambda: personalize.describe_campaign(campaignArn=arn), "campaign")
    assert runtime.get_recommendations(campaignArn=arn, userId="u1", numResults=2)["itemList"]
    personalize.delete_campaign(campaignArn=arn)


def test_solution_version_needs_an_active_solution(slow, slow_world):
    personalize = slow["personalize"]
    with slow["server"].backend.worker.held():
        solution = personalize.create_solution(
            name="slow-not-yet", datasetGroupArn=slow_world["group"], recipeArn=POPULARITY
        )["solutionArn"]
        with pytest.raises(personalize.exceptions.ResourceInUseException, match="not ACTIVE"):
            personalize.create_solution_version(solutionArn=solution)


def test_at_most_five_import_jobs_pending_or_in_progress(slow):
    # botocore retries LimitExceededException as throttling; one attempt shows the service's answer.
    personalize = boto3.client(
        "personalize",
        endpoint_url=slow["personalize"].meta.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    s3, bucket = slow["s3"], slow["bucket"]
    s3.put_object(Bucket=bucket, Key="limit/i.csv", Body=interactions_csv())
    datasets = [make_dataset(personalize, f"slow-limit-{n}")[1] for n in range(6)]
    location = {"dataLocation": f"s3://{bucket}/limit/i.csv"}
    # Hold the job lane so the five jobs stay CREATE PENDING however slow this machine is.
    release = threading.Event()
    slow["server"].backend.worker.submit(lambda: release.wait(30), job=True)
    try:
        for n, dataset in enumerate(datasets[:5]):
            personalize.create_dataset_import_job(
                jobName=f"slow-limit-{n}", datasetArn=dataset, dataSource=location
            )
        with pytest.raises(personalize.exceptions.LimitExceededException, match="At most 5"):
            personalize.create_dataset_import_job(
                jobName="slow-limit-5", datasetArn=datasets[5], dataSource=location
            )
    finally:
        release.set()
    last = ARN_PREFIX + "dataset-import-job/slow-limit-4"
    wait_for_status(
        lambda: personalize.describe_dataset_import_job(datasetImportJobArn=last), "datasetImportJob"
    )
    personalize.create_dataset_import_job(jobName="slow-limit-5", datasetArn=datasets[5], dataSource=location)


def test_a_dataset_is_not_deleted_while_a_data_deletion_or_export_job_runs(slow):
    personalize = slow["personalize"]
    group, dataset = make_dataset(personalize, "slow-busy")
    output = {"s3DataDestination": {"path": f"s3://{slow['bucket']}/busy/"}}
    with slow["server"].backend.worker.held():  # both jobs stay PENDING, however slow this machine is
        deletion = personalize.create_data_deletion_job(
            jobName="slow-busy-erase",
            datasetGroupArn=group,
            dataSource={"dataLocation": f"s3://{slow['bucket']}/busy/users.csv"},
            roleArn=ROLE,
        )["dataDeletionJobArn"]
        export = personalize.create_dataset_export_job(
            jobName="slow-busy-export", datasetArn=dataset, roleArn=ROLE, jobOutput=output
        )["datasetExportJobArn"]
        assert personalize.describe_data_deletion_job(dataDeletionJobArn=deletion)["dataDeletionJob"][
            "status"
        ] == ("PENDING")
        with pytest.raises(personalize.exceptions.ResourceInUseException, match="slow-busy-erase") as raised:
            personalize.delete_dataset(datasetArn=dataset)
        assert "slow-busy-export" in str(raised.value)
    failed = wait_for_status(
        lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=deletion),
        "dataDeletionJob",
        done=("COMPLETED", "FAILED"),
    )
    assert failed["status"] == "FAILED" and "busy/users.csv" in failed["failureReason"]  # no such file
    wait_for_status(
        lambda: personalize.describe_dataset_export_job(datasetExportJobArn=export), "datasetExportJob"
    )
    personalize.delete_dataset(datasetArn=dataset)
