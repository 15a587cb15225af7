"""Task bodies whose failure paths are hard to reach end to end: smoke-test rollback, rejection, records."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from include.pipeline import solution_record, solution_tasks
from include.pipeline.config import CONFIG_DIR, load_config
from include.pipeline.tasks import ingest, training
from tests.demo_config import one_solution


@pytest.fixture
def config(tmp_path):
    data = one_solution(yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text(encoding="utf-8")))
    data["tasks"]["poll_seconds"] = 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


class FakeRuntime:
    def __init__(self, items):
        self.items, self.requests = items, []

    def get_recommendations(self, **request):
        self.requests.append(request)
        return {"itemList": [{"itemId": i} for i in self.items]}


class FakeHook:
    def __init__(self):
        self.updates, self.waits = [], []
        self.conn = SimpleNamespace(update_campaign=lambda **kw: self.updates.append(kw))

    def wait_until_active(self, kind, arn, **kwargs):
        self.waits.append(arn)


@pytest.fixture
def fakes(monkeypatch):
    hook = FakeHook()
    known = {"USER_ID": ["u1", "u2"], "ITEM_ID": ["i1", "i2", "i3"]}
    monkeypatch.setattr(solution_tasks, "most_active", lambda config, field, count: known[field][:count])
    monkeypatch.setattr(solution_tasks, "personalize_hook", lambda config: hook)
    monkeypatch.setattr(training, "personalize_hook", lambda config: hook)  # the rollback's
    return hook


RESOURCES = {"filter_arns": {"demo-retail-exclude-purchased": "arn:filter"}}


def smoke(config, champion="arn:v1"):
    name = config.solutions[0].name
    return solution_tasks.smoke_test(config, name, {"champion_arn": champion}, "arn:campaign", RESOURCES)


def test_smoke_test_asks_each_user_with_and_without_each_filter(config, fakes, monkeypatch):
    runtime = FakeRuntime(["i1", "i2"])
    monkeypatch.setattr(solution_tasks, "runtime_client", lambda config: runtime)
    result = smoke(config)
    assert result["requests"] == 4
    assert sorted((r["userId"], r.get("filterArn", "")) for r in runtime.requests) == [
        ("u1", ""), ("u1", "arn:filter"), ("u2", ""), ("u2", "arn:filter"),
    ]  # fmt: skip
    assert fakes.updates == []


def test_empty_recommendations_roll_the_campaign_back_and_fail(config, fakes, monkeypatch):
    monkeypatch.setattr(solution_tasks, "runtime_client", lambda config: FakeRuntime([]))
    with pytest.raises(AirflowFailException, match="rolled back to arn:v1"):
        smoke(config)
    assert fakes.updates == [{"campaignArn": "arn:campaign", "solutionVersionArn": "arn:v1"}]
    assert fakes.waits == ["arn:campaign"]


def test_first_deployment_failing_the_smoke_test_fails_without_rollback(config, fakes, monkeypatch):
    monkeypatch.setattr(solution_tasks, "runtime_client", lambda config: FakeRuntime([]))
    with pytest.raises(AirflowFailException, match="no previous version to roll back to"):
        smoke(config, champion=None)
    assert fakes.updates == []


class FailingRuntime:
    """GetRecommendations answering with an error, e.g. a filter Personalize cannot apply."""

    def get_recommendations(self, **request):
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "InvalidInputException", "Message": "filter values missing"}},
            "GetRecommendations",
        )


def test_recommendation_errors_roll_the_campaign_back_and_fail(config, fakes, monkeypatch):
    monkeypatch.setattr(solution_tasks, "runtime_client", lambda config: FailingRuntime())
    with pytest.raises(AirflowFailException, match=r"InvalidInputException.*rolled back to arn:v1"):
        smoke(config)
    assert fakes.updates == [{"campaignArn": "arn:campaign", "solutionVersionArn": "arn:v1"}]
    assert fakes.waits == ["arn:campaign"]


def test_a_rejection_keeps_the_champion_and_never_raises(config):
    decision = {
        "verdict": "REJECTED",
        "summary": "gate REJECTED on precision_at_25: challenger 0.01 vs champion 0.02",
    }
    name = config.solutions[0].name
    message = solution_record.keep_champion(
        config, name, {"champion_arn": "arn:v1", "dry_run": False}, decision
    )
    assert f"CHALLENGER OF {name} REJECTED, the champion stays arn:v1" in message
    dry = solution_record.keep_champion(config, name, {"champion_arn": "arn:v1", "dry_run": True}, decision)
    assert "DRY RUN" in dry


@pytest.fixture
def recording(config, s3_client, s3_bucket, monkeypatch):
    """The config writing its metrics history to the test bucket. Without a metric attribution: its
    online totals would ask a Personalize that is not running here, through minutes of retries."""
    monkeypatch.setattr(solution_record, "s3_client", lambda config: s3_client)
    return config.model_copy(
        update={"s3": config.s3.model_copy(update={"bucket": s3_bucket}), "metric_attribution": None}
    )


def outcome(
    config,
    *,
    run="r",
    train=True,
    dry_run=False,
    accepted=True,
    verdict="ACCEPTED",
    deployed=True,
    evaluated=True,
):
    metrics = {"precision_at_25": 0.1}
    return solution_record.record_solution(
        config,
        config.solutions[0].name,
        plan={"train": train, "dry_run": dry_run, "champion_arn": "arn:v1", "training_mode": "FULL"},
        decision={
            "accepted": accepted,
            "verdict": verdict,
            "summary": "s",
            "challenger": metrics,
            "table": "t",
        }
        if evaluated
        else None,
        challenger_arn=f"arn:{run}" if evaluated else None,
        deployed=deployed,
        run_id=run,
        dag_id="d",
    )


def test_every_trained_version_is_recorded_and_failures_are_named(recording, s3_client, s3_bucket):
    from include.pipeline.history import history_key, read_history

    assert outcome(recording, run="r1")["failure"] is None
    assert outcome(recording, run="r2", accepted=False, verdict="REJECTED", deployed=False)["failure"] is None
    assert outcome(recording, run="r3", dry_run=True, deployed=False)["failure"] is None
    rolled_back = outcome(recording, run="r4", deployed=False)
    assert "passed the gate but was not deployed" in rolled_back["failure"]
    strict_gate = recording.solutions[0].gate.model_copy(update={"fail_on_reject": True})
    strict = recording.model_copy(
        update={"solutions": [recording.solutions[0].model_copy(update={"gate": strict_gate})]}
    )
    assert (
        "fail_on_reject"
        in outcome(strict, run="r5", accepted=False, verdict="REJECTED", deployed=False)["failure"]
    )
    history = read_history(s3_client, s3_bucket, history_key(recording.s3.prefix))
    assert [(r["run_id"], r["deployed"]) for r in history] == [
        ("r1", True), ("r2", False), ("r3", False), ("r4", False), ("r5", False),
    ]  # fmt: skip


def test_nothing_trained_records_nothing_and_failed_training_fails(recording, s3_client, s3_bucket):
    from include.pipeline.history import history_key, read_history

    assert outcome(recording, train=False) == {
        "solution": recording.solutions[0].name,
        "failure": None,
        "record": None,
    }
    no_plan = solution_record.record_solution(
        recording, recording.solutions[0].name, plan=None, decision=None, challenger_arn=None, deployed=False,
        run_id="r", dag_id="d",
    )  # fmt: skip
    assert "plan_training failed" in no_plan["failure"]
    assert "training or evaluation failed" in outcome(recording, evaluated=False)["failure"]
    assert read_history(s3_client, s3_bucket, history_key(recording.s3.prefix)) == []


def test_finish_names_every_failed_solution(config):
    with pytest.raises(
        AirflowFailException, match=r"2 of 3 solution\(s\) failed: a: broke; c: its record task failed"
    ):
        solution_record.finish_run(
            config, {"a": {"failure": "broke"}, "b": {"failure": None, "record": {"x": 1}}, "c": None}
        )


def test_finished_imports_are_recorded_even_when_another_job_of_the_run_failed(
    config, s3_client, s3_bucket, monkeypatch
):
    """An unrecorded finished job would be planned again by the next run, merged with new data under
    a new job name, and import its interactions twice."""
    from include.pipeline.import_ledger import Ledger

    config = config.model_copy(update={"s3": config.s3.model_copy(update={"bucket": s3_bucket})})
    monkeypatch.setattr(ingest, "s3_client", lambda config: s3_client)
    plan = {
        "batches": [
            {"job_name": "j-interactions", "import_mode": "INCREMENTAL", "dataset_type": "INTERACTIONS",
             "partitions": {"dt=2026-03-01": "fp1"}, "records": 1200, "data_location": "s3://b/i/"},
            {"job_name": "j-items", "import_mode": "FULL", "dataset_type": "ITEMS",
             "partitions": {"snapshot": "h1"}, "records": 150, "data_location": "s3://b/items/"},
        ],
        "carried": [],
        "carried_records": 0,
    }  # fmt: skip
    interval = {"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-02T00:00:00+00:00"}
    with pytest.raises(RuntimeError, match="j-items"):
        ingest.record_imports(config, plan, ["arn:job/j-interactions", None], interval)
    book = Ledger(s3_bucket, config.s3.prefix)
    assert book.imported_fingerprints(s3_client, "INTERACTIONS") == {"dt=2026-03-01": "fp1"}
    assert book.imports(s3_client, "ITEMS") == []


def test_the_shrink_guard_compares_each_solution_with_its_own_champions_data(
    s3_client, s3_bucket, monkeypatch
):
    from include.pipeline.history import append_record, solution_history_key

    full = load_config(CONFIG_DIR / "demo_retail.yaml")
    config = full.model_copy(update={"s3": full.s3.model_copy(update={"bucket": s3_bucket})})
    monkeypatch.setattr(training, "s3_client", lambda config: s3_client)
    alerts = []
    monkeypatch.setattr(
        training.notify, "data_shrink", lambda view, message: alerts.append(view.solution.name)
    )
    first, second = config.solutions[0].name, config.solutions[1].name
    for name, records in ((first, 1000), (second, 100)):
        line = {
            "run_id": "r1",
            "solution_version_arn": f"arn:{name}/1",
            "training_data": {"dataset_records": records},
        }
        append_record(s3_client, s3_bucket, solution_history_key(config, name), line)

    # 500 records now: half of what the first's champion saw, five times what the second's saw.
    with pytest.raises(AirflowFailException, match=rf"^{first}: .* arn:{first}/1 was trained on 1000"):
        training.check_data_shrink(config, first, 500, f"arn:{first}/1")
    training.check_data_shrink(config, second, 500, f"arn:{second}/1")
    with pytest.raises(AirflowFailException, match=rf"^{second}: .* arn:{second}/1 was trained on 100\b"):
        training.check_data_shrink(config, second, 50, f"arn:{second}/1")
    assert alerts == [first, second]
