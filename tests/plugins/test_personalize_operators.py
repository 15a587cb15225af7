"""Every operator against the local Personalize service and moto's S3, in both waiting modes.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

import json
import time

import pytest
from personalize.hooks import (
    DATASET_IMPORT_JOB,
    RESOURCE_KINDS,
    SOLUTION_VERSION,
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
    run_scoped_name,
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


def test_ensure_resources_deferrable_waits_level_by_level_in_the_triggerer(slow_personalize):
    # On the slow service every new resource stays pending for seconds, so each level is waited for.
    prefix = unique_name("ensure-deferred")
    conn = {"aws_conn_id": slow_personalize["conn_id"]}
    operator = ensure_operator(prefix, deferrable=True, **conn)
    run = run_deferrable(operator, make_context(operator))

    waited = [classpath.rsplit(".", 1)[1] for classpath, _, _ in run.deferrals]
    # Datasets can only be created in an ACTIVE group, solutions only over ACTIVE datasets.
    assert waited[:3] == [
        "PersonalizeDatasetGroupActiveTrigger",
        "PersonalizeDatasetActiveTrigger",
        "PersonalizeSolutionActiveTrigger",
    ]
    assert set(waited[3:]) <= {"PersonalizeFilterActiveTrigger", "PersonalizeEventTrackerActiveTrigger"}
    assert all(payload["status"] == "success" for _, _, payload in run.deferrals)
    # The dataset was created before the second wait; the event carried that through to the result.
    assert run.result["new_datasets"] == ["INTERACTIONS"]
    hook = PersonalizeHook(**conn)
    for arn in [*run.result["solution_arns"].values(), *run.result["filter_arns"].values()]:
        assert hook.status(RESOURCE_KINDS["solution" if ":solution/" in arn else "filter"], arn) == "ACTIVE"

    rerun = ensure_operator(prefix, deferrable=True, **conn)
    again = run_deferrable(rerun, make_context(rerun))
    assert again.deferrals == []
    assert again.result == {**run.result, "new_datasets": []}


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

MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])


def trigger_names(run) -> list[str]:
    return [classpath.rsplit(".", 1)[1] for classpath, _, _ in run.deferrals]


@pytest.fixture
def group(world, s3_endpoint):
    """A fresh dataset (on the service the mode uses) and a bucket for its files."""
    import boto3

    prefix = unique_name("import")
    operator = ensure_operator(
        prefix,
        spec={"solutions": [], "filters": [], "event_tracker_name": None},
        aws_conn_id=world["conn_id"],
    )
    resources = operator.execute(make_context(operator))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)
    return {
        "prefix": prefix,
        "bucket": prefix,
        "s3": s3,
        "conn_id": world["conn_id"],
        "hook": world["hook"],
        "dataset_arn": resources["dataset_arns"]["INTERACTIONS"],
    }


def import_operator(group, key: str, **kwargs) -> PersonalizeCreateDatasetImportJobOperator:
    return PersonalizeCreateDatasetImportJobOperator(
        task_id="import",
        job_name=f"{group['prefix']}-{key.replace('.', '-').replace('/', '-')}",
        dataset_arn=group["dataset_arn"],
        data_location=f"s3://{group['bucket']}/{key}",
        role_arn=ROLE_ARN,
        aws_conn_id=group["conn_id"],
        **FAST,
        **kwargs,
    )


def run_operator(operator, deferrable: bool, context=None):
    """Run in the mode asked; a deferrable run must really defer, then finish from the event."""
    context = context or make_context(operator)
    if not deferrable:
        return operator.execute(context), []
    run = run_deferrable(operator, context)
    assert run.deferrals, "the deferrable task never deferred"
    return run.result, trigger_names(run)


@MODES
def test_import_job_imports_and_a_rerun_adopts_it(group, deferrable):
    group["s3"].put_object(Bucket=group["bucket"], Key="interactions.csv", Body=interactions_csv().encode())
    operator = import_operator(group, "interactions.csv", deferrable=deferrable)
    context = make_context(operator)
    job_arn, triggers = run_operator(operator, deferrable, context)
    assert set(triggers) <= {"PersonalizeDatasetImportJobTrigger"}
    client = group["hook"].conn
    job = client.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
    assert job["status"] == "ACTIVE"
    assert job["importMode"] == "INCREMENTAL"
    assert "personalize_dataset_group" in context["ti"].xcoms

    rerun = import_operator(group, "interactions.csv", deferrable=deferrable)
    assert rerun.execute(make_context(rerun)) == job_arn
    jobs = count(client, "list_dataset_import_jobs", "datasetImportJobs", datasetArn=group["dataset_arn"])
    assert jobs == 1


def bad_csv() -> str:
    lines = interactions_csv().splitlines()
    user, item, _, event_type = lines[6].split(",")
    lines[6] = f"{user},{item},yesterday,{event_type}"  # line 7 of the file
    return "\n".join(lines) + "\n"


def job_names(client, dataset_arn: str) -> dict[str, str]:
    """{jobName: status} of the dataset's import jobs."""
    return {
        job["jobName"]: job["status"]
        for page in client.get_paginator("list_dataset_import_jobs").paginate(datasetArn=dataset_arn)
        for job in page["datasetImportJobs"]
    }


