"""PersonalizeCreateSolutionVersionOperator (training) against the local Personalize service, in both
waiting modes.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

import pytest
from personalize.hooks import (
    PersonalizeHook,
    PersonalizeResourceFailedError,
    PersonalizeResourceNotFoundError,
)
from personalize.kinds import SOLUTION_VERSION
from personalize.operators import (
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    run_scoped_name,
)

from tests.plugins.conftest import (
    FAST,
    RECIPE_ARN,
    ROLE_ARN,
    ensure_operator,
    interactions_csv,
    make_context,
    unique_name,
)
from tests.plugins.operator_runs import MODES, count, run_operator


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
