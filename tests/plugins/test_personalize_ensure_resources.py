"""PersonalizeEnsureResourcesOperator (and the hook's create-or-adopt) against the local Personalize service.

Each test also reruns its operator as a cleared task would (same names, same run) and checks
that Personalize holds no second job, version or campaign update afterwards.
"""

from __future__ import annotations

import json

import pytest
from personalize.hooks import (
    PersonalizeHook,
    PersonalizeResourceConflictError,
)
from personalize.kinds import RESOURCE_KINDS

from tests.plugins.conftest import (
    INTERACTIONS_SCHEMA,
    RECIPE_ARN,
    ensure_operator,
    make_context,
    run_deferrable,
    unique_name,
)
from tests.plugins.operator_runs import count


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
