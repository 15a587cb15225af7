"""Task bodies whose failure paths are hard to reach end to end: smoke-test rollback, rejection."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

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
    monkeypatch.setattr(training, "top_users", lambda config, count: ["u1", "u2"][:count])
    monkeypatch.setattr(training, "personalize_hook", lambda config: hook)
    return hook


RESOURCES = {"filter_arns": {"demo-retail-exclude-purchased": "arn:filter"}}


def test_smoke_test_asks_each_user_with_and_without_each_filter(config, fakes, monkeypatch):
    runtime = FakeRuntime(["i1", "i2"])
    monkeypatch.setattr(training, "runtime_client", lambda config: runtime)
    result = training.smoke_test(config, {"champion_arn": "arn:v1"}, "arn:campaign", RESOURCES)
    assert result["users"] == ["u1", "u2"]
    assert sorted((r["userId"], r.get("filterArn", "")) for r in runtime.requests) == [
        ("u1", ""), ("u1", "arn:filter"), ("u2", ""), ("u2", "arn:filter"),
    ]  # fmt: skip
    assert fakes.updates == []


def test_empty_recommendations_roll_the_campaign_back_and_fail(config, fakes, monkeypatch):
    monkeypatch.setattr(training, "runtime_client", lambda config: FakeRuntime([]))
    with pytest.raises(AirflowFailException, match="rolled back to arn:v1"):
        training.smoke_test(config, {"champion_arn": "arn:v1"}, "arn:campaign", RESOURCES)
    assert fakes.updates == [{"campaignArn": "arn:campaign", "solutionVersionArn": "arn:v1"}]
    assert fakes.waits == ["arn:campaign"]


def test_first_deployment_failing_the_smoke_test_fails_without_rollback(config, fakes, monkeypatch):
    monkeypatch.setattr(training, "runtime_client", lambda config: FakeRuntime([]))
    with pytest.raises(AirflowFailException, match="no previous version to roll back to"):
        training.smoke_test(config, {"champion_arn": None}, "arn:campaign", RESOURCES)
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
    monkeypatch.setattr(training, "runtime_client", lambda config: FailingRuntime())
    with pytest.raises(AirflowFailException, match=r"InvalidInputException.*rolled back to arn:v1"):
        training.smoke_test(config, {"champion_arn": "arn:v1"}, "arn:campaign", RESOURCES)
    assert fakes.updates == [{"campaignArn": "arn:campaign", "solutionVersionArn": "arn:v1"}]
    assert fakes.waits == ["arn:campaign"]


def test_rejection_is_not_a_failure_unless_config_says(config, tmp_path):
    decision = {
        "verdict": "REJECTED",
        "summary": "gate REJECTED on precision_at_25: challenger 0.01 vs champion 0.02",
    }
    message = training.keep_champion(config, {"champion_arn": "arn:v1", "dry_run": False}, decision)
    assert "CHALLENGER REJECTED, campaign keeps serving arn:v1" in message
    strict = config.model_copy(update={"gate": config.gate.model_copy(update={"fail_on_reject": True})})
    with pytest.raises(AirflowFailException, match="fail_on_reject"):
        training.keep_champion(strict, {"champion_arn": "arn:v1", "dry_run": False}, decision)
    assert "DRY RUN" in training.keep_champion(strict, {"champion_arn": "arn:v1", "dry_run": True}, decision)


@pytest.fixture
def recorded(monkeypatch):
    calls = []

    def fake_record(config, plan, decision, challenger, deployed, run_id, dag_id):
        calls.append({"deployed": deployed, "verdict": decision["verdict"]})
        return {"deployed": deployed}

    monkeypatch.setattr(training, "record_training", fake_record)
    return calls


def finish(
    config, *, train=True, dry_run=False, accepted=True, verdict="ACCEPTED", smoke=True, evaluated=True
):
    return training.finish_training(
        config,
        plan={"train": train, "dry_run": dry_run, "champion_arn": "arn:v1"},
        decision={"accepted": accepted, "verdict": verdict, "summary": "s"} if evaluated else None,
        challenger_arn="arn:v2" if evaluated else None,
        smoke_result={"users": ["u"]} if smoke else None,
        run_id="r",
        dag_id="d",
    )


def test_every_trained_version_is_recorded_and_failures_still_fail_the_run(config, recorded):
    assert finish(config) == training.TrainingOutcome({"deployed": True}, None)
    rejected = finish(config, accepted=False, verdict="REJECTED", smoke=False)
    assert rejected.failure is None and recorded[-1] == {"deployed": False, "verdict": "REJECTED"}
    dry = finish(config, dry_run=True, smoke=False)
    assert dry.failure is None and recorded[-1]["deployed"] is False
    rolled_back = finish(config, smoke=False)
    assert "passed the gate but was not deployed" in rolled_back.failure and recorded[-1]["deployed"] is False
    strict = config.model_copy(update={"gate": config.gate.model_copy(update={"fail_on_reject": True})})
    assert "fail_on_reject" in finish(strict, accepted=False, verdict="REJECTED", smoke=False).failure
    assert len(recorded) == 5


def test_nothing_trained_records_nothing_and_failed_training_fails(config, recorded):
    assert finish(config, train=False) == training.TrainingOutcome(None, None)
    # record_history is the run's only leaf, so it alone decides the run's state: no plan means
    # ensure_resources or plan_training failed (a skipped plan skips record_history too).
    no_plan = training.finish_training(
        config, plan=None, decision=None, challenger_arn=None, smoke_result=None, run_id="r", dag_id="d"
    )
    assert no_plan.asset_extra is None and "plan_training" in no_plan.failure
    assert "training or evaluation failed" in finish(config, evaluated=False).failure
    assert recorded == []


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