@MODES
def test_a_bad_csv_fails_the_task_and_a_rerun_after_the_fix_imports_under_the_next_attempt_name(
    group, deferrable
):
    key = "bad/interactions.csv"
    group["s3"].put_object(Bucket=group["bucket"], Key=key, Body=bad_csv().encode())
    operator = import_operator(group, key, deferrable=deferrable)
    name = operator.job_name
    with pytest.raises(PersonalizeResourceFailedError) as raised:
        run_operator(operator, deferrable)
    message = str(raised.value)
    assert "CREATE FAILED" in message
    assert "interactions.csv" in message
    assert "line 7" in message
    client = group["hook"].conn
    assert job_names(client, group["dataset_arn"]) == {name: "CREATE FAILED"}

    # The upstream extract is rerun and writes a good file; the cleared task imports it once.
    group["s3"].put_object(Bucket=group["bucket"], Key=key, Body=interactions_csv().encode())
    rerun = import_operator(group, key, deferrable=deferrable)
    if deferrable:
        run = run_deferrable(rerun, make_context(rerun))
        job_arn = run.result
        # The trigger waited on the new attempt; the task resumed from its event and returned that.
        assert run.deferrals
        assert {kwargs["arn"] for _, kwargs, _ in run.deferrals} == {job_arn}
    else:
        job_arn = rerun.execute(make_context(rerun))
    job = client.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
    assert job["jobName"] == f"{name}-a2"
    assert job["status"] == "ACTIVE"
    assert job_names(client, group["dataset_arn"]) == {name: "CREATE FAILED", f"{name}-a2": "ACTIVE"}

    # Cleared again after success: the ACTIVE attempt is adopted and nothing new is imported.
    again = import_operator(group, key, deferrable=deferrable)
    assert again.execute(make_context(again)) == job_arn
    assert job_names(client, group["dataset_arn"]) == {name: "CREATE FAILED", f"{name}-a2": "ACTIVE"}


def test_import_attempts_run_out_naming_every_attempt_and_the_last_reason(
    aws_default_connection, s3_endpoint
):
    import boto3

    prefix = unique_name("attempts")
    ensure = ensure_operator(prefix, spec={"solutions": [], "filters": [], "event_tracker_name": None})
    dataset_arn = ensure.execute(make_context(ensure))["dataset_arns"]["INTERACTIONS"]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)
    s3.put_object(Bucket=prefix, Key="bad.csv", Body=bad_csv().encode())
    group = {"prefix": prefix, "bucket": prefix, "conn_id": "aws_default", "dataset_arn": dataset_arn}

    def attempt():
        operator = import_operator(group, "bad.csv")
        operator.MAX_ATTEMPTS = 2
        return operator, make_context(operator)

    for _ in range(2):  # the first try, then Airflow's retry: each imports the still-bad file once
        operator, context = attempt()
        with pytest.raises(PersonalizeResourceFailedError, match="line 7"):
            operator.execute(context)
    operator, context = attempt()
    with pytest.raises(PersonalizeResourceFailedError) as raised:
        operator.execute(context)
    name = operator.job_name
    assert f"({name}, {name}-a2)" in str(raised.value)
    assert "line 7" in str(raised.value)
    client = PersonalizeHook().conn
    assert job_names(client, dataset_arn) == {name: "CREATE FAILED", f"{name}-a2": "CREATE FAILED"}


