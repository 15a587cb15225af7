"""Run intervals (scheduled, manual, from the form) and whether train_deploy trains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.pipeline.schedule import catching_up, cost_guard, resolve_ingest_interval, serving_age_warning

DAILY = "0 0 * * *"
NOW = datetime(2026, 6, 10, 7, 30, tzinfo=UTC)


def resolve(**kwargs):
    base = dict(
        cron=DAILY,
        param_start=None,
        param_end=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=NOW,
    )
    return resolve_ingest_interval(**{**base, **kwargs})


def test_scheduled_run_uses_its_data_interval():
    interval = resolve(
        data_interval_start=datetime(2026, 6, 1, tzinfo=UTC),
        data_interval_end=datetime(2026, 6, 2, tzinfo=UTC),
    )
    assert (interval.start.day, interval.end.day) == (1, 2) and "data interval" in interval.source


def test_manual_run_without_interval_takes_the_last_complete_period_and_says_so():
    interval = resolve()
    assert interval.start == datetime(2026, 6, 9, tzinfo=UTC) and interval.end == datetime(
        2026, 6, 10, tzinfo=UTC
    )
    assert "manual run" in interval.source


def test_zero_width_interval_is_not_used():
    moment = datetime(2026, 6, 5, tzinfo=UTC)
    interval = resolve(data_interval_start=moment, data_interval_end=moment)
    assert interval.end > interval.start


def test_form_dates_win_and_are_checked():
    interval = resolve(param_start="2026-05-01", param_end="2026-05-04")
    assert (interval.end - interval.start).days == 3
    with pytest.raises(ValueError, match="both params start and end"):
        resolve(param_start="2026-05-01")
    with pytest.raises(ValueError, match="not after start"):
        resolve(param_start="2026-05-04", param_end="2026-05-01")
    with pytest.raises(ValueError, match="param start='May 1'"):
        resolve(param_start="May 1", param_end="2026-05-04")


def test_a_90_day_backfill_triggers_at_most_one_training():
    """Each backfilled ingest run publishes the asset; only the run that reaches the present trains."""
    present_end = datetime(2026, 6, 10, tzinfo=UTC)
    ends = [present_end - timedelta(days=n) for n in range(89, -1, -1)]
    # Worst case: every ingest run triggers its own train_deploy run, each seeing one event.
    trainings = sum(1 for end in ends if catching_up([end], cron=DAILY, now=NOW) is None)
    assert trainings == 1
    # Events batched into fewer runs (the scheduler's usual case) still train once, on the last batch.
    batches = [ends[i : i + 30] for i in range(0, 90, 30)]
    assert [catching_up(batch, cron=DAILY, now=NOW) is None for batch in batches] == [False, False, True]
    # A backfill of an old range alone never trains: the weekly schedule does.
    assert catching_up(ends[:10], cron=DAILY, now=NOW).reason.startswith("ingest is catching up")


def test_cost_guard_skips_without_new_data_unless_forced():
    created = datetime(2026, 6, 1, tzinfo=UTC)
    skip = cost_guard(
        newest_import=created - timedelta(hours=1),
        serving_created=created,
        forced=False,
        training_mode="FULL",
    )
    assert not skip.train and "no new data since the serving version" in skip.reason
    assert cost_guard(
        newest_import=created + timedelta(hours=1),
        serving_created=created,
        forced=False,
        training_mode="FULL",
    ).train
    assert cost_guard(newest_import=None, serving_created=created, forced=True, training_mode="FULL").train
    first = cost_guard(newest_import=created, serving_created=None, forced=False, training_mode="FULL")
    assert first.train and "no solution version has been trained yet" in first.reason
    nothing = cost_guard(newest_import=None, serving_created=None, forced=False, training_mode="FULL")
    assert not nothing.train and "nothing to train on" in nothing.reason


def test_age_warning_only_past_the_limit():
    assert serving_age_warning(NOW - timedelta(days=3), max_age_days=14, now=NOW) is None
    assert "20 days old (limit 14)" in serving_age_warning(NOW - timedelta(days=20), max_age_days=14, now=NOW)
    assert serving_age_warning(None, max_age_days=14, now=NOW) is None


def test_cost_guard_counts_a_rejected_challenger_as_trained_on_the_data():
    serving = datetime(2026, 3, 1, tzinfo=UTC)
    rejected = datetime(2026, 3, 8, tzinfo=UTC)
    newest_import = datetime(2026, 3, 5, tzinfo=UTC)
    skip = cost_guard(
        newest_import=newest_import,
        serving_created=serving,
        latest_trained=rejected,
        forced=False,
        training_mode="FULL",
    )
    assert not skip.train
    assert "latest trained (not serving) version" in skip.reason
    later_import = cost_guard(
        newest_import=datetime(2026, 3, 9, tzinfo=UTC),
        serving_created=serving,
        latest_trained=rejected,
        forced=False,
        training_mode="FULL",
    )
    assert later_import.train
    # A first challenger rejected by the thresholds (nothing serves) is not retrained on the same data.
    assert not cost_guard(
        newest_import=newest_import,
        serving_created=None,
        latest_trained=rejected,
        forced=False,
        training_mode="FULL",
    ).train
