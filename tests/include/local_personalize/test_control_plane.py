"""Control plane resources without training: names, ARNs, statuses, listing, tags, refusals."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from tests.include.local_personalize.conftest import (
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    wait_for_status,
)

ARN_PREFIX = "arn:aws:personalize:us-east-1:123456789012:"


def test_dataset_group_goes_through_statuses_and_has_an_aws_arn(personalize):
    arn = personalize.create_dataset_group(name="cp-statuses")["datasetGroupArn"]

    assert arn == ARN_PREFIX + "dataset-group/cp-statuses"
    group = wait_for_status(lambda: personalize.describe_dataset_group(datasetGroupArn=arn), "datasetGroup")
    assert group["status"] == "ACTIVE"
    assert group["name"] == "cp-statuses"
    assert group["creationDateTime"] <= group["lastUpdatedDateTime"]
    assert personalize.list_dataset_groups()["ResponseMetadata"]["RequestId"]


def test_duplicate_names_are_refused(personalize):
    personalize.create_dataset_group(name="cp-duplicate")
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_dataset_group(name="cp-duplicate")


@pytest.mark.parametrize("name", ["has space", "-leading-dash", "x" * 64])
def test_names_are_validated_as_aws_does(personalize, name):
    with pytest.raises(personalize.exceptions.InvalidInputException):
        personalize.create_dataset_group(name=name)


def test_server_checks_what_botocore_checks_client_side(personalize_endpoint):
    unchecked = boto3.client(
        "personalize",
        endpoint_url=personalize_endpoint,
        region_name="us-east-1",
        config=Config(parameter_validation=False),
    )
    with pytest.raises(unchecked.exceptions.InvalidInputException, match="name"):
        unchecked.create_dataset_group(name="")
    with pytest.raises(unchecked.exceptions.InvalidInputException, match="datasetGroupArn"):
        unchecked.describe_dataset_group()


def test_recommenders_need_a_domain_dataset_group_and_one_of_its_use_cases(personalize):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_recommender(
            name="cp-recommender",
            datasetGroupArn=ARN_PREFIX + "dataset-group/x",
            recipeArn="arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views",
        )
    custom = personalize.create_dataset_group(name="cp-custom")["datasetGroupArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException, match="not a Domain dataset group"):
        personalize.create_recommender(
            name="cp-recommender",
            datasetGroupArn=custom,
            recipeArn="arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views",
        )
    video = personalize.create_dataset_group(name="cp-video", domain="VIDEO_ON_DEMAND")["datasetGroupArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException, match="is a ECOMMERCE use case"):
        personalize.create_recommender(
            name="cp-recommender",
            datasetGroupArn=video,
            recipeArn="arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views",
        )
    with pytest.raises(personalize.exceptions.InvalidInputException, match="not a domain use case"):
        personalize.create_recommender(
            name="cp-recommender",
            datasetGroupArn=video,
            recipeArn="arn:aws:personalize:::recipe/aws-user-personalization",
        )


def test_unknown_arn_is_not_found(personalize):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_dataset_group(datasetGroupArn=ARN_PREFIX + "dataset-group/never-created")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_solution(solutionArn=ARN_PREFIX + "solution/never-created")


def test_list_pages_with_next_token(personalize):
    for n in range(3):
        personalize.create_dataset_group(name=f"cp-page-{n}")
    names, token = [], None
    while True:
        page = personalize.list_dataset_groups(maxResults=2, **({"nextToken": token} if token else {}))
        assert len(page["datasetGroups"]) <= 2
        names += [g["name"] for g in page["datasetGroups"]]
        token = page.get("nextToken")
        if not token:
            break
    assert {"cp-page-0", "cp-page-1", "cp-page-2"} <= set(names)
    assert len(names) == len(set(names))


def test_tags_on_create_and_by_arn(personalize):
    arn = personalize.create_dataset_group(name="cp-tags", tags=[{"tagKey": "team", "tagValue": "recs"}])[
        "datasetGroupArn"
    ]
    personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "env", "tagValue": "local"}])
    personalize.untag_resource(resourceArn=arn, tagKeys=["team"])

    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"tagKey": "env", "tagValue": "local"}
    ]
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.list_tags_for_resource(resourceArn=ARN_PREFIX + "dataset-group/no-such")
    with pytest.raises(personalize.exceptions.TooManyTagsException):
        personalize.tag_resource(
            resourceArn=arn, tags=[{"tagKey": f"k{n}", "tagValue": "v"} for n in range(51)]
        )


def test_schema_must_be_an_avro_record_fitting_a_dataset_type(personalize):
    with pytest.raises(personalize.exceptions.InvalidInputException, match="not valid JSON"):
        personalize.create_schema(name="cp-bad-json", schema="{nope")
    lacking_ids = json.dumps({"type": "record", "name": "X", "fields": [{"name": "PRICE", "type": "float"}]})
    with pytest.raises(personalize.exceptions.InvalidInputException, match="lacks required fields"):
        personalize.create_schema(name="cp-bad-fields", schema=lacking_ids)

    arn = personalize.create_schema(name="cp-schema", schema=INTERACTIONS_SCHEMA)["schemaArn"]
    assert personalize.describe_schema(schemaArn=arn)["schema"]["schema"] == INTERACTIONS_SCHEMA
    assert "cp-schema" in [s["name"] for s in personalize.list_schemas()["schemas"]]


def test_dataset_needs_a_fitting_schema_and_deletes_in_use_are_refused(personalize):
    group = personalize.create_dataset_group(name="cp-datasets")["datasetGroupArn"]
    items_schema = personalize.create_schema(name="cp-items-schema", schema=ITEMS_SCHEMA)["schemaArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException, match="INTERACTIONS"):
        personalize.create_dataset(
            name="cp-wrong", schemaArn=items_schema, datasetGroupArn=group, datasetType="Interactions"
        )

    dataset = personalize.create_dataset(
        name="cp-items", schemaArn=items_schema, datasetGroupArn=group, datasetType="Items"
    )["datasetArn"]
    assert dataset == ARN_PREFIX + "dataset/cp-datasets/ITEMS"
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_dataset(
            name="cp-items-2", schemaArn=items_schema, datasetGroupArn=group, datasetType="Items"
        )
    assert (
        wait_for_status(lambda: personalize.describe_dataset(datasetArn=dataset), "dataset")["status"]
        == "ACTIVE"
    )
    assert [d["datasetArn"] for d in personalize.list_datasets(datasetGroupArn=group)["datasets"]] == [
        dataset
    ]

    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_schema(schemaArn=items_schema)
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_dataset_group(datasetGroupArn=group)

    personalize.delete_dataset(datasetArn=dataset)
    personalize.delete_schema(schemaArn=items_schema)
    personalize.delete_dataset_group(datasetGroupArn=group)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_dataset_group(datasetGroupArn=group)


def test_event_tracker_one_per_dataset_group(personalize):
    group = personalize.create_dataset_group(name="cp-tracker")["datasetGroupArn"]
    created = personalize.create_event_tracker(name="cp-tracker", datasetGroupArn=group)
    assert created["eventTrackerArn"].startswith(ARN_PREFIX + "event-tracker/")
    tracker = wait_for_status(
        lambda: personalize.describe_event_tracker(eventTrackerArn=created["eventTrackerArn"]), "eventTracker"
    )
    assert tracker["trackingId"] == created["trackingId"]
    assert tracker["datasetGroupArn"] == group
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_event_tracker(name="cp-tracker-2", datasetGroupArn=group)
    listed = personalize.list_event_trackers(datasetGroupArn=group)["eventTrackers"]
    assert [t["eventTrackerArn"] for t in listed] == [created["eventTrackerArn"]]
    personalize.delete_event_tracker(eventTrackerArn=created["eventTrackerArn"])
    assert personalize.list_event_trackers(datasetGroupArn=group)["eventTrackers"] == []


def test_filters_are_parsed_at_create(personalize):
    group = personalize.create_dataset_group(name="cp-filters")["datasetGroupArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException, match="filter expression"):
        personalize.create_filter(
            name="cp-bad-filter", datasetGroupArn=group, filterExpression="EXCLUDE nonsense"
        )
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    arn = personalize.create_filter(name="cp-filter", datasetGroupArn=group, filterExpression=expression)[
        "filterArn"
    ]
    described = wait_for_status(lambda: personalize.describe_filter(filterArn=arn), "filter")
    assert described["filterExpression"] == expression
    assert [f["filterArn"] for f in personalize.list_filters(datasetGroupArn=group)["Filters"]] == [arn]
    personalize.delete_filter(filterArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_filter(filterArn=arn)


def test_recipes_are_the_engines(personalize):
    recipes = personalize.list_recipes()["recipes"]
    arns = [r["recipeArn"] for r in recipes]
    assert "arn:aws:personalize:::recipe/aws-popularity-count" in arns
    recipe = personalize.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-popularity-count")[
        "recipe"
    ]
    assert recipe["recipeType"] == "POPULAR_ITEMS"
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-no-such-recipe")


def test_solution_needs_a_supported_recipe(personalize):
    group = personalize.create_dataset_group(name="cp-solution")["datasetGroupArn"]
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_solution(
            name="cp-solution", datasetGroupArn=group, recipeArn="arn:aws:personalize:::recipe/aws-no-such"
        )
    arn = personalize.create_solution(
        name="cp-solution",
        datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-popularity-count",
        performAutoTraining=False,
        eventType="click",
        solutionConfig={"eventValueThreshold": "0.5"},
    )["solutionArn"]
    solution = wait_for_status(lambda: personalize.describe_solution(solutionArn=arn), "solution")
    assert solution["performAutoTraining"] is False
    assert solution["solutionConfig"] == {"eventValueThreshold": "0.5"}
    assert [s["solutionArn"] for s in personalize.list_solutions(datasetGroupArn=group)["solutions"]] == [arn]
    personalize.delete_solution(solutionArn=arn)
    assert personalize.list_solutions(datasetGroupArn=group)["solutions"] == []
