"""Conformance: EVERY operation of botocore's personalize, personalize-runtime and personalize-events
models, called through boto3 with valid inputs on a real server, each raw response validated against
the operation's output shape (conftest.checked_client). The operation list is enumerated from the
service models, so an operation a new botocore adds fails this test until it is called here.

Only the action APIs answer errors (the local service creates no Actions datasets); those must be
errors the operation's model declares, in JSON, below 500.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from include.local_personalize import shapes
from include.local_personalize.server import method_name, start_in_thread
from tests.include.local_personalize.conftest import (
    ERROR_ONLY_OPERATIONS,
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    USERS_SCHEMA,
    VALIDATED_OPERATIONS,
    checked_client,
    domain_interactions_csv,
    interactions_csv,
    items_csv,
    users_csv,
    wait_for_status,
)

BUCKET = "pp-local-personalize-conformance"
ROLE = "arn:aws:iam::123456789012:role/PersonalizeS3"
RECIPE = "arn:aws:personalize:::recipe/"
EVERY_OPERATION = {f"{s}:{op}" for s in shapes.SERVICES for op in shapes.service_model(s).operation_names}


class Caller:
    """Calls operations by their model names and remembers which were called."""

    def __init__(self, url: str):
        self.clients = {service: checked_client(service, url) for service in shapes.SERVICES}
        self.called: set[str] = set()

    def __call__(self, service: str, operation: str, **params) -> dict:
        self.called.add(f"{service}:{operation}")
        return getattr(self.clients[service], method_name(operation))(**params)

    def p(self, operation: str, **params) -> dict:
        return self("personalize", operation, **params)

    def error(self, service: str, operation: str, **params) -> str:
        """The error code of a call that must fail with an error its model declares."""
        declared = {e.name for e in shapes.operation_model(service, operation).error_shapes}
        with pytest.raises(ClientError) as raised:
            self(service, operation, **params)
        response = raised.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] < 500, response
        assert response["Error"]["Code"] in declared, (operation, response["Error"], declared)
        return response["Error"]["Code"]

    def wait(
        self, operation: str, key: str, done=("ACTIVE", "CREATE FAILED", "CREATE STOPPED"), **params
    ) -> dict:
        resource = wait_for_status(lambda: self.p(operation, **params), key, done=done)
        assert resource["status"] == done[0], resource  # the first of `done` is the success
        return resource


@pytest.fixture(scope="module")
def server(personalize_endpoint, s3_endpoint, tmp_path_factory):
    # Its own server (still driven only through boto3): StopSolutionVersionCreation needs a version
    # held in CREATE PENDING (worker.held), which only the server's owner can arrange.
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    running = start_in_thread(tmp_path_factory.mktemp("conformance"), transition_delay=0.01)
    yield running
    running.stop()


def seed_group(call: Caller, s3, name: str, files: dict, domain: str | None = None) -> dict:
    group = call.p("CreateDatasetGroup", name=name, **({"domain": domain} if domain else {}))[
        "datasetGroupArn"
    ]
    call.wait("DescribeDatasetGroup", "datasetGroup", datasetGroupArn=group)
    arns = {"group": group}
    for dataset_type, (schema, content) in files.items():
        resource = f"{name}-{dataset_type.lower()}"
        schema_arn = call.p("CreateSchema", name=resource, schema=schema)["schemaArn"]
        dataset = call.p(
            "CreateDataset",
            name=resource,
            schemaArn=schema_arn,
            datasetGroupArn=group,
            datasetType=dataset_type,
        )["datasetArn"]
        call.wait("DescribeDataset", "dataset", datasetArn=dataset)
        s3.put_object(Bucket=BUCKET, Key=f"{name}/{dataset_type}.csv", Body=content)
        job = call.p(
            "CreateDatasetImportJob",
            jobName=f"{resource}-import",
            datasetArn=dataset,
            dataSource={"dataLocation": f"s3://{BUCKET}/{name}/{dataset_type}.csv"},
            roleArn=ROLE,
        )["datasetImportJobArn"]
        call.wait("DescribeDatasetImportJob", "datasetImportJob", datasetImportJobArn=job)
        arns[dataset_type] = dataset
        arns[f"{dataset_type}-schema"] = schema_arn
    return arns


def trained_version(call: Caller, name: str, group: str, recipe: str) -> tuple[str, str]:
    solution = call.p(
        "CreateSolution",
        name=name,
        datasetGroupArn=group,
        recipeArn=RECIPE + recipe,
        performAutoTraining=False,
    )["solutionArn"]
    call.wait("DescribeSolution", "solution", solutionArn=solution)
    version = call.p("CreateSolutionVersion", solutionArn=solution)["solutionVersionArn"]
    call.wait("DescribeSolutionVersion", "solutionVersion", solutionVersionArn=version)
    return solution, version


def test_every_operation_answers_a_response_that_validates_against_its_output_shape(server, s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    call = Caller(server.url)
    files = {
        "INTERACTIONS": (INTERACTIONS_SCHEMA, interactions_csv()),
        "ITEMS": (ITEMS_SCHEMA, items_csv()),
        "USERS": (USERS_SCHEMA, users_csv()),
    }
    world = seed_group(call, s3, "conf", files)
    group = world["group"]
    call.p("ListDatasetGroups")
    call.p("ListSchemas")
    call.p("ListDatasets", datasetGroupArn=group)
    call.p("ListDatasetImportJobs", datasetArn=world["INTERACTIONS"])
    call.p("DescribeSchema", schemaArn=world["ITEMS-schema"])

    # recipes, algorithms, feature transformations
    assert call.p("ListRecipes")["recipes"]
    domain_recipes = call.p("ListRecipes", domain="ECOMMERCE")["recipes"]
    assert RECIPE + "aws-ecomm-recommended-for-you" in {r["recipeArn"] for r in domain_recipes}
    recipe = call.p("DescribeRecipe", recipeArn=RECIPE + "aws-user-personalization")["recipe"]
    call.p("DescribeAlgorithm", algorithmArn=recipe["algorithmArn"])
    call.p("DescribeFeatureTransformation", featureTransformationArn=recipe["featureTransformationArn"])

    # solutions, versions, campaigns
    solution, version = trained_version(call, "conf-solution", group, "aws-user-personalization")
    call.p("ListSolutions", datasetGroupArn=group)
    call.p("ListSolutionVersions", solutionArn=solution)
    call.p("GetSolutionMetrics", solutionVersionArn=version)
    call.p("UpdateSolution", solutionArn=solution, performAutoTraining=False)
    wait_for_status(
        lambda: {"u": call.p("DescribeSolution", solutionArn=solution)["solution"]["latestSolutionUpdate"]},
        "u",
    )
    with server.backend.worker.held():
        stopped = call.p("CreateSolutionVersion", solutionArn=solution)["solutionVersionArn"]
        call.p("StopSolutionVersionCreation", solutionVersionArn=stopped)
    assert call.wait(
        "DescribeSolutionVersion", "solutionVersion", done=("CREATE STOPPED",), solutionVersionArn=stopped
    )
    campaign = call.p("CreateCampaign", name="conf-campaign", solutionVersionArn=version)["campaignArn"]
    call.wait("DescribeCampaign", "campaign", campaignArn=campaign)
    call.p("ListCampaigns", solutionArn=solution)
    call.p("UpdateCampaign", campaignArn=campaign, minProvisionedTPS=2)
    wait_for_status(
        lambda: {"u": call.p("DescribeCampaign", campaignArn=campaign)["campaign"]["latestCampaignUpdate"]},
        "u",
    )

    # filters, event trackers, runtime, events
    flt = call.p(
        "CreateFilter",
        name="conf-filter",
        datasetGroupArn=group,
        filterExpression='EXCLUDE ItemID WHERE Items.CATEGORY IN ("hats")',
    )["filterArn"]
    call.wait("DescribeFilter", "filter", filterArn=flt)
    call.p("ListFilters", datasetGroupArn=group)
    tracker = call.p("CreateEventTracker", name="conf-tracker", datasetGroupArn=group)
    call.wait("DescribeEventTracker", "eventTracker", eventTrackerArn=tracker["eventTrackerArn"])
    call.p("ListEventTrackers", datasetGroupArn=group)
    served = call(
        "personalize-runtime", "GetRecommendations", campaignArn=campaign, userId="u1", filterArn=flt
    )
    call(
        "personalize-runtime",
        "GetPersonalizedRanking",
        campaignArn=campaign,
        userId="u1",
        inputList=["i1", "i2"],
    )
    attribution = call.p(
        "CreateMetricAttribution",
        name="conf-attribution",
        datasetGroupArn=group,
        metrics=[{"eventType": "click", "metricName": "CLICKS", "expression": "SAMPLECOUNT()"}],
        metricsOutputConfig={"s3DataDestination": {"path": f"s3://{BUCKET}/attribution/"}, "roleArn": ROLE},
    )["metricAttributionArn"]
    call.wait("DescribeMetricAttribution", "metricAttribution", metricAttributionArn=attribution)
    call.p("ListMetricAttributions", datasetGroupArn=group)
    call.p("ListMetricAttributionMetrics", metricAttributionArn=attribution)
    call.p(
        "UpdateMetricAttribution",
        metricAttributionArn=attribution,
        addMetrics=[
            {"eventType": "purchase", "metricName": "REVENUE", "expression": "SUM(Interactions.EVENT_VALUE)"}
        ],
    )
    call(
        "personalize-events",
        "PutEvents",
        trackingId=tracker["trackingId"],
        userId="u1",
        sessionId="s1",
        eventList=[
            {
                "eventType": "click",
                "itemId": "i3",
                "sentAt": 1_700_300_000,
                "recommendationId": served["recommendationId"],
            }
        ],
    )
    call(
        "personalize-events",
        "PutItems",
        datasetArn=world["ITEMS"],
        items=[{"itemId": "i-new", "properties": '{"category": "hats", "price": 2.5}'}],
    )
    call(
        "personalize-events",
        "PutUsers",
        datasetArn=world["USERS"],
        users=[{"userId": "u-new", "properties": '{"membership": "gold"}'}],
    )

    # batch inference, batch segments, export, deletion
    s3.put_object(Bucket=BUCKET, Key="batch/users.json", Body=b'{"userId": "u1"}\n{"userId": "u2"}\n')
    batch = call.p(
        "CreateBatchInferenceJob",
        jobName="conf-batch",
        solutionVersionArn=version,
        roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/batch/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/batch-out/"}},
    )["batchInferenceJobArn"]
    call.wait("DescribeBatchInferenceJob", "batchInferenceJob", batchInferenceJobArn=batch)
    call.p("ListBatchInferenceJobs", solutionVersionArn=version)
    affinity, affinity_version = trained_version(call, "conf-affinity", group, "aws-item-affinity")
    s3.put_object(
        Bucket=BUCKET,
        Key="segments/items.json",
        Body=b'{"itemId": "i1"}\n\n{"itemId": "i2"}\n{"itemId": "nope"}\n',
    )
    segment = call.p(
        "CreateBatchSegmentJob",
        jobName="conf-segment",
        solutionVersionArn=affinity_version,
        numResults=5,
        roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/segments/items.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/segments-out/"}},
    )["batchSegmentJobArn"]
    call.wait("DescribeBatchSegmentJob", "batchSegmentJob", batchSegmentJobArn=segment)
    call.p("ListBatchSegmentJobs", solutionVersionArn=affinity_version)
    segments = (
        s3.get_object(Bucket=BUCKET, Key="segments-out/items.json.out")["Body"].read().decode().splitlines()
    )
    answers = [json.loads(line) for line in segments]
    assert [len(a["output"]["usersList"]) for a in answers[:2]] == [5, 5]
    assert answers[2] == {
        "input": {"itemId": "nope"},
        "output": None,
        "error": "itemId is not in the model's items",
    }
    export = call.p(
        "CreateDatasetExportJob",
        jobName="conf-export",
        datasetArn=world["ITEMS"],
        roleArn=ROLE,
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/export/"}},
    )["datasetExportJobArn"]
    call.wait("DescribeDatasetExportJob", "datasetExportJob", datasetExportJobArn=export)
    call.p("ListDatasetExportJobs", datasetArn=world["ITEMS"])
    s3.put_object(Bucket=BUCKET, Key="erase/users.csv", Body=b"USER_ID\nu39\n")
    deletion = call.p(
        "CreateDataDeletionJob",
        jobName="conf-erase",
        datasetGroupArn=group,
        dataSource={"dataLocation": f"s3://{BUCKET}/erase/users.csv"},
        roleArn=ROLE,
    )["dataDeletionJobArn"]
    call.wait(
        "DescribeDataDeletionJob",
        "dataDeletionJob",
        done=("COMPLETED", "FAILED"),
        dataDeletionJobArn=deletion,
    )
    call.p("ListDataDeletionJobs", datasetGroupArn=group)
    call.p("UpdateDataset", datasetArn=world["USERS"], schemaArn=world["USERS-schema"])
    wait_for_status(
        lambda: {"u": call.p("DescribeDataset", datasetArn=world["USERS"])["dataset"]["latestDatasetUpdate"]},
        "u",
    )

    # tags
    call.p("TagResource", resourceArn=group, tags=[{"tagKey": "team", "tagValue": "recs"}])
    call.p("ListTagsForResource", resourceArn=group)
    call.p("UntagResource", resourceArn=group, tagKeys=["team"])

    # recommenders on a Domain dataset group
    shop = seed_group(
        call,
        s3,
        "conf-shop",
        {"INTERACTIONS": (INTERACTIONS_SCHEMA, domain_interactions_csv())},
        domain="ECOMMERCE",
    )
    recommender = call.p(
        "CreateRecommender",
        name="conf-for-you",
        datasetGroupArn=shop["group"],
        recipeArn=RECIPE + "aws-ecomm-recommended-for-you",
    )["recommenderArn"]
    call.wait("DescribeRecommender", "recommender", recommenderArn=recommender)
    call.p("ListRecommenders", datasetGroupArn=shop["group"])
    call("personalize-runtime", "GetRecommendations", recommenderArn=recommender, userId="u1")
    call.p(
        "UpdateRecommender",
        recommenderArn=recommender,
        recommenderConfig={"minRecommendationRequestsPerSecond": 2},
    )
    wait_for_status(
        lambda: {
            "u": call.p("DescribeRecommender", recommenderArn=recommender)["recommender"][
                "latestRecommenderUpdate"
            ]
        },
        "u",
    )
    call.p("StopRecommender", recommenderArn=recommender)
    call.wait("DescribeRecommender", "recommender", done=("INACTIVE",), recommenderArn=recommender)
    call.p("StartRecommender", recommenderArn=recommender)
    call.wait("DescribeRecommender", "recommender", done=("ACTIVE",), recommenderArn=recommender)

    # the action APIs: documented errors only (no Actions datasets locally)
    call.error("personalize-runtime", "GetActionRecommendations", campaignArn=campaign, userId="u1")
    call.error("personalize-events", "PutActions", datasetArn=world["ITEMS"], actions=[{"actionId": "a1"}])
    call.error(
        "personalize-events",
        "PutActionInteractions",
        trackingId=tracker["trackingId"],
        actionInteractions=[
            {"actionId": "a1", "sessionId": "s1", "timestamp": 1_700_000_000, "eventType": "Taken"}
        ],
    )

    # deletes, each of a resource nothing else uses
    call.p("DeleteRecommender", recommenderArn=recommender)
    call.p("DeleteMetricAttribution", metricAttributionArn=attribution)
    call.p("DeleteCampaign", campaignArn=campaign)
    call.p("DeleteFilter", filterArn=flt)
    call.p("DeleteEventTracker", eventTrackerArn=tracker["eventTrackerArn"])
    call.p("DeleteSolution", solutionArn=affinity)
    call.p("DeleteDataset", datasetArn=shop["INTERACTIONS"])
    spare_schema = call.p("CreateSchema", name="conf-spare", schema=USERS_SCHEMA)["schemaArn"]
    call.p("DeleteSchema", schemaArn=spare_schema)
    spare_group = call.p("CreateDatasetGroup", name="conf-spare")["datasetGroupArn"]
    call.wait("DescribeDatasetGroup", "datasetGroup", datasetGroupArn=spare_group)
    call.p("DeleteDatasetGroup", datasetGroupArn=spare_group)

    assert EVERY_OPERATION - call.called == set(), "operations this test does not call yet"
    assert EVERY_OPERATION - ERROR_ONLY_OPERATIONS <= VALIDATED_OPERATIONS, "a response was not shape-checked"
    assert len(EVERY_OPERATION) >= 79
