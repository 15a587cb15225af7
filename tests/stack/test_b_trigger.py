"""(b) train_deploy triggered through the REST API with exactly the form's defaults; bad params."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack


def form_defaults(stack, dag_id: str) -> dict:
    """What the trigger form shows before anyone types: each param's default from the DAG details."""
    details = stack.api("GET", f"dags/{dag_id}/details").json()
    return {name: spec["value"] for name, spec in details["params"].items()}


def test_the_form_defaults_trigger_a_successful_run(stack):
    train = stack.dag_ids()["train_deploy"]
    defaults = form_defaults(stack, train)
    assert defaults["force_reason"] is None and defaults["gate_metric"] == stack.config.gate.metric
    stack.unpause(train)
    run = stack.trigger(train, defaults).json()
    finished = stack.wait_run(train, run["dag_run_id"])
    tis = stack.task_instances(train, run["dag_run_id"])
    assert finished["state"] == "success", {k: v["state"] for k, v in tis.items()}
    assert tis["check_params"]["state"] == "success"


def test_a_value_outside_the_schema_is_refused_at_trigger_time(stack):
    train = stack.dag_ids()["train_deploy"]
    response = stack.trigger(train, {"training_mode": "BOGUS"}, expect=400)
    assert "BOGUS" in response.text and "training_mode" in response.text


@pytest.mark.parametrize(
    ("conf", "named"),
    [
        ({"force_deploy": True}, "force_deploy needs force_reason"),
        ({"trainig_mode": "FULL"}, "['trainig_mode'] are not params"),
    ],
    ids=["force-without-reason", "misspelt-key"],
)
def test_a_conf_the_schema_cannot_judge_fails_the_first_task_without_retry(stack, conf, named):
    train = stack.dag_ids()["train_deploy"]
    stack.unpause(train)
    run = stack.trigger(train, conf).json()
    finished = stack.wait_run(train, run["dag_run_id"])
    assert finished["state"] == "failed"
    check = stack.task_instances(train, run["dag_run_id"])["check_params"]
    assert check["state"] == "failed" and check["try_number"] == 1, check
    tries = stack.api(
        "GET", f"dags/{train}/dagRuns/{run['dag_run_id']}/taskInstances/check_params/tries"
    ).json()
    assert [t["state"] for t in tries["task_instances"]] == ["failed"], "a bad conf must not be retried"
    log = stack.api(
        "GET",
        f"dags/{train}/dagRuns/{run['dag_run_id']}/taskInstances/check_params/logs/1",
        params={"full_content": True},
        headers={"Accept": "application/json"},
    ).text
    assert named in log
