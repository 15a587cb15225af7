"""Metric attributions: events carrying a served recommendationId add up per metric and source in S3.

The report's columns and MATH_FUNCTION spellings are AWS's ("Publishing metric attribution reports
to Amazon S3": METRIC_NAME,EVENT_TYPE,VALUE,MATH_FUNCTION,EVENT_ATTRIBUTION_SOURCE,TIMESTAMP,
`samplecount`); the 15-minute windows follow AWS's example. Written out here, not read from the service.
"""

from __future__ import annotations

import csv
import io
import time

import boto3
import pytest

from tests.include.local_personalize.conftest import wait_for_status
from tests.include.local_personalize.test_workflow import ROLE, build_world

BUCKET = "pp-local-personalize-attribution"
SENT_AT = 1_700_000_123  # in the 15-minute window that starts at 1700000100
REPORT = "attribution/AggregatedAttributionMetrics-PutEvents-1700000100.csv"
METRICS = [
    {"eventType": "click", "metricName": "CLICKS", "expression": "SAMPLECOUNT()"},
    {"eventType": "purchase", "metricName": "REVENUE", "expression": "SUM(Interactions.EVENT_VALUE)"},
]


@pytest.fixture(scope="module")
def shop(personalize, s3_endpoint, personalize_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return s3, build_world(personalize, s3, BUCKET, "attr")


def read_report(s3, key: str, expected_rows: int, timeout: float = 30.0) -> list[dict]:
    """The report once it has `expected_rows` rows (it is written in the background, rewritten per event)."""
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        try:
            text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
            rows = list(csv.DictReader(io.StringIO(text)))
        except s3.exceptions.NoSuchKey:
            rows = []
        if len(rows) >= expected_rows:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"{key} holds {rows} after {timeout}s")


