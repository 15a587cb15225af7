"""The seeds' sequence end to end through boto3, and what a trained campaign then does."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from include.local_personalize.seed import Seeder
from tests.include.local_personalize.conftest import (
    CATEGORIES,
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    USERS_SCHEMA,
    interactions_csv,
    items_csv,
    to_csv,
    users_csv,
    wait_for_status,
)

POPULARITY = "arn:aws:personalize:::recipe/aws-popularity-count"
USER_PERSONALIZATION = "arn:aws:personalize:::recipe/aws-user-personalization"
SIMILAR_ITEMS = "arn:aws:personalize:::recipe/aws-similar-items"
ROLE = "arn:aws:iam::123456789012:role/PersonalizeS3"
SEEN_FILTER = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "purchase")'
CATEGORY_FILTER = "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)"


def build_world(personalize, s3, bucket: str, prefix: str, *, users=True, recipe=POPULARITY) -> dict:
    """Dataset group with data, a trained solution version of `recipe` and a campaign serving it."""
    seeder = Seeder(personalize, s3, bucket, role_arn=ROLE, timeout=120.0, poll_seconds=0.02)
    files = {"INTERACTIONS": (INTERACTIONS_SCHEMA, interactions_csv()), "ITEMS": (ITEMS_SCHEMA, items_csv())}
    if users:
        files["USERS"] = (USERS_SCHEMA, users_csv())
    seeded = seeder.dataset_group(prefix, files)
    solution = seeder.solution(f"{prefix}-solution", seeded["group"], recipe)
    version = seeder.solution_version(solution)
    campaign = seeder.campaign(f"{prefix}-campaign", version)
    return {
        "group": seeded["group"],
        **seeded["datasets"],
        "solution": solution,
        "version": version,
        "campaign": campaign,
    }


@pytest.fixture(scope="module")
def world_bucket(s3_endpoint, personalize_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="pp-local-personalize-workflow")
    return s3, "pp-local-personalize-workflow"


@pytest.fixture(scope="module")
def world(personalize, world_bucket):
    s3, bucket = world_bucket
    return build_world(personalize, s3, bucket, "wf")


def test_seed_sequence_runs_through_boto3_and_recommendations_follow_events(
    personalize, runtime, events, world_bucket
):
    s3, bucket = world_bucket
    # create dataset group, schema, dataset, import job, poll, solution, solution version, poll, campaign
    arns = build_world(personalize, s3, bucket, "seed", users=False)
    metrics = personalize.get_solution_metrics(solutionVersionArn=arns["version"])["metrics"]
    assert {"coverage", "precision_at_25", "normalized_discounted_cumulative_gain_at_10"} <= set(metrics)

    seen = personalize.create_filter(
        name="seed-unseen", datasetGroupArn=arns["group"], filterExpression=SEEN_FILTER
    )["filterArn"]
    wait_for_status(lambda: personalize.describe_filter(filterArn=seen), "filter")
    tracker = personalize.create_event_tracker(name="seed-tracker", datasetGroupArn=arns["group"])
    wait_for_status(
        lambda: personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker"
    )

    user = "newcomer"
    before = runtime.get_recommendations(
        campaignArn=arns["campaign"], userId=user, numResults=5, filterArn=seen
    )
    top = before["itemList"][0]["itemId"]
    assert len(before["itemList"]) == 5
    assert before["recommendationId"]

    events.put_events(
        trackingId=tracker["trackingId"],
        userId=user,
        sessionId="session-1",
        eventList=[{"eventType": "click", "itemId": top, "sentAt": time.time()}],
    )
    after = runtime.get_recommendations(
        campaignArn=arns["campaign"], userId=user, numResults=5, filterArn=seen
    )

    assert top not in [i["itemId"] for i in after["itemList"]]
    assert [i["itemId"] for i in after["itemList"]][:4] == [i["itemId"] for i in before["itemList"]][1:]


def test_statuses_are_polled_through_pending_and_in_progress(personalize, world):
    version = personalize.describe_solution_version(solutionVersionArn=world["version"])["solutionVersion"]
    assert version["status"] == "ACTIVE"
    assert version["trainingMode"] == "FULL"
    assert version["recipeArn"] == POPULARITY
    solution = personalize.describe_solution(solutionArn=world["solution"])["solution"]
    assert solution["latestSolutionVersion"]["solutionVersionArn"] == world["version"]
    assert [
        v["solutionVersionArn"]
        for v in personalize.list_solution_versions(solutionArn=world["solution"])["solutionVersions"]
    ] == [world["version"]]
    assert [
        c["campaignArn"] for c in personalize.list_campaigns(solutionArn=world["solution"])["campaigns"]
    ] == [world["campaign"]]
    jobs = personalize.list_dataset_import_jobs(datasetArn=world["INTERACTIONS"])["datasetImportJobs"]
    assert [j["status"] for j in jobs] == ["ACTIVE"]


def test_recommendations_default_to_25_and_refuse_more_than_500(runtime, world):
    answer = runtime.get_recommendations(campaignArn=world["campaign"], userId="u1")
    assert len(answer["itemList"]) == 25
    scores = [i["score"] for i in answer["itemList"]]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(runtime.exceptions.InvalidInputException, match="numResults"):
        runtime.get_recommendations(campaignArn=world["campaign"], userId="u1", numResults=501)
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn=world["campaign"] + "-missing", userId="u1")


def test_filter_values_select_items_by_metadata(personalize, runtime, world):
    flt = personalize.create_filter(
        name="wf-category", datasetGroupArn=world["group"], filterExpression=CATEGORY_FILTER
    )["filterArn"]
    wait_for_status(lambda: personalize.describe_filter(filterArn=flt), "filter")
    answer = runtime.get_recommendations(
        campaignArn=world["campaign"],
        userId="u1",
        numResults=10,
        filterArn=flt,
        filterValues={"CATEGORY": '"socks"'},
    )
    # items_csv gives item i the category CATEGORIES[i % 3]
    assert answer["itemList"]
    assert {CATEGORIES[int(i["itemId"][1:]) % 3] for i in answer["itemList"]} == {"socks"}
    with pytest.raises(runtime.exceptions.InvalidInputException, match="CATEGORY"):
        runtime.get_recommendations(campaignArn=world["campaign"], userId="u1", filterArn=flt)


def test_personalized_ranking_puts_unknown_items_last(runtime, world):
    ranked = runtime.get_personalized_ranking(
        campaignArn=world["campaign"], userId="u1", inputList=["i30", "never-seen", "i0", "i10"]
    )["personalizedRanking"]
    assert [r["itemId"] for r in ranked][:3] == ["i0", "i10", "i30"]
    assert ranked[-1]["itemId"] == "never-seen"


def test_put_items_and_users_update_the_datasets(personalize, runtime, events, world):
    events.put_items(
        datasetArn=world["ITEMS"],
        items=[{"itemId": "i0", "properties": json.dumps({"category": "hats", "price": 3.5})}],
    )
    events.put_users(
        datasetArn=world["USERS"], users=[{"userId": "u1", "properties": '{"membership": "gold"}'}]
    )
    flt = personalize.create_filter(
        name="wf-hats", datasetGroupArn=world["group"], filterExpression=CATEGORY_FILTER
    )["filterArn"]
    wait_for_status(lambda: personalize.describe_filter(filterArn=flt), "filter")
    answer = runtime.get_recommendations(
        campaignArn=world["campaign"],
        userId="u1",
        numResults=3,
        filterArn=flt,
        filterValues={"CATEGORY": '"hats"'},
    )
    assert answer["itemList"][0]["itemId"] == "i0"  # the most popular item, now a hat
    with pytest.raises(events.exceptions.InvalidInputException, match="PRICE"):
        events.put_items(
            datasetArn=world["ITEMS"],
            items=[{"itemId": "i1", "properties": '{"category": "hats", "price": "cheap"}'}],
        )
    with pytest.raises(events.exceptions.InvalidInputException, match="not ITEMS"):
        events.put_items(datasetArn=world["USERS"], items=[{"itemId": "i1"}])


def test_put_events_checks_tracking_id_and_events(personalize, events, world):
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.put_events(
            trackingId="no-such-tracker",
            sessionId="s",
            eventList=[{"eventType": "click", "itemId": "i1", "sentAt": time.time()}],
        )
    tracker = personalize.create_event_tracker(name="wf-tracker", datasetGroupArn=world["group"])
    good = {"eventType": "click", "itemId": "i1", "sentAt": time.time()}
    with pytest.raises(events.exceptions.InvalidInputException, match=r"eventList\[1\].itemId"):
        events.put_events(
            trackingId=tracker["trackingId"],
            userId="u1",
            sessionId="s",
            eventList=[good, {"eventType": "click", "sentAt": time.time()}],
        )
    with pytest.raises(events.exceptions.InvalidInputException, match="not in the dataset's schema"):
        events.put_events(
            trackingId=tracker["trackingId"],
            userId="u1",
            sessionId="s",
            eventList=[{**good, "properties": '{"colour": "red"}'}],
        )


def test_deleting_what_a_campaign_uses_is_refused(personalize, world):
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_solution(solutionArn=world["solution"])
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_dataset_group(datasetGroupArn=world["group"])


def test_update_mode_is_refused_for_recipes_without_it(personalize, world):
    with pytest.raises(personalize.exceptions.InvalidInputException, match="UPDATE"):
        personalize.create_solution_version(solutionArn=world["solution"], trainingMode="UPDATE")


def test_batch_inference_writes_json_lines_like_aws(personalize, world, world_bucket):
    s3, bucket = world_bucket
    lines = [{"userId": "u1"}, {"userId": "u2"}, {"userId": "u3", "itemList": ["i5", "i1"]}]
    s3.put_object(
        Bucket=bucket, Key="batch/in/users.json", Body="\n".join(json.dumps(x) for x in lines).encode()
    )
    arn = personalize.create_batch_inference_job(
        jobName="wf-batch",
        solutionVersionArn=world["version"],
        numResults=7,
        jobInput={"s3DataSource": {"path": f"s3://{bucket}/batch/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/batch/out/"}},
        roleArn=ROLE,
    )["batchInferenceJobArn"]
    job = wait_for_status(
        lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), "batchInferenceJob"
    )
    assert job["status"] == "ACTIVE", job.get("failureReason")
    assert job["numResults"] == 7
    assert [
        j["batchInferenceJobArn"]
        for j in personalize.list_batch_inference_jobs(solutionVersionArn=world["version"])[
            "batchInferenceJobs"
        ]
    ] == [arn]

    body = s3.get_object(Bucket=bucket, Key="batch/out/users.json.out")["Body"].read().decode()
    results = [json.loads(line) for line in body.splitlines()]
    assert [r["input"] for r in results] == lines
    assert [len(r["output"]["recommendedItems"]) for r in results[:2]] == [7, 7]
    assert results[2]["output"]["recommendedItems"] == ["i1", "i5"]
    assert all(len(r["output"]["scores"]) == len(r["output"]["recommendedItems"]) for r in results)


@pytest.mark.parametrize(
    ("name", "bad_line", "reason"),
    [("bad", b"{not json", "not JSON"), ("list", b'["u1"]', "expected a JSON object")],
)
def test_batch_inference_fails_naming_a_bad_line(personalize, world, world_bucket, name, bad_line, reason):
    s3, bucket = world_bucket
    s3.put_object(Bucket=bucket, Key=f"batch/{name}.json", Body=b'{"userId": "u1"}\n' + bad_line + b"\n")
    arn = personalize.create_batch_inference_job(
        jobName=f"wf-batch-{name}",
        solutionVersionArn=world["version"],
        jobInput={"s3DataSource": {"path": f"s3://{bucket}/batch/{name}.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/batch/{name}-out/"}},
        roleArn=ROLE,
    )["batchInferenceJobArn"]
    job = wait_for_status(
        lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), "batchInferenceJob"
    )
    assert job["status"] == "CREATE FAILED"
    assert job["failureReason"].startswith(
        f"s3://pp-local-personalize-workflow/batch/{name}.json line 2: {reason}"
    )


def test_update_campaign_switches_to_the_new_version(personalize, runtime, world):
    newer = personalize.create_solution_version(solutionArn=world["solution"])["solutionVersionArn"]
    wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=newer), "solutionVersion"
    )
    personalize.update_campaign(campaignArn=world["campaign"], solutionVersionArn=newer, minProvisionedTPS=2)
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.update_campaign(campaignArn=world["campaign"], solutionVersionArn=newer)

    def update():
        return {
            "update": personalize.describe_campaign(campaignArn=world["campaign"])["campaign"][
                "latestCampaignUpdate"
            ]
        }

    assert wait_for_status(update, "update")["status"] == "ACTIVE"
    campaign = personalize.describe_campaign(campaignArn=world["campaign"])["campaign"]
    assert campaign["solutionVersionArn"] == newer
    assert campaign["minProvisionedTPS"] == 2
    assert runtime.get_recommendations(campaignArn=world["campaign"], userId="u1", numResults=3)["itemList"]


def test_campaign_synced_with_latest_version_follows_new_versions(personalize, world):
    campaign = personalize.create_campaign(
        name="wf-sync",
        solutionVersionArn=world["solution"] + "/$LATEST",
        campaignConfig={"syncWithLatestSolutionVersion": True},
    )["campaignArn"]
    wait_for_status(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    versions = personalize.list_solution_versions(solutionArn=world["solution"])["solutionVersions"]
    newest_active = max((v for v in versions if v["status"] == "ACTIVE"), key=lambda v: v["creationDateTime"])
    assert (
        personalize.describe_campaign(campaignArn=campaign)["campaign"]["solutionVersionArn"]
        == newest_active["solutionVersionArn"]
    )

    newer = personalize.create_solution_version(solutionArn=world["solution"])["solutionVersionArn"]
    wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=newer), "solutionVersion"
    )

    deadline = time.monotonic() + 30
    while personalize.describe_campaign(campaignArn=campaign)["campaign"]["solutionVersionArn"] != newer:
        assert time.monotonic() < deadline, "the synced campaign never moved to the new solution version"
        time.sleep(0.02)
    personalize.delete_campaign(campaignArn=campaign)


def test_training_below_the_minimums_fails_with_aws_message(personalize, world_bucket):
    s3, bucket = world_bucket
    rows = [[f"u{n % 5}", f"i{n % 7}", 1_700_000_000 + n, "click", ""] for n in range(100)]
    seeder = Seeder(personalize, s3, bucket, role_arn=ROLE, timeout=120.0, poll_seconds=0.02)
    small = to_csv(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"], rows)
    group = seeder.dataset_group("wf-small", {"INTERACTIONS": (INTERACTIONS_SCHEMA, small)})["group"]
    solution = seeder.solution("wf-small", group, POPULARITY)
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    failed = wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
    )

    assert failed["status"] == "CREATE FAILED"
    assert "Insufficient data" in failed["failureReason"]
    assert failed["_seen"][-1] == "CREATE FAILED"
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.get_solution_metrics(solutionVersionArn=version)
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_campaign(name="wf-small", solutionVersionArn=version)


@pytest.fixture(scope="module")
def als_world(personalize, world_bucket):
    s3, bucket = world_bucket
    return build_world(personalize, s3, bucket, "als", users=False, recipe=USER_PERSONALIZATION)


def test_put_events_fold_into_user_personalization(personalize, runtime, events, als_world):
    tracker = personalize.create_event_tracker(name="als-tracker", datasetGroupArn=als_world["group"])
    wait_for_status(
        lambda: personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker"
    )

    def top(user: str) -> list[str]:
        answer = runtime.get_recommendations(campaignArn=als_world["campaign"], userId=user, numResults=10)
        return [i["itemId"] for i in answer["itemList"]]

    known_before, newcomer_before = top("u3"), top("als-newcomer")
    tail = [f"i{n}" for n in range(59, 49, -1)]  # the least popular items of interactions_csv
    for user in ("u3", "als-newcomer"):
        events.put_events(
            trackingId=tracker["trackingId"],
            userId=user,
            sessionId=f"{user}-session",
            eventList=[{"eventType": "click", "itemId": item, "sentAt": time.time()} for item in tail],
        )

    assert top("u3") != known_before
    assert top("als-newcomer") != newcomer_before


def test_update_training_mode_after_a_full_version(personalize, als_world):
    version = personalize.create_solution_version(solutionArn=als_world["solution"], trainingMode="UPDATE")[
        "solutionVersionArn"
    ]
    updated = wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
    )
    assert updated["status"] == "ACTIVE", updated.get("failureReason")
    assert updated["trainingMode"] == "UPDATE"
    assert personalize.get_solution_metrics(solutionVersionArn=version)["metrics"]


def test_similar_items_answer_for_an_item_id(personalize, runtime, als_world):
    solution = personalize.create_solution(
        name="als-similar",
        datasetGroupArn=als_world["group"],
        recipeArn=SIMILAR_ITEMS,
        performAutoTraining=False,
    )["solutionArn"]
    wait_for_status(lambda: personalize.describe_solution(solutionArn=solution), "solution")
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
    )
    campaign = personalize.create_campaign(name="als-similar", solutionVersionArn=version)["campaignArn"]
    wait_for_status(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")

    similar = runtime.get_recommendations(campaignArn=campaign, itemId="i1", numResults=5)["itemList"]

    assert len(similar) == 5
    assert "i1" not in [i["itemId"] for i in similar]
