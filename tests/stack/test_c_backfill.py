"""(c) A backfill through the REST API runs; the same backfill again creates no run, object or job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.stack.conftest import RUN_DEADLINE, SCHEDULED_DAYS, today

pytestmark = pytest.mark.stack
BACKFILL_DAYS = 2


def backfill(stack, dag_id: str, first, last) -> dict:
    body = {
        "dag_id": dag_id,
        "from_date": first.isoformat(),
        "to_date": last.isoformat(),
        "max_active_runs": 1,
        "reprocess_behavior": "none",
        "run_backwards": False,
        "dag_run_conf": {},
    }
    return stack.api("POST", "backfills", json=body, expect=(200, 409)).json()


def quiet(stack) -> bool:
    """No run of any pipeline DAG queued or running (asset-triggered ones included)."""
    return not any(stack.dag_runs(dag_id, state=["queued", "running"]) for dag_id in stack.dag_ids().values())


def test_a_rest_backfill_runs_and_repeating_it_creates_nothing(stack):
    ingest = stack.dag_ids()["ingest"]
    stack.unpause(ingest)  # backfill runs wait while the DAG is paused
    # Days before the scheduled ones, inside the demo data (logical dates, both inclusive).
    last = today() - timedelta(days=SCHEDULED_DAYS + 1)
    first = last - timedelta(days=BACKFILL_DAYS - 1)
    created = backfill(stack, ingest, first, last)

    def backfill_runs_done():
        runs = stack.dag_runs(ingest, run_type="backfill")
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return runs if len(done) >= BACKFILL_DAYS else None

    runs = stack.wait_for(backfill_runs_done, RUN_DEADLINE, f"{BACKFILL_DAYS} backfill runs of {ingest}")
    assert [r["state"] for r in runs] == ["success"] * BACKFILL_DAYS, runs
    assert sorted(r["logical_date"][:10] for r in runs) == [
        (first + timedelta(days=n)).date().isoformat() for n in range(BACKFILL_DAYS)
    ]
    stack.wait_for(
        lambda: stack.api("GET", f"backfills/{created['id']}").json()["completed_at"],
        RUN_DEADLINE,
        "the backfill to complete",
    )
    stack.wait_for(lambda: quiet(stack), RUN_DEADLINE, "the runs the backfill's assets triggered")
    keys, jobs = stack.s3_keys(), stack.personalize_jobs()
    run_ids = {r["dag_run_id"] for r in stack.dag_runs(ingest)}

    again = backfill(stack, ingest, first, last)
    if "id" in again:  # Airflow records the backfill, with no runs, or refuses it (409)
        stack.wait_for(
            lambda: stack.api("GET", f"backfills/{again['id']}").json()["completed_at"],
            RUN_DEADLINE,
            "the repeat to complete",
        )
    stack.wait_for(lambda: quiet(stack), RUN_DEADLINE, "every run to finish")
    assert {r["dag_run_id"] for r in stack.dag_runs(ingest)} == run_ids
    assert stack.s3_keys() == keys
    assert stack.personalize_jobs() == jobs
