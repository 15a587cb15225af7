"""(g) kill -9 the triggerer while an ingest run's import waits in it; after that run and the next
interval's, every day Personalize holds matches the app DB (issue 11 on the real stack).

The local Personalize service runs as a subprocess here, so its worker hold (tests/include/
local_personalize) is out of reach: the moment is picked by polling instead. An import deferred to
the triggerer stays there at least FIRST_TRIGGER_POLL_MIN_SECONDS (the trigger's first check), so
polling the task instance every half second finds it deferred without any timing assumption.
Killing the task's worker instead is left out: the scheduler only notices a dead worker after the
task heartbeat timeout (minutes), and the triggerer is where the tier's waits live.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime, timedelta

import pytest

from include.pipeline import days
from tests.stack.conftest import RUN_DEADLINE, SCHEDULED_DAYS, TIER, today
from tests.stack.test_c_backfill import BACKFILL_DAYS, backfill, quiet

pytestmark = pytest.mark.stack
# Logical dates before the ones (a) and (c) ran, inside the demo shop's days: the crashed run's day,
# then the next interval.
CRASH_DAY = today() - timedelta(days=SCHEDULED_DAYS + BACKFILL_DAYS + 2)
NEXT_DAY = CRASH_DAY + timedelta(days=1)
TERMINAL_JOB_STATES = {"ACTIVE", "CREATE FAILED"}


def backfill_day(stack, dag_id: str, day: datetime) -> dict:
    """Backfill one logical date to the end (Airflow runs one backfill per DAG at a time); its run."""
    before = {r["dag_run_id"] for r in stack.dag_runs(dag_id)}
    created = backfill(stack, dag_id, day, day)
    assert "id" in created, f"the backfill of {day.date()} was refused: {created}"

    def new_run():
        runs = [r for r in stack.dag_runs(dag_id, run_type="backfill") if r["dag_run_id"] not in before]
        return runs[0] if runs else None

    run = stack.wait_for(new_run, RUN_DEADLINE, f"the backfill run of {dag_id} for {day.date()}")
    return {"backfill_id": created["id"], **run}


def wait_backfill_done(stack, backfill_id: int) -> None:
    stack.wait_for(
        lambda: stack.api("GET", f"backfills/{backfill_id}").json()["completed_at"],
        RUN_DEADLINE,
        f"backfill {backfill_id} to complete",
    )


def interval_days(stack, dag_id: str, run_id: str) -> list[str]:
    """The days (YYYY-MM-DD) the run ingested, as its resolve_interval task chose them."""
    path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/resolve_interval/xcomEntries/return_value"
    value = stack.api("GET", path, params={"deserialize": True, "stringify": False}).json()["value"]
    interval = json.loads(value) if isinstance(value, str) else value
    return [
        days.partition_name(d).removeprefix("dt=")
        for d, _ in days.whole_days(interval["start"], interval["end"])
    ]


def app_db_count(stack, day: str) -> int:
    """Events of one UTC day straight from the demo shop's SQLite file (not through the pipeline)."""
    with contextlib.closing(sqlite3.connect(stack.stack.app_db)) as connection:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM events WHERE substr(occurred_at, 1, 10) = ?", (day,)
        ).fetchone()
    return int(count)


def interactions_jobs(stack) -> dict[str, str]:
    """Import jobs into the INTERACTIONS dataset: ARN -> status."""
    personalize = stack.personalize_client()
    return {
        j["datasetImportJobArn"]: j["status"]
        for j in personalize.list_dataset_import_jobs()["datasetImportJobs"]
        if "/INTERACTIONS" in j.get("datasetArn", j["datasetImportJobArn"]).upper()
        or "interactions" in j.get("jobName", "").lower()
    }


def test_an_import_deferred_through_a_triggerer_crash_leaves_every_day_complete(stack):
    ingest = stack.dag_ids()["ingest"]
    stack.unpause(ingest)
    stack.wait_for(lambda: quiet(stack), RUN_DEADLINE, "every earlier run to finish")
    jobs_before = interactions_jobs(stack)

    run = backfill_day(stack, ingest, CRASH_DAY)
    run_id = run["dag_run_id"]

    def deferred_import():
        tis = stack.task_instances(ingest, run_id)
        deferred = [
            name
            for name, ti in tis.items()
            if name.startswith("import_datasets") and ti["state"] == "deferred"
        ]
        if deferred:
            return deferred[0]
        state = stack.api("GET", f"dags/{ingest}/dagRuns/{run_id}").json()["state"]
        if state in ("success", "failed"):
            raise AssertionError(f"{run_id} ended ({state}) with no import deferred: nothing to crash into")
        return None

    task = stack.wait_for(deferred_import, RUN_DEADLINE, f"an import of {run_id} deferred", interval=0.5)
    new_jobs = {arn: status for arn, status in interactions_jobs(stack).items() if arn not in jobs_before}
    stack.stack.kill("triggerer")
    stack.stack.start("triggerer")
    TIER["ingest crash: killed the triggerer while"] = f"{task} deferred; new INTERACTIONS jobs {new_jobs}"

    crashed = stack.wait_run(ingest, run_id)
    tis = stack.task_instances(ingest, run_id)
    TIER["ingest crash: the crashed run"] = f"{crashed['state']}; {task} {tis[task]['state']}"
    wait_backfill_done(stack, run["backfill_id"])
    stack.wait_for(lambda: quiet(stack), RUN_DEADLINE, "the crashed run's asset-triggered runs")

    following = backfill_day(stack, ingest, NEXT_DAY)
    finished = stack.wait_run(ingest, following["dag_run_id"])
    wait_backfill_done(stack, following["backfill_id"])
    following_tis = stack.task_instances(ingest, following["dag_run_id"])
    assert finished["state"] == "success", {k: v["state"] for k, v in following_tis.items()}
    stack.wait_for(lambda: quiet(stack), RUN_DEADLINE, "the next interval's asset-triggered runs")

    # No import of the crashed run is left half done in Personalize.
    statuses = {arn: s for arn, s in interactions_jobs(stack).items() if arn not in jobs_before}
    assert statuses and set(statuses.values()) <= TERMINAL_JOB_STATES, statuses

    # The next interval's reconcile task wrote this: imported is what Personalize's ACTIVE import
    # jobs' manifests hold, per day, against the app DB's count by the extraction's own filter.
    body = stack.s3_client().get_object(
        Bucket=stack.config.s3.bucket, Key=stack.config.s3.key("reconcile", "latest.json")
    )
    latest = json.loads(body["Body"].read())
    assert datetime.fromisoformat(latest["generated_at"]) >= datetime.fromisoformat(finished["start_date"])
    rows = {row["day"]: row for row in latest["rows"]}
    checked = interval_days(stack, ingest, run_id) + interval_days(stack, ingest, following["dag_run_id"])
    for day in checked:
        row = rows.get(day)
        assert row is not None, f"{day} is not in the reconcile table: {sorted(rows)}"
        assert row["app_db"] == app_db_count(stack, day) > 0, row
        assert row["ok"] and row["imported"] == row["app_db"] - row["quarantined"], row
    assert [r for r in latest["rows"] if not r["ok"]] == [], "every day Personalize holds matches the app DB"