def test_import_job_into_a_missing_dataset_names_it(aws_default_connection):
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset/nowhere/INTERACTIONS"
    operator = PersonalizeCreateDatasetImportJobOperator(
        task_id="import", job_name="orphan", dataset_arn=missing, data_location="s3://b/k.csv", **FAST
    )
    with pytest.raises(PersonalizeResourceNotFoundError, match="nowhere"):
        operator.execute(make_context(operator))


def test_import_without_waiting_returns_while_the_job_runs(slow_personalize):
    world = {"conn_id": slow_personalize["conn_id"], "hook": PersonalizeHook(aws_conn_id="aws_slow")}
    prefix = unique_name("nowait")
    ensure = ensure_operator(
        prefix,
        spec={"solutions": [], "filters": [], "event_tracker_name": None},
        aws_conn_id=world["conn_id"],
    )
    dataset_arn = ensure.execute(make_context(ensure))["dataset_arns"]["INTERACTIONS"]
    operator = PersonalizeCreateDatasetImportJobOperator(
        task_id="import",
        job_name=f"{prefix}-job",
        dataset_arn=dataset_arn,
        data_location=f"s3://{prefix}/none.csv",
        aws_conn_id=world["conn_id"],
        wait_for_completion=False,
    )
    # The service holds the job until the operator has returned: "returns while the job runs" must not
    # depend on how fast this machine is (the job fails at once: there is no file to import).
    with slow_personalize["server"].backend.worker.held():
        job_arn = operator.execute(make_context(operator))
        assert world["hook"].status(DATASET_IMPORT_JOB, job_arn) == "CREATE PENDING"
    deadline = time.monotonic() + 120
    while (status := world["hook"].status(DATASET_IMPORT_JOB, job_arn)) != "CREATE FAILED":
        assert time.monotonic() < deadline, f"the import job is still {status}"
        time.sleep(0.05)


# --------------------------------------------------------------------------------- solution version


@MODES
def test_solution_version_trains_and_a_rerun_adopts_it(world, deferrable):
    client = world["hook"].conn
    solution_arn = world["solution_arn"]
    before = count(client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn)

    def operator(**kwargs):
        return PersonalizeCreateSolutionVersionOperator(
            task_id="retrain",
            solution_arn=solution_arn,
            training_mode="UPDATE",
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
            **kwargs,
        )

    first = operator()
    context = make_context(first)
    version_arn, triggers = run_operator(first, deferrable, context)
    assert set(triggers) <= {"PersonalizeSolutionVersionTrigger"}
    version = client.describe_solution_version(solutionVersionArn=version_arn)["solutionVersion"]
    assert version["status"] == "ACTIVE"
    assert version["trainingMode"] == "UPDATE"
    link = context["ti"].xcoms["personalize_solution_version"]
    assert link["solution_version"] == version_arn.replace("/", "$")

    rerun = operator()
    assert rerun.execute(make_context(rerun)) == version_arn
    assert count(client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn) == before + 1
    # Another DAG run is another version.
    other_run = operator(wait_for_completion=False)
    other_run.deferrable = False
    assert other_run.execute(make_context(other_run, run_id=unique_name("manual"))) != version_arn


