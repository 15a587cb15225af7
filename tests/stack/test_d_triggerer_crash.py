"""(d) kill -9 the triggerer while a task is deferred, start it again: the run completes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack


def test_a_deferred_training_survives_a_triggerer_crash(stack):
    train = stack.dag_ids()["train_deploy"]
    stack.unpause(train)
    run = stack.trigger(train, {"force_deploy": True, "force_reason": "stack tier: triggerer crash"}).json()
    run_id = run["dag_run_id"]

    def deferred_task():
        states = {name: ti["state"] for name, ti in stack.task_instances(train, run_id).items()}
        return next((name for name, state in states.items() if state == "deferred"), None)

    task = stack.wait_for(deferred_task, 600, f"a deferred task in {run_id}", interval=0.5)
    stack.stack.kill("triggerer")
    stack.stack.start("triggerer")

    finished = stack.wait_run(train, run_id)
    tis = stack.task_instances(train, run_id)
    assert finished["state"] == "success", {k: v["state"] for k, v in tis.items()}
    assert tis[task]["state"] == "success"
    group = stack.config.solutions[0].name
    assert tis[f"{group}.deploy_campaign"]["state"] == "success", "force_deploy deploys what it trained"
