"""A batch schedule per solution: the batch_inference DAG fires on every solution's cron and runs, at
each scheduled run, only the solutions whose cron fired (include/pipeline/batch_schedule.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import yaml

from include.pipeline.batch_schedule import dag_crons, due_now, is_due, solution_crons
from include.pipeline.config import CONFIG_DIR, ConfigError, load_config
from tests.include.pipeline.test_config import write

THURSDAY_5 = "0 5 * * 4"
MONDAY_6 = "0 6 * * 1"  # the demo's schedule.batch_inference


def demo(**ranking_batch) -> dict:
    """The shipped demo config (three solutions, two served by batch) with the ranking's batch keys."""
    data = yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text())
    data["solutions"][2]["batch"].update(ranking_batch)
    return data


def test_a_solution_without_its_own_schedule_follows_the_pipelines(tmp_path):
    config = load_config(write(tmp_path, demo()))
    assert solution_crons(config) == {
        "demo-retail-user-personalization": MONDAY_6,
        "demo-retail-ranking": MONDAY_6,
    }
    assert dag_crons(config) == [MONDAY_6]


def test_own_schedules_make_the_dag_fire_on_each_and_run_only_the_solutions_due(tmp_path):
    config = load_config(write(tmp_path, demo(schedule=THURSDAY_5)))
    assert solution_crons(config)["demo-retail-ranking"] == THURSDAY_5
    assert dag_crons(config) == [MONDAY_6, THURSDAY_5]
    monday, thursday = datetime(2026, 12, 7, 6, 0, tzinfo=UTC), datetime(2026, 12, 10, 5, 0, tzinfo=UTC)
    scheduled = {
        moment: {name for name in solution_crons(config) if due_now(config, name, run("scheduled", moment))}
        for moment in (monday, thursday)
    }
    assert scheduled == {monday: {"demo-retail-user-personalization"}, thursday: {"demo-retail-ranking"}}
    # A backfill follows the crons too; a manual run runs every batch-served solution.
    assert not due_now(config, "demo-retail-ranking", run("backfill", monday))
    for run_type in ("manual", "operator_triggered"):
        assert all(due_now(config, name, run(run_type, monday)) for name in solution_crons(config))


def test_without_a_pipeline_cron_only_solutions_with_their_own_are_scheduled(tmp_path):
    data = demo(schedule=THURSDAY_5)
    data["schedule"]["batch_inference"] = None
    config = load_config(write(tmp_path, data))
    assert solution_crons(config) == {
        "demo-retail-user-personalization": None,
        "demo-retail-ranking": THURSDAY_5,
    }
    assert dag_crons(config) == [THURSDAY_5]
    assert not is_due(None, datetime(2026, 12, 10, 5, 0, tzinfo=UTC), scheduled=True)
    assert is_due(None, None, scheduled=False)


@pytest.mark.parametrize(
    ("cron", "words"), [("0 5 * *", "not a valid cron"), ("@weekly", "write the cron fields")]
)
def test_a_bad_batch_schedule_names_its_key(tmp_path, cron, words):
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, demo(schedule=cron)))
    assert ": solutions.2.batch.schedule: " in str(raised.value) and words in str(raised.value)


def test_the_batch_dag_fires_on_both_crons_and_each_group_asks_whether_it_is_due(tmp_path, monkeypatch):
    from airflow.sdk import CronTriggerTimetable, MultipleCronTriggerTimetable

    from tests.dags.e2e_support import load_dags

    own = load_dags(write(tmp_path, demo(schedule=THURSDAY_5), name="demo_retail.yaml"), monkeypatch)
    batch = own["batch_inference"]
    assert isinstance(batch.timetable, MultipleCronTriggerTimetable)
    assert [t.expression for t in batch.timetable.timetables] == [MONDAY_6, THURSDAY_5]
    for name in solution_crons(own["config"]):
        assert batch.get_task(f"{name}.prepare").upstream_task_ids >= {f"{name}.due"}
        assert batch.get_task(f"{name}.due").upstream_task_ids == {"ensure_resources"}
    default = load_dags(write(tmp_path, demo(), name="demo_retail.yaml"), monkeypatch)["batch_inference"]
    assert isinstance(default.timetable, CronTriggerTimetable) and default.timetable.expression == MONDAY_6


def run(run_type: str, moment: datetime) -> SimpleNamespace:
    """What the `due` task reads of its DAG run: the run type and the time the cron fired."""
    return SimpleNamespace(run_type=run_type, logical_date=moment, run_after=moment)