def test_training_that_failed_for_too_little_data_trains_under_the_next_attempt_name_once_data_is_added(
    aws_default_connection, s3_endpoint
):
    import boto3

    prefix = unique_name("retrain")
    ensure = ensure_operator(prefix, spec={"filters": [], "event_tracker_name": None})
    resources = ensure.execute(make_context(ensure))
    solution_arn = resources["solution_arns"][f"{prefix}-up"]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=prefix)

    def load(key: str, csv_text: str) -> None:
        s3.put_object(Bucket=prefix, Key=key, Body=csv_text.encode())
        importer = PersonalizeCreateDatasetImportJobOperator(
            task_id="import",
            job_name=f"{prefix}-{key.removesuffix('.csv')}",
            dataset_arn=resources["dataset_arns"]["INTERACTIONS"],
            data_location=f"s3://{prefix}/{key}",
            role_arn=ROLE_ARN,
            **FAST,
        )
        importer.execute(make_context(importer))

    def trainer() -> PersonalizeCreateSolutionVersionOperator:
        return PersonalizeCreateSolutionVersionOperator(task_id="train", solution_arn=solution_arn, **FAST)

    def versions() -> dict[str, str]:
        client = PersonalizeHook().conn
        summaries = [
            summary
            for page in client.get_paginator("list_solution_versions").paginate(solutionArn=solution_arn)
            for summary in page["solutionVersions"]
        ]
        return {
            client.describe_solution_version(solutionVersionArn=summary["solutionVersionArn"])[
                "solutionVersion"
            ]["name"]: summary["status"]
            for summary in summaries
        }

    load("few.csv", interactions_csv(users=5, events_per_user=4))
    first = trainer()
    context = make_context(first)
    with pytest.raises(PersonalizeResourceFailedError, match="Insufficient data"):
        first.execute(context)
    name = run_scoped_name(context, "train")
    assert versions() == {name: "CREATE FAILED"}

    load("more.csv", interactions_csv())
    retry = trainer()
    retry_context = make_context(retry)
    version_arn = retry.execute(retry_context)
    version = PersonalizeHook().conn.describe_solution_version(solutionVersionArn=version_arn)[
        "solutionVersion"
    ]
    assert version["name"] == run_scoped_name(context, "train", attempt=2)
    assert version["status"] == "ACTIVE"
    assert retry_context["ti"].xcoms["personalize_solution_version"][
        "solution_version"
    ] == version_arn.replace("/", "$")

    cleared = trainer()
    assert cleared.execute(make_context(cleared)) == version_arn
    assert versions() == {name: "CREATE FAILED", version["name"]: "ACTIVE"}


def test_latest_active_solution_version(trained):
    hook = PersonalizeHook()
    solution_arn = trained["solution_arn"]
    latest = hook.get_latest_active_solution_version(solution_arn)
    assert latest is not None
    assert hook.status(SOLUTION_VERSION, latest) == "ACTIVE"
    untrained, _ = hook.get_or_create_solution(
        name=f"{trained['prefix']}-untrained",
        dataset_group_arn=trained["resources"]["dataset_group_arn"],
        recipe_arn=RECIPE_ARN,
    )
    assert hook.get_latest_active_solution_version(untrained) is None
    with pytest.raises(PersonalizeResourceNotFoundError, match="no-such"):
        hook.get_latest_active_solution_version(solution_arn.replace(trained["prefix"], "no-such"))


# --------------------------------------------------------------------------------------- campaign


@MODES
def test_deploy_campaign_creates_updates_and_is_a_no_op_when_serving(world, deferrable):
    hook = world["hook"]
    client = hook.conn
    name = unique_name("campaign")

    def deploy(version_arn: str, **kwargs):
        operator = PersonalizeDeployCampaignOperator(
            task_id="deploy",
            campaign_name=name,
            solution_version_arn=version_arn,
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
            **kwargs,
        )
        return run_operator(operator, deferrable)

    first_version = world["version_arn"]
    assert hook.get_serving_solution_version(name) is None
    campaign_arn, triggers = deploy(first_version)
    assert set(triggers) <= {"PersonalizeCampaignTrigger"}
    assert hook.get_serving_solution_version(name) == first_version
    assert hook.get_serving_solution_version(campaign_arn) == first_version

    trainer = PersonalizeCreateSolutionVersionOperator(
        task_id="challenger", solution_arn=world["solution_arn"], aws_conn_id=world["conn_id"], **FAST
    )
    second_version = trainer.execute(make_context(trainer, run_id=unique_name("manual")))
    assert deploy(second_version, min_provisioned_tps=2)[0] == campaign_arn
    campaign = client.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert campaign["solutionVersionArn"] == second_version
    assert campaign["minProvisionedTPS"] == 2
    assert campaign["latestCampaignUpdate"]["status"] == "ACTIVE"
    assert hook.get_serving_solution_version(name) == second_version

    # A rerun finds the campaign already serving the version and asks Personalize for nothing.
    update_time = campaign["latestCampaignUpdate"]["creationDateTime"]
    rerun = PersonalizeDeployCampaignOperator(
        task_id="deploy",
        campaign_name=name,
        solution_version_arn=second_version,
        min_provisioned_tps=2,
        aws_conn_id=world["conn_id"],
        deferrable=deferrable,
    )
    assert rerun.execute(make_context(rerun)) == campaign_arn
    again = client.describe_campaign(campaignArn=campaign_arn)["campaign"]
    assert again["latestCampaignUpdate"]["creationDateTime"] == update_time
    campaigns = [c for page in client.get_paginator("list_campaigns").paginate() for c in page["campaigns"]]
    assert [c["campaignArn"] for c in campaigns if c["name"] == name] == [campaign_arn]


