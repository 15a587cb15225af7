"""Recommenders on a Domain dataset group, through boto3: lifecycle, serving, automatic filters, errors.

Expectations are written from AWS's documentation ("ECOMMERCE use cases", botocore's Recommender
status documentation, "Evaluating an Amazon Personalize domain recommender"), not read from
personalize_contract.domains.
"""

from __future__ import annotations

import csv
import io

import boto3
import pytest

from include.local_personalize.seed import Seeder
from tests.include.local_personalize.conftest import (
    INTERACTIONS_SCHEMA,
    domain_interactions_csv,
    to_csv,
    wait_for_status,
)

RECOMMENDED_FOR_YOU = "arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you"
ALSO_VIEWED = "arn:aws:personalize:::recipe/aws-ecomm-customers-who-viewed-x-also-viewed"
BEST_SELLERS = "arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-purchases"
MOST_VIEWED = "arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views"
AWS_METRIC_KEYS = {
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
}
SETTLED = ("ACTIVE", "CREATE FAILED", "INACTIVE")


@pytest.fixture(scope="module")
def shop(personalize, s3_endpoint, personalize_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    seeder = Seeder(personalize, s3, "pp-local-recommenders", timeout=120.0, poll_seconds=0.02)
    content = domain_interactions_csv()
    seeded = seeder.dataset_group(
        "rec-shop", {"INTERACTIONS": (INTERACTIONS_SCHEMA, content)}, domain="ECOMMERCE"
    )
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    return {"group": seeded["group"], "rows": rows}


def create(personalize, name: str, group: str, recipe: str) -> dict:
    arn = personalize.create_recommender(name=name, datasetGroupArn=group, recipeArn=recipe)["recommenderArn"]
    return wait_for_status(
        lambda: personalize.describe_recommender(recommenderArn=arn), "recommender", done=SETTLED
    )


def test_use_case_recommenders_train_serve_from_the_data_and_filter_purchases(personalize, runtime, shop):
    group, rows = shop["group"], shop["rows"]
    for_you = create(personalize, "rec-for-you", group, RECOMMENDED_FOR_YOU)
    also_viewed = create(personalize, "rec-also-viewed", group, ALSO_VIEWED)
    assert for_you["status"] == "ACTIVE" and also_viewed["status"] == "ACTIVE", (for_you, also_viewed)
    assert for_you["_seen"][-1] == "ACTIVE" and "CREATE PENDING" not in for_you["_seen"][1:]
    assert set(for_you["modelMetrics"]) == AWS_METRIC_KEYS
    assert all(0 <= v <= 1 for v in for_you["modelMetrics"].values())

    catalogue = {r["ITEM_ID"] for r in rows}
    purchased = {r["ITEM_ID"] for r in rows if r["USER_ID"] == "u1" and r["EVENT_TYPE"] == "Purchase"}
    assert purchased  # the data gives u1 purchases, so the automatic filter has something to remove
    served = runtime.get_recommendations(recommenderArn=for_you["recommenderArn"], userId="u1", numResults=20)
    items = [i["itemId"] for i in served["itemList"]]
    assert len(items) == 20 and set(items) <= catalogue
    assert not set(items) & purchased, "Recommended for you filters out items the user purchased"
    assert served["recommendationId"].startswith("RID-")

    related = runtime.get_recommendations(
        recommenderArn=also_viewed["recommenderArn"], itemId="i0", userId="u1", numResults=10
    )
    related_items = [i["itemId"] for i in related["itemList"]]
    assert related_items and set(related_items) <= catalogue and "i0" not in related_items
    assert not set(related_items) & purchased

    # GetRecommendations requirements from the guide: userId required for Recommended for you,
    # itemId and userId for Customers who viewed X also viewed.
    with pytest.raises(runtime.exceptions.InvalidInputException, match="userId is required"):
        runtime.get_recommendations(recommenderArn=for_you["recommenderArn"], itemId="i0")
    with pytest.raises(runtime.exceptions.InvalidInputException, match="itemId is required"):
        runtime.get_recommendations(recommenderArn=also_viewed["recommenderArn"], userId="u1")
    listed = personalize.list_recommenders(datasetGroupArn=group)["recommenders"]
    assert {r["name"] for r in listed} >= {"rec-for-you", "rec-also-viewed"}
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_dataset_group(datasetGroupArn=group)


def test_a_use_case_without_1000_events_of_its_type_fails_naming_them(personalize, shop):
    # The data holds 320 Purchase events; Best sellers needs "At minimum, 1000 Purchase events".
    best_sellers = create(personalize, "rec-best-sellers", shop["group"], BEST_SELLERS)
    assert best_sellers["status"] == "CREATE FAILED"
    assert "1000 Purchase events" in best_sellers["failureReason"]
    assert "320" in best_sellers["failureReason"]


def test_stop_start_update_and_delete_follow_the_documented_statuses(personalize, runtime, shop):
    most_viewed = create(personalize, "rec-most-viewed", shop["group"], MOST_VIEWED)
    arn = most_viewed["recommenderArn"]
    assert most_viewed["status"] == "ACTIVE"
    before = runtime.get_recommendations(recommenderArn=arn, userId="u2")["itemList"]
    views = {}
    for row in shop["rows"]:
        if row["EVENT_TYPE"] == "View":
            views[row["ITEM_ID"]] = views.get(row["ITEM_ID"], 0) + 1
    assert before[0]["itemId"] == max(views, key=views.get), "Most viewed puts the most viewed item first"

    personalize.stop_recommender(recommenderArn=arn)
    stopped = wait_for_status(
        lambda: personalize.describe_recommender(recommenderArn=arn), "recommender", done=("INACTIVE",)
    )
    assert set(stopped["_seen"]) <= {"STOP PENDING", "STOP IN_PROGRESS", "INACTIVE"}
    with pytest.raises(runtime.exceptions.InvalidInputException, match="INACTIVE"):
        runtime.get_recommendations(recommenderArn=arn, userId="u2")
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.stop_recommender(recommenderArn=arn)

    personalize.start_recommender(recommenderArn=arn)
    started = wait_for_status(
        lambda: personalize.describe_recommender(recommenderArn=arn), "recommender", done=("ACTIVE",)
    )
    assert set(started["_seen"]) <= {"START PENDING", "START IN_PROGRESS", "ACTIVE"}
    assert runtime.get_recommendations(recommenderArn=arn, userId="u2")["itemList"] == before

    personalize.update_recommender(
        recommenderArn=arn, recommenderConfig={"minRecommendationRequestsPerSecond": 3}
    )
    deadline_check = wait_for_status(
        lambda: {
            "u": personalize.describe_recommender(recommenderArn=arn)["recommender"][
                "latestRecommenderUpdate"
            ]
        },
        "u",
    )
    assert deadline_check["status"] == "ACTIVE"
    updated = personalize.describe_recommender(recommenderArn=arn)["recommender"]
    assert updated["recommenderConfig"]["minRecommendationRequestsPerSecond"] == 3

    personalize.delete_recommender(recommenderArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_recommender(recommenderArn=arn)
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(recommenderArn=arn, userId="u2")


def test_video_on_demand_use_cases_serve_and_filter_watched_videos(personalize, runtime, s3_endpoint):
    rows = [
        [
            f"u{user}",
            f"v{(user * 7 + step * 3) % 50}",
            1_700_000_000 + user * 100 + step,
            "Watch" if step % 4 else "Click",
            "",
        ]
        for user in range(40)
        for step in range(36)
    ]  # 1,080 Watch events, 360 Click
    content = to_csv(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"], rows)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    seeder = Seeder(personalize, s3, "pp-local-recommenders", timeout=120.0, poll_seconds=0.02)
    group = seeder.dataset_group(
        "rec-video", {"INTERACTIONS": (INTERACTIONS_SCHEMA, content)}, domain="VIDEO_ON_DEMAND"
    )["group"]
    top_picks = create(personalize, "rec-top-picks", group, "arn:aws:personalize:::recipe/aws-vod-top-picks")
    watched_x = create(
        personalize, "rec-watched-x", group, "arn:aws:personalize:::recipe/aws-vod-because-you-watched-x"
    )
    trending = create(personalize, "rec-trending", group, "arn:aws:personalize:::recipe/aws-vod-trending-now")
    assert [r["status"] for r in (top_picks, watched_x, trending)] == ["ACTIVE"] * 3
    videos = {r[1] for r in rows}
    watched = {r[1] for r in rows if r[0] == "u1" and r[3] == "Watch"}

    picks = runtime.get_recommendations(recommenderArn=top_picks["recommenderArn"], userId="u1")["itemList"]
    assert picks and {i["itemId"] for i in picks} <= videos
    related = runtime.get_recommendations(
        recommenderArn=watched_x["recommenderArn"], userId="u1", itemId="v7", numResults=10
    )["itemList"]
    assert related and not {i["itemId"] for i in related} & watched, (
        "Because you watched X drops watched videos"
    )
    assert runtime.get_recommendations(recommenderArn=trending["recommenderArn"], numResults=5)["itemList"]
    # A use case of the other domain is refused in a VIDEO_ON_DEMAND dataset group.
    with pytest.raises(personalize.exceptions.InvalidInputException, match="VIDEO_ON_DEMAND"):
        personalize.create_recommender(
            name="rec-wrong-domain", datasetGroupArn=group, recipeArn=RECOMMENDED_FOR_YOU
        )
