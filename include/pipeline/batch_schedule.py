"""When each batch-served solution's batch inference job runs.

A solution's `batch.schedule` is its own cron; without one it follows the pipeline's
`schedule.batch_inference` (None: manual runs only). The batch_inference DAG fires on every distinct
cron of its solutions (one CronTriggerTimetable, or a MultipleCronTriggerTimetable for several), and
at each scheduled (or backfill) run only the solutions whose cron fires at that moment run; the
others' groups are skipped by their `due` task. Any other run (manual, triggered) runs every
batch-served solution, as before.

Pure but for `timetable`, which builds the Airflow object (imported there, at parse time of the DAG).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def solution_crons(config: Any) -> dict[str, str | None]:
    """Batch-served solution name -> its cron (own, else the pipeline's; None: manual runs only)."""
    return {
        entry.name: entry.batch.schedule or config.schedule.batch_inference
        for entry in config.solutions
        if entry.batch is not None
    }


def dag_crons(config: Any) -> list[str]:
    """The distinct crons the batch_inference DAG fires on, in the solutions' order."""
    return list(dict.fromkeys(cron for cron in solution_crons(config).values() if cron))


def timetable(config: Any):
    """The batch_inference DAG's schedule: None (manual only), one cron, or several."""
    from airflow.sdk import CronTriggerTimetable, MultipleCronTriggerTimetable

    crons = dag_crons(config)
    if not crons:
        return None
    if len(crons) == 1:
        return CronTriggerTimetable(crons[0], timezone="UTC")
    return MultipleCronTriggerTimetable(*crons, timezone="UTC")


def is_due(cron: str | None, moment: datetime | None, *, scheduled: bool) -> bool:
    """Whether a solution with `cron` runs in a run triggered at `moment`.

    A manual run (`scheduled` False) runs every solution. A scheduled or backfill run fired by one of
    the DAG's crons runs the solutions whose cron fires at that minute (UTC, as the timetable's).
    """
    if not scheduled:
        return True
    if cron is None or moment is None:
        return False
    from croniter import croniter

    return bool(croniter.match(cron, moment.replace(second=0, microsecond=0)))


def due_now(config: Any, name: str, dag_run: Any) -> bool:
    """`is_due` for one solution in a running DAG run (the `due` task of its batch group)."""
    import logging

    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    moment = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    cron = solution_crons(config)[name]
    # Fired by a cron: scheduled, or a backfill of those times; any other run (manual, triggered) runs all.
    due = is_due(cron, moment, scheduled=str(run_type) in ("scheduled", "backfill"))
    if not due:
        logging.getLogger(__name__).info(
            "%s: not due at %s (its batch cron is %s); skipped in this run",
            name,
            moment,
            cron or "manual only",
        )
    return due
