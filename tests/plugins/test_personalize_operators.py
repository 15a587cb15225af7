"""Every operator against the local Personalize service and moto's S3, in both waiting modes.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

import json

import pytest
from personalize.hooks import (
    PersonalizeHook,
    PersonalizeResourceConflictError,
    PersonalizeResourceFailedError,
    PersonalizeResourceNotFoundError,
)
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeDeployCampaignOperator,
)

from tests.plugins.conftest import (
    FAST,
    INTERACTIONS_SCHEMA,
    RECIPE_ARN,
    ROLE_ARN,
    ensure_operator,
    interactions_csv,
    make_context,
    run_deferrable,
    unique_name,
)


def count(client, operation: str, result_key: str, **filters) -> int:
    return sum(len(page[result_key]) for page in client.get_paginator(operation).paginate(**filters))


# ---------------------------------------------------------------------------------- ensure resources


def test_ensure_resources_creates_everything_then_adopts_it(aws_default_connection, personalize_client):
    prefix = unique_name("ensure")
    operator = ensure_operator(prefix)
    context = make_context(operator)
    first = operator.execute(context)

    assert first["new_datasets"] == ["INTERACTIONS"]
    assert set(first["solution_arns"]) == {f"{prefix}-up"}
    assert set(first["filter_arns"]) == {f"{prefix}-clicked"}
    assert first["tracking_id"]
    group = personalize_client.describe_dataset_group(datasetGroupArn=first["dataset_group_arn"])
    assert group["datasetGroup"]["status"] == "ACTIVE"
    solution = personalize_client.describe_solution(solutionArn=first["solution_arns"][f"{prefix}-up"])
    assert solution["solution"]["status"] == "ACTIVE"
    # Automatic training bills every week; the operator must not switch it on by default.
    assert solution["solution"]["performAutoTraining"] is False
    for arn in first["filter_arns"].values():
        assert personalize_client.describe_filter(filterArn=arn)["filter"]["status"] == "ACTIVE"
    tracker = personalize_client.describe_event_tracker(eventTrackerArn=first["event_tracker_arn"])
    assert tracker["eventTracker"]["status"] == "ACTIVE"
    assert context["ti"].xcoms["personalize_dataset_group"]["dataset_group"] == first[
        "dataset_group_arn"
    ].replace("/", "$")

    # A cleared task runs again: same ARNs, nothing new created.
    rerun = ensure_operator(prefix)
    second = rerun.execute(make_context(rerun))
    assert second == {**first, "new_datasets": []}
    group_arn = first["dataset_group_arn"]
    assert count(personalize_client, "list_datasets", "datasets", datasetGroupArn=group_arn) == 1
    assert count(personalize_client, "list_solutions", "solutions", datasetGroupArn=group_arn) == 1
    assert count(personalize_client, "list_filters", "Filters", datasetGroupArn=group_arn) == 1
    assert count(personalize_client, "list_event_trackers", "eventTrackers", datasetGroupArn=group_arn) == 1
    groups = [
        g
        for page in personalize_client.get_paginator("list_dataset_groups").paginate()
        for g in page["datasetGroups"]
    ]
    assert [g["datasetGroupArn"] for g in groups if g["name"] == prefix] == [group_arn]


def test_ensure_resources_deferrable_waits_level_by_level_in_the_triggerer(aws_default_connection):
    prefix = unique_name("ensure-deferred")
    operator = ensure_operator(prefix, deferrable=True)
    run = run_deferrable(operator, make_context(operator))

    assert run.result["new_datasets"] == ["INTERACTIONS"]
    waited = [classpath.rsplit(".", 1)[1] for classpath, _, _ in run.deferrals]
    # The dataset group must be ACTIVE before datasets can be created in it, so it is waited for first.
    assert waited[0] == "PersonalizeDatasetGroupActiveTrigger"
    assert all(payload["status"] == "success" for _, _, payload in run.deferrals)
    # new_datasets survives the deferrals: the dataset was created before a later wait.
    rerun = ensure_operator(prefix, deferrable=True)
    assert run_deferrable(rerun, make_context(rerun)).result == {**run.result, "new_datasets": []}


def test_ensure_resources_rejects_a_changed_schema_naming_the_fields(aws_default_connection):
    prefix = unique_name("schema")
    operator = ensure_operator(prefix)
    operator.execute(make_context(operator))
    changed = json.loads(INTERACTIONS_SCHEMA)
    changed["fields"][2]["type"] = "int"
    changed["fields"].append({"name": "EVENT_VALUE", "type": ["null", "float"]})
    rerun = ensure_operator(
        prefix,
        spec={
            "datasets": {
                "INTERACTIONS": {
                    "dataset_name": f"{prefix}-interactions",
                    "schema_name": f"{prefix}-interactions",
                    "schema": json.dumps(changed),
                }
            }
        },
    )
    with pytest.raises(PersonalizeResourceConflictError) as raised:
        rerun.execute(make_context(rerun))
    message = str(raised.value)
    assert "field EVENT_VALUE added" in message
    assert "field TIMESTAMP type 'long' -> 'int'" in message


def test_ensure_resources_names_a_bad_spec_key():
    operator = ensure_operator("bad-spec", spec={"solutions": [{"name": "x", "recipe": RECIPE_ARN}]})
    with pytest.raises(ValueError, match=r"solutions\[0\] has unknown keys \['recipe'\]"):
        operator.execute(make_context(operator))


# ------------------------------------------------------------------------------- dataset import job


@pytest.fixture
def group(aws_default_connection, s3_client, s3_bucket):
    prefix = unique_name("import")
    operator = ensure_operator(prefix, spec={"solutions": [], "filters": [], "event_tracker_name": None})
    resources = operator.execute(make_context(operator))
    return {"prefix": prefix, "bucket": s3_bucket, "dataset_arn": resources["dataset_arns"]["INTERACTIONS"]}


def import_operator(group, key: str, **kwargs) -> PersonalizeCreateDatasetImportJobOperator:
    return PersonalizeCreateDatasetImportJobOperator(
        task_id="import",
        job_name=f"{group['prefix']}-{key.replace('.', '-').replace('/', '-')}",
        dataset_arn=group["dataset_arn"],
        data_location=f"s3://{group['bucket']}/{key}",
        role_arn=ROLE_ARN,
        **FAST,
        **kwargs,
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])
def test_import_job_imports_and_a_rerun_adopts_it(group, s3_client, personalize_client, deferrable):
    s3_client.put_object(Bucket=group["bucket"], Key="interactions.csv", Body=interactions_csv().encode())
    operator = import_operator(group, "interactions.csv", deferrable=deferrable)
    context = make_context(operator)
    if deferrable:
        run = run_deferrable(operator, context)
        job_arn = run.result
        assert [classpath.rsplit(".", 1)[1] for classpath, _, _ in run.deferrals] == [
            "PersonalizeDatasetImportJobTrigger"
        ]
    else:
        job_arn = operator.execute(context)
    job = personalize_client.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
    assert job["status"] == "ACTIVE"
    assert job["importMode"] == "INCREMENTAL"
    assert "personalize_dataset_group" in context["ti"].xcoms

    rerun = import_operator(group, "interactions.csv", deferrable=deferrable)
    assert rerun.execute(make_context(rerun)) == job_arn
    jobs = count(
        personalize_client, "list_dataset_import_jobs", "datasetImportJobs", datasetArn=group["dataset_arn"]
    )
    assert jobs == 1


def bad_csv() -> str:
    lines = interactions_csv().splitlines()
    user, item, _, event_type = lines[6].split(",")
    lines[6] = f"{user},{item},yesterday,{event_type}"  # line 7 of the file
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])
def test_a_bad_csv_fails_the_task_with_file_and_line(group, s3_client, deferrable):
    s3_client.put_object(Bucket=group["bucket"], Key="bad/interactions.csv", Body=bad_csv().encode())
    operator = import_operator(group, "bad/interactions.csv", deferrable=deferrable)
    with pytest.raises(PersonalizeResourceFailedError) as raised:
        if deferrable:
            run_deferrable(operator, make_context(operator))
        else:
            operator.execute(make_context(operator))
    message = str(raised.value)
    assert "CREATE FAILED" in message
    assert "interactions.csv" in message
    assert "line 7" in message

    # A cleared task finds the failed job under its name and reports the same reason, importing nothing.
    rerun = import_operator(group, "bad/interactions.csv")
    with pytest.raises(PersonalizeResourceFailedError, match="line 7"):
        rerun.execute(make_context(rerun))


def test_import_job_into_a_missing_dataset_names_it(aws_default_connection):
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset/nowhere/INTERACTIONS"
    operator = PersonalizeCreateDatasetImportJobOperator(
        task_id="import", job_name="orphan", dataset_arn=missing, data_location="s3://b/k.csv", **FAST
    )
    with pytest.raises(PersonalizeResourceNotFoundError, match="nowhere"):
        operator.execute(make_context(operator))


def test_import_without_waiting_returns_the_arn_at_once(group, s3_client, personalize_client):
    s3_client.put_object(Bucket=group["bucket"], Key="interactions.csv", Body=interactions_csv().encode())
    operator = import_operator(group, "interactions.csv", wait_for_completion=False)
    job_arn = operator.execute(make_context(operator))
    assert job_arn.startswith("arn:aws:personalize:")
    PersonalizeHook().wait_until_active(
        PersonalizeHook.describe.__globals__["DATASET_IMPORT_JOB"],
        job_arn,
        waiter_delay=1,
        waiter_max_attempts=300,
    )


# --------------------------------------------------------------------------------- solution version


@pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])
def test_solution_version_trains_and_a_rerun_adopts_it(trained, personalize_client, deferrable):
    solution_arn = next(iter(trained["resources"]["solution_arns"].values()))
    before = count(personalize_client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn)
    operator = PersonalizeCreateSolutionVersionOperator(
        task_id=f"retrain-{deferrable}",
        solution_arn=solution_arn,
        training_mode="UPDATE",
        deferrable=deferrable,
        **FAST,
    )
    context = make_context(operator)
    version_arn = run_deferrable(operator, context).result if deferrable else operator.execute(context)
    version = personalize_client.describe_solution_version(solutionVersionArn=version_arn)["solutionVersion"]
    assert version["status"] == "ACTIVE"
    assert version["trainingMode"] == "UPDATE"
    link = context["ti"].xcoms["personalize_solution_version"]
    assert link["solution_version"] == version_arn.replace("/", "$")

    rerun = PersonalizeCreateSolutionVersionOperator(
        task_id=f"retrain-{deferrable}",
        solution_arn=solution_arn,
        training_mode="UPDATE",
        deferrable=deferrable,
        **FAST,
    )
    assert rerun.execute(make_context(rerun)) == version_arn
    after = count(personalize_client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn)
    assert after == before + 1
    # Another DAG run is another version.
    other_run = PersonalizeCreateSolutionVersionOperator(
        task_id=f"retrain-{deferrable}",
        solution_arn=solution_arn,
        training_mode="UPDATE",
        wait_for_completion=False,
    )
    assert other_run.execute(make_context(other_run, run_id="manual__other")) != version_arn


def test_latest_active_solution_version(trained):
    hook = PersonalizeHook()
    solution_arn = next(iter(trained["resources"]["solution_arns"].values()))
    latest = hook.get_latest_active_solution_version(solution_arn)
    assert latest is not None
    assert (
        hook.conn.describe_solution_version(solutionVersionArn=latest)["solutionVersion"]["status"]
        == "ACTIVE"
    )
    untrained, _ = hook.get_or_create_solution(
        name=f"{trained['prefix']}-untrained",
        dataset_group_arn=trained["resources"]["dataset_group_arn"],
        recipe_arn=RECIPE_ARN,
    )
    assert hook.get_latest_active_solution_version(untrained) is None
    with pytest.raises(PersonalizeResourceNotFoundError, match="no-such"):
        hook.get_latest_active_solution_version(solution_arn.replace(trained["prefix"], "no-such"))


# --------------------------------------------------------------------------------------- campaign


def deploy(name: str, version_arn: str, **kwargs) -> str:
    operator = PersonalizeDeployCampaignOperator(
        task_id="deploy", campaign_name=name, solution_version_arn=version_arn, **FAST, **kwargs
    )
    if kwargs.get("deferrable"):
        return run_deferrable(operator, make_context(operator)).result
    return operator.execute(make_context(operator))


@pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])
def test_deploy_campaign_creates_updates_and_is_a_no_op_when_serving(trained, personalize_client, deferrable):
    hook = PersonalizeHook()
    name = unique_name("campaign")
    first_version = trained["version_arn"]
    assert hook.get_serving_solution_version(name) is None

    campaign_arn = deploy(name, first_version, deferrable=deferrable)
    assert hook.get_serving_solution_version(name) == first_version
    assert hook.get_serving_solution_version(campaign_arn) == first_version

    trainer = PersonalizeCreateSolutionVersionOperator(
        task_id=f"challenger-{deferrable}",
        solution_arn=next(iter(trained["resources"]["solution_arns"].values())),
        **FAST,
    )
    second_version = trainer.execute(make_context(trainer, run_id=unique_name("manual")))
    assert deploy(name, second_version, deferrable=deferrable, min_provisioned_tps=2) == campaign_arn
    campaign = personalize_client.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert campaign["solutionVersionArn"] == second_version
    assert campaign["minProvisionedTPS"] == 2
    assert campaign["latestCampaignUpdate"]["status"] == "ACTIVE"
    assert hook.get_serving_solution_version(name) == second_version

    # A rerun finds the campaign already serving the version and asks Personalize for nothing.
    update_time = campaign["latestCampaignUpdate"]["creationDateTime"]
    assert deploy(name, second_version, deferrable=deferrable, min_provisioned_tps=2) == campaign_arn
    again = personalize_client.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert again["latestCampaignUpdate"]["creationDateTime"] == update_time
    campaigns = [
        c for page in personalize_client.get_paginator("list_campaigns").paginate() for c in page["campaigns"]
    ]
    assert [c["campaignArn"] for c in campaigns if c["name"] == name] == [campaign_arn]


# ---------------------------------------------------------------------------- batch inference job


@pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])
def test_batch_inference_job_writes_output_and_a_rerun_adopts_it(
    trained, s3_endpoint, personalize_client, deferrable
):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = trained["bucket"]
    users = "".join(json.dumps({"userId": f"u{n}"}) + "\n" for n in range(5))
    s3.put_object(Bucket=bucket, Key="batch/input.json", Body=users.encode())
    job_name = unique_name("batch")

    def operator():
        return PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch",
            job_name=job_name,
            solution_version_arn=trained["version_arn"],
            input_path=f"s3://{bucket}/batch/input.json",
            output_path=f"s3://{bucket}/batch/{job_name}/",
            role_arn=ROLE_ARN,
            num_results=3,
            deferrable=deferrable,
            **FAST,
        )

    first = operator()
    job_arn = (
        run_deferrable(first, make_context(first)).result
        if deferrable
        else first.execute(make_context(first))
    )
    job = personalize_client.describe_batch_inference_job(batchInferenceJobArn=job_arn)["batchInferenceJob"]
    assert job["status"] == "ACTIVE"
    outputs = s3.list_objects_v2(Bucket=bucket, Prefix=f"batch/{job_name}/").get("Contents", [])
    assert outputs, "the batch inference job wrote nothing"

    rerun = operator()
    assert rerun.execute(make_context(rerun)) == job_arn
    jobs = [
        j
        for page in personalize_client.get_paginator("list_batch_inference_jobs").paginate(
            solutionVersionArn=trained["version_arn"]
        )
        for j in page["batchInferenceJobs"]
        if j["jobName"] == job_name
    ]
    assert len(jobs) == 1


def test_batch_inference_job_needs_a_role(trained):
    operator = PersonalizeCreateBatchInferenceJobOperator(
        task_id="batch",
        job_name="no-role",
        solution_version_arn=trained["version_arn"],
        input_path="s3://b/in.json",
        output_path="s3://b/out/",
    )
    with pytest.raises(ValueError, match="role_arn"):
        operator.execute(make_context(operator))
