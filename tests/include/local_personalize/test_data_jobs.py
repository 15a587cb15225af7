"""Data deletion jobs erase users from the data and from the next model; dataset export jobs write the records.

Assertions read the data back (dataset export to S3, what a retrained model knows), never mocks.
Statuses are botocore's documented ones: deletion PENDING > IN_PROGRESS > COMPLETED | FAILED, export
CREATE PENDING > CREATE IN_PROGRESS > ACTIVE | CREATE FAILED.
"""

from __future__ import annotations

import csv
import io

import boto3
import pytest

from include.local_personalize.seed import Seeder
from tests.include.local_personalize.conftest import wait_for_status
from tests.include.local_personalize.test_workflow import ROLE, USER_PERSONALIZATION, build_world

DELETION_DONE = ("COMPLETED", "FAILED")


@pytest.fixture(scope="module")
def world_bucket(s3_endpoint, personalize_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="pp-local-personalize-data-jobs")
    return s3, "pp-local-personalize-data-jobs"


def read_csv(s3, bucket: str, key: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())))


def export(personalize, s3, bucket: str, dataset: str, name: str, mode: str) -> list[dict]:
    job = personalize.create_dataset_export_job(
        jobName=name,
        datasetArn=dataset,
        ingestionMode=mode,
        roleArn=ROLE,
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/exports/"}},
    )["datasetExportJobArn"]
    done = wait_for_status(
        lambda: personalize.describe_dataset_export_job(datasetExportJobArn=job), "datasetExportJob"
    )
    assert done["status"] == "ACTIVE", done
    return read_csv(s3, bucket, f"exports/{name}/part-00000.csv")


def train_and_serve(personalize, world: dict, name: str) -> str:
    seeder = Seeder(personalize, None, "", timeout=120.0, poll_seconds=0.02)
    version = seeder.solution_version(world["solution"])
    return seeder.campaign(name, version)


def test_erasing_a_user_removes_their_records_and_the_next_model_does_not_know_them(
    personalize, runtime, events, world_bucket
):
    s3, bucket = world_bucket
    world = build_world(personalize, s3, bucket, "erase", recipe=USER_PERSONALIZATION)
    tracker = personalize.create_event_tracker(name="erase-tracker", datasetGroupArn=world["group"])
    wait_for_status(
        lambda: personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker"
    )
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u3",
        sessionId="s-u3",
        eventList=[{"eventType": "click", "itemId": f"i{n}", "sentAt": 1_700_100_000 + n} for n in (1, 2)],
    )
    cold = runtime.get_recommendations(campaignArn=world["campaign"], userId="never-seen", numResults=25)[
        "itemList"
    ]
    known = runtime.get_recommendations(campaignArn=world["campaign"], userId="u3", numResults=25)["itemList"]
    assert known != cold, "before the erasure the model knows u3 (else the test below proves nothing)"

    s3.put_object(Bucket=bucket, Key="erase/users.csv", Body=b"USER_ID\nu3\n")
    job = personalize.create_data_deletion_job(
        jobName="erase-u3",
        datasetGroupArn=world["group"],
        dataSource={"dataLocation": f"s3://{bucket}/erase/users.csv"},
        roleArn=ROLE,
    )["dataDeletionJobArn"]
    done = wait_for_status(
        lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=job),
        "dataDeletionJob",
        done=DELETION_DONE,
    )
    assert done["status"] == "COMPLETED", done
    # u3's 30 imported interactions, 1 users record and 2 recorded events (interactions_csv / users_csv).
    assert done["numDeleted"] == 33
    listed = personalize.list_data_deletion_jobs(datasetGroupArn=world["group"])["dataDeletionJobs"]
    assert [j["jobName"] for j in listed] == ["erase-u3"]

    interactions = export(personalize, s3, bucket, world["INTERACTIONS"], "erase-interactions", "ALL")
    assert len(interactions) == 39 * 30 and "u3" not in {r["USER_ID"] for r in interactions}
    users = export(personalize, s3, bucket, world["USERS"], "erase-users", "BULK")
    assert len(users) == 39 and "u3" not in {r["USER_ID"] for r in users}

    campaign = train_and_serve(personalize, world, "erase-after")
    after = runtime.get_recommendations(campaignArn=campaign, userId="u3", numResults=25)["itemList"]
    assert (
        after
        == runtime.get_recommendations(campaignArn=campaign, userId="never-seen", numResults=25)["itemList"]
    )


def test_a_deletion_file_that_is_not_a_user_id_column_fails_naming_it(personalize, world_bucket):
    s3, bucket = world_bucket
    group = personalize.create_dataset_group(name="erase-bad")["datasetGroupArn"]
    s3.put_object(Bucket=bucket, Key="erase-bad/users.csv", Body=b"USER,NAME\nu1,x\n")
    job = personalize.create_data_deletion_job(
        jobName="erase-bad",
        datasetGroupArn=group,
        dataSource={"dataLocation": f"s3://{bucket}/erase-bad/users.csv"},
        roleArn=ROLE,
    )["dataDeletionJobArn"]
    done = wait_for_status(
        lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=job),
        "dataDeletionJob",
        done=DELETION_DONE,
    )
    assert done["status"] == "FAILED" and "USER_ID" in done["failureReason"], done


def test_dataset_export_writes_bulk_put_and_all_records(personalize, events, world_bucket):
    s3, bucket = world_bucket
    world = build_world(personalize, s3, bucket, "export", users=False)
    tracker = personalize.create_event_tracker(name="export-tracker", datasetGroupArn=world["group"])
    wait_for_status(
        lambda: personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker"
    )
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u-new",
        sessionId="s1",
        eventList=[{"eventType": "purchase", "itemId": "i5", "sentAt": 1_700_200_000, "eventValue": 4.5}],
    )
    bulk = export(personalize, s3, bucket, world["INTERACTIONS"], "export-bulk", "BULK")
    put = export(personalize, s3, bucket, world["INTERACTIONS"], "export-put", "PUT")
    every = export(personalize, s3, bucket, world["INTERACTIONS"], "export-all", "ALL")
    assert len(bulk) == 40 * 30 and "u-new" not in {r["USER_ID"] for r in bulk}
    assert put == [
        {
            "USER_ID": "u-new",
            "ITEM_ID": "i5",
            "TIMESTAMP": "1700200000",
            "EVENT_TYPE": "purchase",
            "EVENT_VALUE": "4.5",
        }
    ]
    assert len(every) == len(bulk) + 1
    assert list(every[0]) == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]

    events.put_items(
        datasetArn=world["ITEMS"],
        items=[{"itemId": "i-new", "properties": '{"category": "hats", "price": 3.5}'}],
    )
    items_put = export(personalize, s3, bucket, world["ITEMS"], "export-items-put", "PUT")
    items_all = export(personalize, s3, bucket, world["ITEMS"], "export-items-all", "ALL")
    assert items_put == [{"ITEM_ID": "i-new", "CATEGORY": "hats", "PRICE": "3.5"}]
    assert len(items_all) == 61
    listed = personalize.list_dataset_export_jobs(datasetArn=world["INTERACTIONS"])["datasetExportJobs"]
    assert {j["jobName"] for j in listed} == {"export-bulk", "export-put", "export-all"}
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_dataset_export_job(
            jobName="export-bad-mode",
            datasetArn=world["ITEMS"],
            ingestionMode="SOME",
            roleArn=ROLE,
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/exports/"}},
        )
