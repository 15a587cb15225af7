"""The deferral race cannot fail a task: short waits never defer, and a trigger never fires at once.

apache/airflow#72716 / #71580 (open in 3.3.2): when a trigger's event follows its deferral within
seconds, the scheduler can process the worker's stale "success" of the defer exit after the resumed
try started and fail that try. Deferrable Personalize waits therefore poll in the worker first for
``defer_after_seconds`` (most local and many AWS waits end there), and a trigger waits
``first_poll_delay`` before its first status check. The real stack tier (tests/stack) runs the
pipeline with deferrals through a real scheduler and triggerer and finds no state-mismatch line.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from personalize.hooks import PersonalizeResourceFailedError
from personalize.kinds import ACTIVE, DATASET_IMPORT_JOB
from personalize.operators.base import GRACE_POLL_SECONDS, settles_before_deferring
from personalize.triggers import PersonalizeDatasetImportJobTrigger

from tests.plugins.conftest import ensure_operator, make_context, run_deferrable, unique_name


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedHook:
    """Answers describe() with the next status of a script; records how often it was asked."""

    def __init__(self, *statuses: str):
        self.statuses = list(statuses)
        self.calls = 0

    def describe(self, kind, arn):
        self.calls += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"status": status, "failureReason": "bad csv"}

    def raise_if_failed(self, kind, arn, description):
        if description["status"] == "CREATE FAILED":
            raise PersonalizeResourceFailedError(f"{arn} failed: {description['failureReason']}")


def test_a_resource_that_turns_active_within_the_grace_period_is_not_deferred():
    clock = FakeClock()
    hook = ScriptedHook("CREATE PENDING", "CREATE IN_PROGRESS", ACTIVE)
    assert settles_before_deferring(hook, DATASET_IMPORT_JOB, "arn:x", 30, clock=clock, sleep=clock.sleep)
    assert hook.calls == 3
    assert clock.now == 3 * GRACE_POLL_SECONDS


def test_a_resource_still_in_progress_after_the_grace_period_is_deferred():
    clock = FakeClock()
    hook = ScriptedHook("CREATE IN_PROGRESS")
    assert not settles_before_deferring(hook, DATASET_IMPORT_JOB, "arn:x", 5, clock=clock, sleep=clock.sleep)
    # Polls every GRACE_POLL_SECONDS, the last one cut to end exactly at the deadline.
    assert clock.sleeps == [2.0, 2.0, 1.0]
    assert hook.calls == 3


def test_no_grace_period_defers_without_polling():
    clock = FakeClock()
    hook = ScriptedHook(ACTIVE)
    assert not settles_before_deferring(hook, DATASET_IMPORT_JOB, "arn:x", 0, clock=clock, sleep=clock.sleep)
    assert hook.calls == 0


def test_a_failure_during_the_grace_period_fails_with_the_reason():
    clock = FakeClock()
    hook = ScriptedHook("CREATE IN_PROGRESS", "CREATE FAILED")
    with pytest.raises(PersonalizeResourceFailedError, match="bad csv"):
        settles_before_deferring(hook, DATASET_IMPORT_JOB, "arn:x", 30, clock=clock, sleep=clock.sleep)


def test_the_trigger_keeps_its_first_poll_delay_through_serialisation():
    trigger = PersonalizeDatasetImportJobTrigger(arn="arn:x", waiter_delay=30, first_poll_delay=7)
    _, kwargs = trigger.serialize()
    rebuilt = PersonalizeDatasetImportJobTrigger(**kwargs)
    assert rebuilt.first_poll_delay == 7
    # Without one, the first check comes one poll interval after the deferral, not at once.
    assert PersonalizeDatasetImportJobTrigger(arn="arn:x", waiter_delay=30).first_poll_delay == 30


def test_the_trigger_sleeps_before_its_first_status_check(monkeypatch):
    from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

    order: list[str] = []

    async def fake_sleep(seconds):
        order.append(f"sleep {seconds}")

    async def first_poll(self):
        order.append("poll")
        yield "event"

    monkeypatch.setattr("personalize.triggers.asyncio", SimpleNamespace(sleep=fake_sleep))
    monkeypatch.setattr(AwsBaseWaiterTrigger, "run", first_poll)
    trigger = PersonalizeDatasetImportJobTrigger(arn="arn:x", waiter_delay=1, first_poll_delay=6)

    async def collect():
        return [event async for event in trigger.run()]

    assert asyncio.run(collect()) == ["event"]
    assert order == ["sleep 6", "poll"]


def test_a_deferrable_operator_with_a_grace_period_finishes_short_waits_without_deferring(slow_personalize):
    # The slow service takes seconds per status step: without a grace period this defers level by
    # level (test_ensure_resources_deferrable_waits_level_by_level_in_the_triggerer).
    conn = {"aws_conn_id": slow_personalize["conn_id"]}
    operator = ensure_operator(unique_name("ensure-grace"), deferrable=True, defer_after_seconds=300, **conn)
    run = run_deferrable(operator, make_context(operator), hold_worker=False)
    assert run.deferrals == []
    assert run.result["new_datasets"] == ["INTERACTIONS"]
    assert run.result["solution_arns"] and run.result["filter_arns"]


def test_a_deferrable_operator_defers_what_outlasts_the_grace_period(slow_personalize):
    conn = {"aws_conn_id": slow_personalize["conn_id"]}
    operator = ensure_operator(
        unique_name("ensure-short-grace"),
        deferrable=True,
        defer_after_seconds=0.1,
        first_poll_delay=1,
        **conn,
    )
    run = run_deferrable(operator, make_context(operator))
    assert run.deferrals, "a wait longer than the grace period must defer"
    assert all(kwargs["first_poll_delay"] == 1 for _, kwargs, _ in run.deferrals)
