"""(a) Unpausing ingest runs its scheduled intervals; the asset it publishes starts train_deploy, which deploys."""

from __future__ import annotations

import pytest

from tests.stack.conftest import RUN_DEADLINE, SCHEDULED_DAYS

pytestmark = pytest.mark.stack


def test_scheduled_ingest_runs_trigger_training_through_the_asset_and_deploy(stack):
    ingest, train = stack.dag_ids()["ingest"], stack.dag_ids()["train_deploy"]
    stack.unpause(train)  # waits for the asset
    stack.unpause(ingest)

    def scheduled_runs_done():
        runs = stack.dag_runs(ingest, run_type="scheduled")
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return runs if len(done) >= SCHEDULED_DAYS else None

    runs = stack.wait_for(scheduled_runs_done, RUN_DEADLINE, f"{SCHEDULED_DAYS} scheduled {ingest} runs")
    assert [r["state"] for r in runs] == ["success"] * SCHEDULED_DAYS, runs
    published = [stack.task_instances(ingest, r["dag_run_id"])["publish_interactions"]["state"] for r in runs]
    assert published == ["success"] * SCHEDULED_DAYS, "every day had over 1000 events to import"

    group = stack.config.solutions[0].name  # its task group in train_deploy

    def deployed_run():
        for run in stack.dag_runs(train, run_type="asset_triggered"):
            if run["state"] in ("success", "failed"):
                tis = stack.task_instances(train, run["dag_run_id"])
                if tis[f"{group}.train"]["state"] != "skipped":  # the run that reached the present trains
                    return run, tis
        return None

    run, tis = stack.wait_for(deployed_run, RUN_DEADLINE, f"an asset-triggered {train} run that trains")
    assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
    decision = stack.xcom(train, run["dag_run_id"], f"{group}.evaluate", "decision")
    assert tis[f"{group}.deploy_campaign"]["state"] == "success", decision
    assert tis[f"{group}.smoke_test"]["state"] == "success"
    personalize = stack.personalize_client()
    (campaign,) = [
        c
        for c in personalize.list_campaigns()["campaigns"]
        if c["name"] == stack.config.solutions[0].campaign.name
    ]
    campaign = personalize.describe_campaign(campaignArn=campaign["campaignArn"])["campaign"]
    assert campaign["status"] == "ACTIVE"
