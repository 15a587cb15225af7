"""(h) CeleryExecutor: a stack of its own with Redis and two Celery workers (include/stack_celery.py).

A 10-day manual ingest maps one extraction task per day; the tasks spread over both workers (each
task instance's hostname names the worker that ran it), every hand-off going through S3 and XCom,
since no worker can read another's disk; the asset it publishes triggers train_deploy, which deploys.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from datetime import date, timedelta

import pytest
import yaml

from include.stack import Stack
from include.stack_celery import worker_names
from include.stack_processes import free_port
from include.stack_setup import Shop, StackSettings
from tests.stack.conftest import (
    ARTIFACTS,
    RUN_DEADLINE,
    TERMINAL_RUN_STATES,
    TIER,
    PostgresDatabase,
    StackClient,
    tier_config,
)

pytestmark = pytest.mark.stack

DAYS = 10


@pytest.fixture(scope="module")
def celery_stack():
    started = time.monotonic()
    root = ARTIFACTS / "celery-stack"
    shutil.rmtree(root, ignore_errors=True)
    config_dir = tier_config(root / "config")
    for path in config_dir.glob("*.yaml"):  # no scheduled catch-up here: only the manual run
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["schedule"]["catchup"] = False
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    database = PostgresDatabase("pp_celery")
    database.create()
    settings = StackSettings(
        api_port=free_port(),
        db_url=database.url,
        config_dir=str(config_dir),
        personalize_delay=0.5,
        parallelism=8,
        executor="celery",
        celery_workers=2,
        worker_concurrency=2,
        shop=Shop(users=1500, items=300, days=DAYS + 2, seed=7),
    )
    running = Stack(root / "state", settings)
    try:
        running.up()
        yield StackClient(running)
    finally:
        running.down()
        TIER["celery stack wall time (start to stop)"] = f"{time.monotonic() - started:.0f} s"
        database.drop()


def test_a_ten_day_manual_ingest_spreads_over_both_workers_and_deploys(celery_stack):
    stack = celery_stack
    ingest, train = stack.dag_ids()["ingest"], stack.dag_ids()["train_deploy"]
    first, _ = stack.stack.data_days()
    start = date.fromisoformat(first)
    stack.unpause(train)  # waits for the asset
    # Unpausing makes a run for train_deploy's latest cron tick, before any data: let it end first,
    # so the asset-triggered run is the one that sees the ingest's days.
    with contextlib.suppress(AssertionError):
        stack.wait_for(
            lambda: (runs := stack.dag_runs(train)) and all(r["state"] in TERMINAL_RUN_STATES for r in runs),
            120,
            f"the run {train} makes at unpause",
        )
    stack.unpause(ingest)
    run = stack.trigger(
        ingest, {"start": start.isoformat(), "end": (start + timedelta(days=DAYS)).isoformat()}
    ).json()
    finished = stack.wait_run(ingest, run["dag_run_id"])
    tis = stack.task_instances(ingest, run["dag_run_id"])
    assert finished["state"] == "success", {k: v["state"] for k, v in tis.items()}

    days = {k: v for k, v in tis.items() if k.startswith("extract_interactions[")}
    assert len(days) == DAYS and {v["state"] for v in days.values()} == {"success"}, days
    hostnames = {v["hostname"] for v in tis.values() if v["state"] == "success"}
    assert hostnames == set(worker_names(2)), hostnames
    TIER["celery: day tasks per worker"] = {
        name: sum(v["hostname"] == name for v in days.values()) for name in worker_names(2)
    }
    extracted = sorted(stack.xcom(ingest, run["dag_run_id"], "plan_extraction") or [])
    assert extracted == [(start + timedelta(days=n)).isoformat() for n in range(DAYS)]
    assert tis["publish_interactions"]["state"] == "success"

    def deployed_run():
        for train_run in stack.dag_runs(train, run_type="asset_triggered"):
            if train_run["state"] in ("success", "failed"):
                return train_run, stack.task_instances(train, train_run["dag_run_id"])
        return None

    train_run, train_tis = stack.wait_for(deployed_run, RUN_DEADLINE, f"an asset-triggered {train} run")
    assert train_run["state"] == "success", {k: v["state"] for k, v in train_tis.items()}
    group = stack.config.solutions[0].name  # its task group in train_deploy
    assert train_tis[f"{group}.deploy_campaign"]["state"] == "success"
    assert train_tis[f"{group}.smoke_test"]["state"] == "success"