def test_events_with_a_served_recommendation_id_are_counted_and_summed_per_campaign(
    personalize, runtime, events, shop
):
    s3, world = shop
    attribution = personalize.create_metric_attribution(
        name="attr-online",
        datasetGroupArn=world["group"],
        metrics=METRICS,
        metricsOutputConfig={"s3DataDestination": {"path": f"s3://{BUCKET}/attribution/"}, "roleArn": ROLE},
    )["metricAttributionArn"]
    wait_for_status(
        lambda: personalize.describe_metric_attribution(metricAttributionArn=attribution), "metricAttribution"
    )
    listed = personalize.list_metric_attribution_metrics(metricAttributionArn=attribution)["metrics"]
    assert sorted(listed, key=lambda m: m["metricName"]) == METRICS
    assert [
        a["name"]
        for a in personalize.list_metric_attributions(datasetGroupArn=world["group"])["metricAttributions"]
    ] == ["attr-online"]

    served = runtime.get_recommendations(campaignArn=world["campaign"], userId="u1", numResults=5)
    recommendation_id = served["recommendationId"]
    first, second = (i["itemId"] for i in served["itemList"][:2])
    tracker = personalize.create_event_tracker(name="attr-tracker", datasetGroupArn=world["group"])
    wait_for_status(
        lambda: personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"]), "eventTracker"
    )

    def event(event_type, item, *, value=None, rid=recommendation_id):
        body = {"eventType": event_type, "itemId": item, "sentAt": SENT_AT}
        if value is not None:
            body["eventValue"] = value
        if rid:
            body["recommendationId"] = rid
        return body

    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u1",
        sessionId="s-attr",
        eventList=[
            event("click", first),
            event("click", second),
            event("purchase", first, value=9.5),
            event("click", first, rid=None),  # no source: SOURCE_NAME_UNDEFINED
            event("click", first, rid="RID-never-served"),  # no campaign to find: undefined too
            {**event("click", first), "metricAttribution": {"eventAttributionSource": "newsletter"}},
        ],
    )
    events.put_events(
        trackingId=tracker["trackingId"],
        userId="u1",
        sessionId="s-attr",
        eventList=[event("purchase", second, value=3.0), event("view", second)],  # view: no metric
    )
    rows = read_report(s3, REPORT, 4)
    by_metric = {r["METRIC_NAME"]: r for r in rows if r["EVENT_ATTRIBUTION_SOURCE"] == world["campaign"]}
    assert set(by_metric) == {"CLICKS", "REVENUE"}
    clicks_by_source = {
        r["EVENT_ATTRIBUTION_SOURCE"]: r["VALUE"] for r in rows if r["METRIC_NAME"] == "CLICKS"
    }
    assert clicks_by_source == {world["campaign"]: "2.0", "SOURCE_NAME_UNDEFINED": "2.0", "newsletter": "1.0"}
    assert by_metric["CLICKS"] == {
        "METRIC_NAME": "CLICKS",
        "EVENT_TYPE": "click",
        "VALUE": "2.0",
        "MATH_FUNCTION": "samplecount",
        "EVENT_ATTRIBUTION_SOURCE": world["campaign"],
        "TIMESTAMP": "1700000100",
    }
    deadline = time.monotonic() + 30
    while by_metric["REVENUE"]["VALUE"] != "12.5" and time.monotonic() < deadline:
        by_metric = {
            r["METRIC_NAME"]: r
            for r in read_report(s3, REPORT, 4)
            if r["EVENT_ATTRIBUTION_SOURCE"] == world["campaign"]
        }
        time.sleep(0.05)
    assert by_metric["REVENUE"]["VALUE"] == "12.5" and by_metric["REVENUE"]["MATH_FUNCTION"] == "sum"

    # Bulk data: an import job with publishAttributionMetricsToS3 publishes a new report of its records.
    s3.put_object(
        Bucket=BUCKET,
        Key="attr-bulk/part.csv",
        Body=b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
        b"u1,i1,1700000200,click,\nu2,i2,1700000300,click,\nu2,i2,1700000400,purchase,4.0\n",
    )
    job = personalize.create_dataset_import_job(
        jobName="attr-bulk",
        datasetArn=world["INTERACTIONS"],
        dataSource={"dataLocation": f"s3://{BUCKET}/attr-bulk/part.csv"},
        roleArn=ROLE,
        importMode="INCREMENTAL",
        publishAttributionMetricsToS3=True,
    )["datasetImportJobArn"]
    imported = wait_for_status(
        lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob"
    )
    assert imported["status"] == "ACTIVE", imported
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(
            Bucket=BUCKET, Prefix="attribution/AggregatedAttributionMetrics-INCREMENTAL-"
        )["Contents"]
    ]
    assert len(keys) == 1
    bulk = {r["METRIC_NAME"]: r for r in read_report(s3, keys[0], 2)}
    assert (bulk["CLICKS"]["VALUE"], bulk["CLICKS"]["EVENT_ATTRIBUTION_SOURCE"]) == (
        "2.0",
        "SOURCE_NAME_UNDEFINED",
    )
    assert (bulk["REVENUE"]["VALUE"], bulk["CLICKS"]["TIMESTAMP"]) == ("4.0", "1700000100")

    personalize.update_metric_attribution(metricAttributionArn=attribution, removeMetrics=["CLICKS"])
    assert [
        m["metricName"]
        for m in personalize.list_metric_attribution_metrics(metricAttributionArn=attribution)["metrics"]
    ] == ["REVENUE"]


def test_metric_definitions_are_checked(personalize, shop):
    _, world = shop
    output = {"s3DataDestination": {"path": f"s3://{BUCKET}/x/"}, "roleArn": ROLE}
    with pytest.raises(personalize.exceptions.InvalidInputException, match="SAMPLECOUNT"):
        personalize.create_metric_attribution(
            name="attr-bad",
            datasetGroupArn=world["group"],
            metrics=[
                {"eventType": "click", "metricName": "X", "expression": "AVG(Interactions.EVENT_VALUE)"}
            ],
            metricsOutputConfig=output,
        )
    with pytest.raises(personalize.exceptions.InvalidInputException, match="numeric"):
        personalize.create_metric_attribution(
            name="attr-bad",
            datasetGroupArn=world["group"],
            metrics=[{"eventType": "click", "metricName": "X", "expression": "SUM(Items.CATEGORY)"}],
            metricsOutputConfig=output,
        )
    eleven = [{"eventType": f"e{n}", "metricName": f"M{n}", "expression": "SAMPLECOUNT()"} for n in range(11)]
    with pytest.raises(personalize.exceptions.InvalidInputException, match="10"):
        personalize.create_metric_attribution(
            name="attr-bad", datasetGroupArn=world["group"], metrics=eleven, metricsOutputConfig=output
        )
