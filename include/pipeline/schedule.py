"""When a run happens and what it covers: intervals for ingest runs, whether to train.

Pure functions of the run's context, so the rules are unit-tested without Airflow running:
- an ingest run covers its data interval; a manual run (UI/API: no logical date, no data interval)
  covers the dates in its form, or else the last complete schedule period before it was
  triggered, and says which;
- train_deploy trains when new data landed since the last trained version (the cost guard), and an
  asset-triggered run trains only when ingest has reached the present: each run of a 90-day
  backfill publishes the asset, but only the run that catches up triggers a training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from include.pipeline.days import day_start, to_utc


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    source: str  # how the interval was chosen, for the log

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "source": self.source}


def _parse_moment(value: str | date | datetime, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = day_start(value)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(f"param {name}={value!r} is not a date (YYYY-MM-DD) or ISO timestamp") from err
    return to_utc(moment)


def last_complete_period(cron: str, moment: datetime) -> tuple[datetime, datetime]:
    """The newest [start, end) of the cron schedule that ends at or before `moment`."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    interval = CronDataIntervalTimetable(cron, "UTC").infer_manual_data_interval(run_after=moment)
    return to_utc(interval.start), to_utc(interval.end)


def resolve_ingest_interval(
    *,
    cron: str,
    param_start: str | None,
    param_end: str | None,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime,
) -> Interval:
    """The interval an ingest run extracts; raises naming the params when they make no sense."""
    if param_start or param_end:
        if not (param_start and param_end):
            raise ValueError("give both params start and end (or neither, to use the run's interval)")
        start, end = _parse_moment(param_start, "start"), _parse_moment(param_end, "end")
        if end <= start:
            raise ValueError(f"param end {end.isoformat()} is not after start {start.isoformat()}")
        return Interval(start, end, "the run's params start/end")
    if (
        data_interval_start is not None
        and data_interval_end is not None
        and data_interval_end > data_interval_start
    ):
        return Interval(to_utc(data_interval_start), to_utc(data_interval_end), "the run's data interval")
    start, end = last_complete_period(cron, to_utc(run_after))
    return Interval(
        start,
        end,
        f"no data interval (manual run): the last complete '{cron}' period before run_after {run_after.isoformat()}",
    )


@dataclass(frozen=True)
class TrainingDecision:
    train: bool
    reason: str


def catching_up(interval_ends: Iterable[datetime], *, cron: str, now: datetime) -> TrainingDecision | None:
    """For an asset-triggered run: a 'skip' decision when every triggering ingest interval is
    behind the present (a backfill or catch-up still on its way), else None.

    The present is the newest complete ingest period at `now`; the run that ingests it trains.
    """
    ends = [e.astimezone(UTC) for e in interval_ends]
    if not ends:
        return None
    _, present_end = last_complete_period(cron, now.astimezone(UTC))
    newest = max(ends)
    if newest >= present_end:
        return None
    return TrainingDecision(
        False,
        f"ingest is catching up: the newest triggering interval ends {newest.isoformat()}, the present one "
        f"ends {present_end.isoformat()}; the run that ingests the present trains (or the weekly schedule)",
    )


def cost_guard(
    *,
    newest_import: datetime | None,
    serving_created: datetime | None,
    forced: bool,
    training_mode: str,
    latest_trained: datetime | None = None,
) -> TrainingDecision:
    """Train only when data arrived after the last model trained on it, or when asked to.

    The last model is the newer of the serving version and the solution's latest ACTIVE version: a
    challenger the gate rejected was trained on this data too, and training again on the same data
    would pay for the same rejection every week.
    """
    if forced:
        return TrainingDecision(True, "forced by the run's params")
    if newest_import is None:
        return TrainingDecision(False, "no dataset import job has finished: nothing to train on yet")
    trained = [moment for moment in (serving_created, latest_trained) if moment is not None]
    if not trained:
        return TrainingDecision(True, "no solution version has been trained yet")
    baseline = max(trained)
    which = (
        "the serving version" if baseline == serving_created else "the latest trained (not serving) version"
    )
    if newest_import <= baseline:
        return TrainingDecision(
            False,
            f"no new data since {which} (created {baseline.isoformat()}; newest import "
            f"finished {newest_import.isoformat()}): skipping {training_mode} training, which would cost "
            "training hours for the same model. Trigger with force_deploy to train anyway.",
        )
    return TrainingDecision(True, f"new data: an import finished {newest_import.isoformat()}, after {which}")


def serving_age_warning(serving_created: datetime | None, *, max_age_days: int, now: datetime) -> str | None:
    if serving_created is None:
        return None
    age = now - serving_created
    if age <= timedelta(days=max_age_days):
        return None
    return (
        f"the serving solution version is {age.days} days old (limit {max_age_days}): retraining may be broken "
        "or starved of data"
    )
