"""Dataset import jobs: CSV from S3 checked with the shared rules; FULL replaces, INCREMENTAL merges."""

from __future__ import annotations

import pytest

from tests.include.local_personalize.conftest import (
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    interactions_csv,
    items_csv,
    to_csv,
    wait_for_status,
)
from tests.include.local_personalize.test_workflow import CATEGORY_FILTER, POPULARITY, ROLE

HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]


def make_dataset(personalize, prefix: str, dataset_type: str = "INTERACTIONS", group: str | None = None):
    schema_text = INTERACTIONS_SCHEMA if dataset_type == "INTERACTIONS" else ITEMS_SCHEMA
    if group is None:
        group = personalize.create_dataset_group(name=prefix)["datasetGroupArn"]
    schema = personalize.create_schema(name=f"{prefix}-{dataset_type.lower()}", schema=schema_text)[
        "schemaArn"
    ]
    dataset = personalize.create_dataset(
        name=f"{prefix}-{dataset_type.lower()}",
        schemaArn=schema,
        datasetGroupArn=group,
        datasetType=dataset_type,
    )["datasetArn"]
    wait_for_status(lambda: personalize.describe_dataset(datasetArn=dataset), "dataset")
    return group, dataset


def run_import(personalize, dataset: str, location: str, name: str, mode: str = "FULL") -> dict:
    arn = personalize.create_dataset_import_job(
        jobName=name,
        datasetArn=dataset,
        dataSource={"dataLocation": location},
        roleArn=ROLE,
        importMode=mode,
    )["datasetImportJobArn"]
    return wait_for_status(
        lambda: personalize.describe_dataset_import_job(datasetImportJobArn=arn), "datasetImportJob"
    )


def train(personalize, solution: str) -> str:
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    done = wait_for_status(
        lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion"
    )
    assert done["status"] == "ACTIVE", done.get("failureReason")
    return version


def test_bad_record_fails_the_job_naming_file_line_and_field(personalize, s3_client, s3_bucket):
    _, dataset = make_dataset(personalize, "imp-bad-record")
    rows = [["u1", "i1", 1_700_000_000, "click", ""], ["u2", "i2", 1_700_000_001, "click", ""]]
    rows.append(["u3", "i3", "yesterday", "click", ""])
    s3_client.put_object(Bucket=s3_bucket, Key="bad/interactions.csv", Body=to_csv(HEADER, rows))

    job = run_import(personalize, dataset, f"s3://{s3_bucket}/bad/interactions.csv", "imp-bad-record")

    assert job["status"] == "CREATE FAILED"
    assert job["failureReason"].startswith(f"s3://{s3_bucket}/bad/interactions.csv line 4: TIMESTAMP:")
    assert "'yesterday' is not an integer" in job["failureReason"]


def test_header_not_matching_the_schema_fails_on_line_1(personalize, s3_client, s3_bucket):
    _, dataset = make_dataset(personalize, "imp-bad-header")
    s3_client.put_object(
        Bucket=s3_bucket, Key="h.csv", Body=to_csv(["USER_ID", "ITEM", "TIMESTAMP"], [["u", "i", 1]])
    )

    job = run_import(personalize, dataset, f"s3://{s3_bucket}/h.csv", "imp-bad-header")

    assert job["status"] == "CREATE FAILED"
    assert f"s3://{s3_bucket}/h.csv line 1:" in job["failureReason"]
    assert "ITEM_ID" in job["failureReason"]


def test_missing_file_fails_naming_the_location(personalize, s3_bucket):
    _, dataset = make_dataset(personalize, "imp-missing")
    job = run_import(personalize, dataset, f"s3://{s3_bucket}/nothing-here.csv", "imp-missing")
    assert job["status"] == "CREATE FAILED"
    assert f"s3://{s3_bucket}/nothing-here.csv" in job["failureReason"]


