"""A domain config end to end with dag.test(): ingest into an ECOMMERCE dataset group, then the
recommenders DAG deploys two recommenders, serves both, records their modelMetrics; a changed
recommender_config updates in place; a click on a recommendation counts for its recommender (metric
attribution); the stop and start DAGs stop and start them."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import boto3
import pytest
import yaml

from tests.dags import e2e_support as support
from tests.dags.test_pipeline_e2e import START, day, run, seed
from tests.dags.test_pipeline_e2e import local_aws as local_aws  # the fixture

FOR_YOU = "e2e-domain-for-you"
ALSO_VIEWED = "e2e-domain-also-viewed"


def domain_config(path, recommender_config: dict) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.pop("solution", None), data.pop("campaign", None)
    data["domain"] = "ECOMMERCE"
    data["recommenders"] = [
        {
            "name": FOR_YOU,
            "use_case": "aws-ecomm-recommended-for-you",
            "recommender_config": recommender_config,
        },
        {"name": ALSO_VIEWED, "use_case": "aws-ecomm-customers-who-viewed-x-also-viewed"},
    ]
    data["recommender_schedule"] = {"stop": "0 22 * * *", "start": "0 6 * * *"}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture
def domain_pipeline(s3_bucket, tmp_path, monkeypatch, request):
    name = "e2e_domain"
    seed(
        "sqlite",
        tmp_path,
        monkeypatch,
        request,
        f"{name}_app",
        users=400,
        days=5,
        end=START + timedelta(days=5),
    )
    path = support.write_config(tmp_path / "configs", name=name, bucket=s3_bucket, app_conn_id=f"{name}_app")

    def load(recommender_config: dict) -> dict:
        domain_config(path, recommender_config)
        dags = support.load_dags(path, monkeypatch)
        dags.update(support.load_lifecycle_dags(path, monkeypatch))
        return dags

    return load


def test_a_domain_config_deploys_two_recommenders_and_serves_both(
    local_aws, s3_bucket, personalize_endpoint, domain_pipeline
):
    dags = domain_pipeline({"minRecommendationRequestsPerSecond": 1})
    config = dags["config"]
    assert "train_deploy" not in dags  # recommenders instead of solution + campaign
    personalize, runtime, s3 = local_aws["personalize"], local_aws["runtime"], local_aws["s3"]

    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(5)})
    group = next(
        g for g in personalize.list_dataset_groups()["datasetGroups"] if g["name"] == config.dataset_group
    )
    assert personalize.describe_dataset_group(datasetGroupArn=group["datasetGroupArn"])["datasetGroup"][
        "domain"
    ] == ("ECOMMERCE")

    _, states = run(dags["recommenders"], logical_date=None)
    assert (
        states[f"deploy_{FOR_YOU}"]
        == states[f"deploy_{ALSO_VIEWED}"]
        == states["record_metrics"]
        == "success"
    )
    listed = {
        r["name"]: r["recommenderArn"]
        for r in personalize.list_recommenders(datasetGroupArn=group["datasetGroupArn"])["recommenders"]
    }
    assert set(listed) == {FOR_YOU, ALSO_VIEWED}
    for_you = runtime.get_recommendations(recommenderArn=listed[FOR_YOU], userId="U00001", numResults=5)
    item = for_you["itemList"][0]["itemId"]
    also_viewed = runtime.get_recommendations(
        recommenderArn=listed[ALSO_VIEWED], userId="U00001", itemId=item, numResults=5
    )
    assert len(for_you["itemList"]) == 5 and also_viewed["itemList"]
    assert item not in {entry["itemId"] for entry in also_viewed["itemList"]}

    key = f"{config.s3.prefix}/history/recommenders.jsonl"
    (line,) = [
        json.loads(text) for text in s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().splitlines()
    ]
    for name in (FOR_YOU, ALSO_VIEWED):
        metrics = line["recommenders"][name]["model_metrics"]
        assert metrics and all(0 <= value <= 1 for value in metrics.values()), metrics
        assert line["recommenders"][name]["smoke_test_items"] == config.smoke_test.num_results

    # A click on a recommendation (PutEvents with its recommendationId) counts for that recommender.
    tracker = next(
        t for t in personalize.list_event_trackers()["eventTrackers"] if t["name"] == config.event_tracker
    )
    tracking_id = personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])[
        "eventTracker"
    ]["trackingId"]
    events = boto3.client("personalize-events", endpoint_url=personalize_endpoint, region_name="us-east-1")
    events.put_events(
        trackingId=tracking_id,
        userId="U00001",
        sessionId="s-1",
        eventList=[
            {
                "eventType": "click",
                "itemId": item,
                "sentAt": time.time(),
                "recommendationId": for_you["recommendationId"],
            }
        ],
    )

    # A changed recommender_config updates the recommender in place; nothing new is created.
    dags = domain_pipeline({"minRecommendationRequestsPerSecond": 2})
    run(dags["recommenders"], logical_date=None)
    lines = [
        json.loads(text) for text in s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().splitlines()
    ]
    assert lines[-1]["recommenders"][FOR_YOU]["online_totals"] == {"CLICKS": 1.0}
    assert lines[-1]["recommenders"][ALSO_VIEWED]["online_totals"] == {}
    described = personalize.describe_recommender(recommenderArn=listed[FOR_YOU])["recommender"]
    assert described["recommenderConfig"]["minRecommendationRequestsPerSecond"] == 2
    assert len(personalize.list_recommenders(datasetGroupArn=group["datasetGroupArn"])["recommenders"]) == 2

    # The cost schedule: stop both, then start both (a rerun of either changes nothing).
    run(dags["recommenders_stop"], logical_date=None)
    statuses = {
        n: personalize.describe_recommender(recommenderArn=a)["recommender"]["status"]
        for n, a in listed.items()
    }
    assert set(statuses.values()) <= {"STOP PENDING", "STOP IN_PROGRESS", "INACTIVE"}
    support_wait = [
        personalize.describe_recommender(recommenderArn=a)["recommender"]["status"] for a in listed.values()
    ]
    assert support_wait
    run(dags["recommenders_start"], logical_date=None)
    for arn in listed.values():
        assert personalize.describe_recommender(recommenderArn=arn)["recommender"]["status"] == "ACTIVE"
