"""The local service keeps Personalize's quotas per dataset group: LimitExceededException past them.

Numbers are literal, from the developer guide's "Each dataset group has the following quotas"
(docs/PERSONALIZE_FACTS.md, "Quotas per dataset group"): 10 active solutions, 5 active campaigns,
30 filters, 5 recommenders.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from tests.include.local_personalize.conftest import wait_for_status
from tests.include.local_personalize.test_workflow import POPULARITY, build_world

FILTER = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'


@pytest.fixture(scope="module")
def client(personalize_endpoint):
    """No retries: botocore retries LimitExceededException as throttling, which would only slow the test."""
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "personalize", endpoint_url=personalize_endpoint, region_name="us-east-1", config=config
    )


@pytest.fixture(scope="module")
def quota_world(personalize, s3_endpoint):
    """A dataset group with data, one trained solution version and one campaign serving it."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="pp-local-personalize-quotas")
    return build_world(personalize, s3, "pp-local-personalize-quotas", "qt")


def test_an_eleventh_solution_in_a_dataset_group_is_refused_and_a_deleted_one_frees_its_place(
    client, quota_world
):
    group = quota_world["group"]
    made = [
        client.create_solution(name=f"qt-solution-{n}", datasetGroupArn=group, recipeArn=POPULARITY)[
            "solutionArn"
        ]
        for n in range(9)
    ]  # with the world's own: 10
    with pytest.raises(client.exceptions.LimitExceededException, match="10 active solutions"):
        client.create_solution(name="qt-solution-eleventh", datasetGroupArn=group, recipeArn=POPULARITY)
    # A name that exists is still ResourceAlreadyExists (the pipeline adopts it), not the quota.
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
        client.create_solution(name="qt-solution-0", datasetGroupArn=group, recipeArn=POPULARITY)
    other = client.create_dataset_group(name="qt-other-group")["datasetGroupArn"]
    client.create_solution(name="qt-other-solution", datasetGroupArn=other, recipeArn=POPULARITY)
    wait_for_status(lambda: client.describe_solution(solutionArn=made[0]), "solution")
    client.delete_solution(solutionArn=made[0])
    client.create_solution(name="qt-solution-eleventh", datasetGroupArn=group, recipeArn=POPULARITY)


def test_a_sixth_campaign_in_a_dataset_group_is_refused(client, quota_world):
    version = quota_world["version"]
    for n in range(4):  # with the world's own: 5
        client.create_campaign(name=f"qt-campaign-{n}", solutionVersionArn=version, minProvisionedTPS=1)
    with pytest.raises(client.exceptions.LimitExceededException, match="5 active campaigns"):
        client.create_campaign(name="qt-campaign-sixth", solutionVersionArn=version, minProvisionedTPS=1)


def test_a_thirty_first_filter_in_a_dataset_group_is_refused(client):
    group = client.create_dataset_group(name="qt-filters")["datasetGroupArn"]
    for n in range(30):
        client.create_filter(name=f"qt-filter-{n}", datasetGroupArn=group, filterExpression=FILTER)
    with pytest.raises(client.exceptions.LimitExceededException, match="30 filters"):
        client.create_filter(name="qt-filter-31st", datasetGroupArn=group, filterExpression=FILTER)


def test_a_sixth_recommender_in_a_dataset_group_is_refused(client):
    group = client.create_dataset_group(name="qt-domain", domain="ECOMMERCE")["datasetGroupArn"]
    wait_for_status(lambda: client.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    recipe = "arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views"
    for n in range(5):
        client.create_recommender(name=f"qt-recommender-{n}", datasetGroupArn=group, recipeArn=recipe)
    with pytest.raises(client.exceptions.LimitExceededException, match="5 recommenders"):
        client.create_recommender(name="qt-recommender-sixth", datasetGroupArn=group, recipeArn=recipe)