def test_full_replaces_and_incremental_appends_interactions(personalize, runtime, s3_client, s3_bucket):
    group, dataset = make_dataset(personalize, "imp-modes")
    for prefix in ("a", "b", "c"):
        s3_client.put_object(
            Bucket=s3_bucket,
            Key=f"modes/{prefix}/part-00000.csv",
            Body=interactions_csv(items=20, item_prefix=f"{prefix}-"),
        )
    # a folder location imports every file under it
    assert run_import(personalize, dataset, f"s3://{s3_bucket}/modes/a/", "imp-modes-a")["status"] == "ACTIVE"
    assert (
        run_import(personalize, dataset, f"s3://{s3_bucket}/modes/b/", "imp-modes-b", "INCREMENTAL")["status"]
        == "ACTIVE"
    )
    solution = personalize.create_solution(name="imp-modes", datasetGroupArn=group, recipeArn=POPULARITY)[
        "solutionArn"
    ]
    wait_for_status(lambda: personalize.describe_solution(solutionArn=solution), "solution")
    version = train(personalize, solution)
    campaign = personalize.create_campaign(name="imp-modes", solutionVersionArn=version)["campaignArn"]
    wait_for_status(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    merged = runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=40)["itemList"]
    assert {i["itemId"][0] for i in merged} == {"a", "b"}

    assert (
        run_import(personalize, dataset, f"s3://{s3_bucket}/modes/c/", "imp-modes-c", "FULL")["status"]
        == "ACTIVE"
    )
    personalize.update_campaign(campaignArn=campaign, solutionVersionArn=train(personalize, solution))

    def update():
        return {
            "update": personalize.describe_campaign(campaignArn=campaign)["campaign"]["latestCampaignUpdate"]
        }

    wait_for_status(update, "update")
    replaced = runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=40)["itemList"]
    assert {i["itemId"][0] for i in replaced} == {"c"}


def test_incremental_items_replace_records_with_the_same_id(personalize, runtime, s3_client, s3_bucket):
    group, interactions = make_dataset(personalize, "imp-items")
    _, items = make_dataset(personalize, "imp-items", "ITEMS", group)
    s3_client.put_object(Bucket=s3_bucket, Key="i.csv", Body=interactions_csv())
    s3_client.put_object(Bucket=s3_bucket, Key="items.csv", Body=items_csv())
    s3_client.put_object(
        Bucket=s3_bucket,
        Key="items-update.csv",
        Body=to_csv(["ITEM_ID", "CATEGORY", "PRICE"], [["i0", "hats", "1"]]),
    )
    run_import(personalize, interactions, f"s3://{s3_bucket}/i.csv", "imp-items-i")
    run_import(personalize, items, f"s3://{s3_bucket}/items.csv", "imp-items-full")
    solution = personalize.create_solution(name="imp-items", datasetGroupArn=group, recipeArn=POPULARITY)[
        "solutionArn"
    ]
    wait_for_status(lambda: personalize.describe_solution(solutionArn=solution), "solution")
    campaign = personalize.create_campaign(name="imp-items", solutionVersionArn=train(personalize, solution))[
        "campaignArn"
    ]
    wait_for_status(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    flt = personalize.create_filter(
        name="imp-items", datasetGroupArn=group, filterExpression=CATEGORY_FILTER
    )["filterArn"]
    wait_for_status(lambda: personalize.describe_filter(filterArn=flt), "filter")

    def recommended(category: str) -> list[str]:
        answer = runtime.get_recommendations(
            campaignArn=campaign,
            userId="u1",
            numResults=60,
            filterArn=flt,
            filterValues={"CATEGORY": f'"{category}"'},
        )
        return [i["itemId"] for i in answer["itemList"]]

    assert "i0" in recommended("shoes")
    run_import(personalize, items, f"s3://{s3_bucket}/items-update.csv", "imp-items-update", "INCREMENTAL")

    assert "i0" not in recommended("shoes")
    assert "i0" in recommended("hats")
    assert "i3" in recommended("shoes")  # records with other IDs are kept


def test_unknown_import_mode_is_refused(personalize):
    _, dataset = make_dataset(personalize, "imp-mode-enum")
    with pytest.raises(personalize.exceptions.InvalidInputException, match="importMode"):
        personalize.create_dataset_import_job(
            jobName="imp-mode-enum",
            datasetArn=dataset,
            dataSource={"dataLocation": "s3://b/k.csv"},
            importMode="SOMETIMES",
        )