# ---------------------------------------------------------------------------- batch inference job


@MODES
def test_batch_inference_job_writes_output_and_a_rerun_adopts_it(world, s3_endpoint, deferrable):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = world["bucket"]
    users = "".join(json.dumps({"userId": f"u{n}"}) + "\n" for n in range(5))
    s3.put_object(Bucket=bucket, Key="batch/input.json", Body=users.encode())
    job_name = unique_name("batch")

    def operator():
        return PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch",
            job_name=job_name,
            solution_version_arn=world["version_arn"],
            input_path=f"s3://{bucket}/batch/input.json",
            output_path=f"s3://{bucket}/batch/{job_name}/",
            role_arn=ROLE_ARN,
            num_results=3,
            aws_conn_id=world["conn_id"],
            deferrable=deferrable,
            **FAST,
        )

    first = operator()
    job_arn, triggers = run_operator(first, deferrable)
    assert set(triggers) <= {"PersonalizeBatchInferenceJobTrigger"}
    client = world["hook"].conn
    job = client.describe_batch_inference_job(batchInferenceJobArn=job_arn)["batchInferenceJob"]
    assert job["status"] == "ACTIVE"
    outputs = s3.list_objects_v2(Bucket=bucket, Prefix=f"batch/{job_name}/").get("Contents", [])
    assert outputs, "the batch inference job wrote nothing"

    rerun = operator()
    assert rerun.execute(make_context(rerun)) == job_arn
    jobs = [
        job
        for page in client.get_paginator("list_batch_inference_jobs").paginate(
            solutionVersionArn=world["version_arn"]
        )
        for job in page["batchInferenceJobs"]
        if job["jobName"] == job_name
    ]
    assert len(jobs) == 1


def test_a_batch_inference_job_that_failed_on_missing_input_runs_again_under_the_next_attempt_name(
    trained, s3_endpoint
):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = trained["bucket"]
    job_name = unique_name("batch-retry")
    input_key = f"batch/{job_name}/input.json"

    def operator():
        return PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch",
            job_name=job_name,
            solution_version_arn=trained["version_arn"],
            input_path=f"s3://{bucket}/{input_key}",
            output_path=f"s3://{bucket}/batch/{job_name}/out/",
            role_arn=ROLE_ARN,
            num_results=3,
            **FAST,
        )

    def jobs() -> dict[str, str]:
        client = trained["hook"].conn
        return {
            job["jobName"]: job["status"]
            for page in client.get_paginator("list_batch_inference_jobs").paginate(
                solutionVersionArn=trained["version_arn"]
            )
            for job in page["batchInferenceJobs"]
            if job["jobName"].startswith(job_name)
        }

    first = operator()
    with pytest.raises(PersonalizeResourceFailedError, match="CREATE FAILED"):
        first.execute(make_context(first))
    assert jobs() == {job_name: "CREATE FAILED"}

    s3.put_object(Bucket=bucket, Key=input_key, Body=b'{"userId": "u1"}\n{"userId": "u2"}\n')
    retry = operator()
    job_arn = retry.execute(make_context(retry))
    assert job_arn.endswith(f"/{job_name}-a2")
    assert jobs() == {job_name: "CREATE FAILED", f"{job_name}-a2": "ACTIVE"}
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"batch/{job_name}/out/").get("Contents")

    cleared = operator()
    assert cleared.execute(make_context(cleared)) == job_arn
    assert jobs() == {job_name: "CREATE FAILED", f"{job_name}-a2": "ACTIVE"}


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


def test_a_concurrent_create_is_adopted_not_failed(aws_default_connection, personalize_client):
    hook = PersonalizeHook()
    name = unique_name("race")
    # Another writer creates the group between our lookup and our create.
    theirs = personalize_client.create_dataset_group(name=name)["datasetGroupArn"]
    arn, created = hook.create_or_adopt(
        "dataset group",
        name,
        lambda: hook.conn.create_dataset_group(name=name)["datasetGroupArn"],
        lambda: hook.find_dataset_group(name),
    )
    assert (arn, created) == (theirs, False)
