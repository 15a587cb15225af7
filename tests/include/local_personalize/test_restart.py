"""State survives restarts of the real CLI process, and a job cut short by a kill ends with a clear status."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import boto3
import pytest

from include.local_personalize.seed import Seeder
from tests.conftest import REPO_ROOT
from tests.include.local_personalize.conftest import (
    INTERACTIONS_SCHEMA,
    checked_client,
    domain_interactions_csv,
    interactions_csv,
    wait_for_status,
)
from tests.include.local_personalize.test_workflow import POPULARITY

FOR_YOU = "arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you"
ROLE = "arn:aws:iam::123456789012:role/PersonalizeS3"
MOST_VIEWED = "arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views"


class ServerProcess:
    """`python -m include.local_personalize serve` on a free port, as a developer would run it."""

    def __init__(self, state_dir, s3_endpoint: str, transition_delay: float, log_path):
        env = dict(
            os.environ, AWS_ENDPOINT_URL_S3=s3_endpoint, PYTHONPATH=f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}"
        )
        command = [sys.executable, "-m", "include.local_personalize", "serve", "--port", "0"]
        command += ["--state-dir", str(state_dir), "--transition-delay", str(transition_delay)]
        self.log = open(log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        line = self.process.stdout.readline()
        match = re.search(r"http://\S+", line)
        if not match:
            self.stop()
            raise AssertionError(f"server did not start: {line!r}; see {log_path}")
        self.url = match.group(0)
        self.personalize = checked_client("personalize", self.url)
        self.runtime = checked_client("personalize-runtime", self.url)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(20)
        self.process.stdout.close()
        self.log.close()


@pytest.fixture
def launch(tmp_path, s3_endpoint):
    started: list[ServerProcess] = []

    def start(transition_delay: float) -> ServerProcess:
        server = ServerProcess(tmp_path / "state", s3_endpoint, transition_delay, tmp_path / "server.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


def test_state_survives_restarts_and_a_killed_training_ends_failed(launch, s3_client, s3_bucket):
    first = launch(0.01)
    personalize = first.personalize
    seeder = Seeder(personalize, s3_client, s3_bucket, timeout=120.0, poll_seconds=0.02)
    seeded = seeder.dataset_group("restart", {"INTERACTIONS": (INTERACTIONS_SCHEMA, interactions_csv())})
    group, dataset, job = (
        seeded["group"],
        seeded["datasets"]["INTERACTIONS"],
        seeded["import_jobs"]["INTERACTIONS"],
    )
    solution = seeder.solution("restart", group, POPULARITY)
    first.stop()

    # Training waits 10 minutes in CREATE IN_PROGRESS on this server, so it is killed mid-job however
    # slow this machine is (with 5 s a loaded machine could see the job finish first); the test
    # does not wait for it: the kill comes as soon as IN_PROGRESS is seen.
    second = launch(600.0)
    assert (
        second.personalize.describe_dataset_group(datasetGroupArn=group)["datasetGroup"]["status"] == "ACTIVE"
    )
    interrupted = second.personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    wait_for_status(
        lambda: second.personalize.describe_solution_version(solutionVersionArn=interrupted),
        "solutionVersion",
        done=("CREATE IN_PROGRESS",),
    )
    second.stop(signal.SIGKILL)

    third = launch(0.01)
    personalize = third.personalize
    failed = personalize.describe_solution_version(solutionVersionArn=interrupted)["solutionVersion"]
    assert failed["status"] == "CREATE FAILED"
    assert "restarted while this job was in progress" in failed["failureReason"]
    latest = personalize.describe_solution(solutionArn=solution)["solution"]["latestSolutionVersion"]
    assert latest["status"] == "CREATE FAILED"
    assert (
        personalize.describe_dataset_import_job(datasetImportJobArn=job)["datasetImportJob"]["status"]
        == "ACTIVE"
    )
    assert [d["datasetArn"] for d in personalize.list_datasets(datasetGroupArn=group)["datasets"]] == [
        dataset
    ]

    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    trained = wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
    )
    assert trained["status"] == "ACTIVE", trained.get("failureReason")
    campaign = personalize.create_campaign(name="restart", solutionVersionArn=version)["campaignArn"]
    wait_for_status(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    before = third.runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=5)["itemList"]
    third.stop()

    fourth = launch(0.01)  # the trained model is read back from the state dir
    after = fourth.runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=5)["itemList"]
    assert after == before
    assert fourth.personalize.get_solution_metrics(solutionVersionArn=version)["metrics"]


def test_cli_binds_loopback_by_default(launch):
    server = launch(0.01)
    assert server.url.startswith("http://127.0.0.1:")
    assert boto3.client("personalize", endpoint_url=server.url).list_dataset_groups()["datasetGroups"] == []


def test_recommenders_and_deletion_jobs_survive_restarts_or_end_failed(launch, s3_client, s3_bucket):
    first = launch(0.01)
    seeder = Seeder(first.personalize, s3_client, s3_bucket, timeout=120.0, poll_seconds=0.02)
    seeded = seeder.dataset_group(
        "restart-shop", {"INTERACTIONS": (INTERACTIONS_SCHEMA, domain_interactions_csv())}, domain="ECOMMERCE"
    )
    group = seeded["group"]
    recommender = first.personalize.create_recommender(
        name="restart-for-you", datasetGroupArn=group, recipeArn=FOR_YOU
    )["recommenderArn"]
    active = wait_for_status(
        lambda: first.personalize.describe_recommender(recommenderArn=recommender), "recommender"
    )
    assert active["status"] == "ACTIVE", active
    served = first.runtime.get_recommendations(recommenderArn=recommender, userId="u1")
    before = served["itemList"]
    tracker = first.personalize.create_event_tracker(name="restart-tracker", datasetGroupArn=group)
    attribution = first.personalize.create_metric_attribution(
        name="restart-attribution",
        datasetGroupArn=group,
        metrics=[{"eventType": "View", "metricName": "VIEWS", "expression": "SAMPLECOUNT()"}],
        metricsOutputConfig={
            "s3DataDestination": {"path": f"s3://{s3_bucket}/attribution/"},
            "roleArn": ROLE,
        },
    )["metricAttributionArn"]
    for describe, key in (
        (
            lambda: first.personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]),
            "eventTracker",
        ),
        (
            lambda: first.personalize.describe_metric_attribution(metricAttributionArn=attribution),
            "metricAttribution",
        ),
    ):
        wait_for_status(describe, key)
    first.stop()

    second = launch(600.0)  # every status step waits 10 minutes: the kill lands mid-flight
    assert second.runtime.get_recommendations(recommenderArn=recommender, userId="u1")["itemList"] == before
    stopping = second.personalize.create_recommender(
        name="restart-most-viewed", datasetGroupArn=group, recipeArn=MOST_VIEWED
    )["recommenderArn"]
    s3_client.put_object(Bucket=s3_bucket, Key="erase.csv", Body=b"USER_ID\nu1\n")
    deletion = second.personalize.create_data_deletion_job(
        jobName="restart-erase",
        datasetGroupArn=group,
        dataSource={"dataLocation": f"s3://{s3_bucket}/erase.csv"},
        roleArn="arn:aws:iam::123456789012:role/PersonalizeS3",
    )["dataDeletionJobArn"]
    dataset = seeded["datasets"]["INTERACTIONS"]
    schema = second.personalize.describe_dataset(datasetArn=dataset)["dataset"]["schemaArn"]
    second.personalize.update_dataset(datasetArn=dataset, schemaArn=schema)
    wait_for_status(
        lambda: second.personalize.describe_recommender(recommenderArn=stopping),
        "recommender",
        done=("CREATE IN_PROGRESS",),
    )
    second.stop(signal.SIGKILL)

    third = launch(0.01)
    interrupted = third.personalize.describe_recommender(recommenderArn=stopping)["recommender"]
    assert interrupted["status"] == "CREATE FAILED"
    assert "restarted while this job was in progress" in interrupted["failureReason"]
    job = third.personalize.describe_data_deletion_job(dataDeletionJobArn=deletion)["dataDeletionJob"]
    assert job["status"] == "FAILED" and "restarted" in job["failureReason"]
    update = wait_for_status(
        lambda: {
            "u": third.personalize.describe_dataset(datasetArn=dataset)["dataset"]["latestDatasetUpdate"]
        },
        "u",
    )
    assert update["status"] == "ACTIVE" and update["schemaArn"] == schema  # a pending update finishes
    assert third.runtime.get_recommendations(recommenderArn=recommender, userId="u1")["itemList"] == before

    # The recommendationId served before two restarts still leads to the recommender that issued it.
    events = checked_client("personalize-events", third.url)
    event = {"eventType": "View", "itemId": before[0]["itemId"], "sentAt": 1_700_000_123}
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u1",
        sessionId="s1",
        eventList=[{**event, "recommendationId": served["recommendationId"]}],
    )
    key = "attribution/AggregatedAttributionMetrics-PutEvents-1700000100.csv"
    report = ""
    for _ in range(600):
        try:
            report = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode()
            break
        except s3_client.exceptions.NoSuchKey:
            time.sleep(0.05)
    assert f"VIEWS,View,1.0,samplecount,{recommender},1700000100" in report.splitlines()
