"""Notifications through Airflow's own notifiers, read back from moto's SNS through an SQS subscription."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
import yaml

from include.pipeline import notify, solution_record
from include.pipeline.config import CONFIG_DIR, ConfigError, load_config
from include.pipeline.gate import decide
from tests.demo_config import one_solution

CONN_ID = "aws_notify_test"


@pytest.fixture
def topic(s3_endpoint, monkeypatch):
    """An SNS topic with an SQS queue subscribed, on moto; the pipeline's AWS connection points at moto."""
    extra = {
        "region_name": "us-east-1",
        "service_config": {"sns": {"endpoint_url": s3_endpoint}, "s3": {"endpoint_url": s3_endpoint}},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "aws", "extra": extra}))
    sns = boto3.client("sns", endpoint_url=s3_endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    name = f"pipeline-alerts-{uuid.uuid4().hex[:8]}"
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def received(expected: int, timeout: float = 60.0) -> list[dict]:
        """The SNS envelopes that reached the queue: waits for `expected`, then for stragglers."""
        messages, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in answer.get("Messages", []):
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if len(messages) >= expected and not answer.get("Messages"):
                break
        return messages

    return {"arn": topic_arn, "received": received}


def make_config(tmp_path, s3_bucket=None, **notifications):
    data = one_solution(yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text(encoding="utf-8")))
    data["aws_conn_id"] = CONN_ID
    data.pop("metric_attribution")  # no Personalize here: the records carry no online totals
    if s3_bucket:
        data["s3"]["bucket"] = s3_bucket
    data["notifications"] = notifications
    data.pop("metric_attribution", None)  # reading online totals needs a Personalize endpoint
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def rejected_decision() -> dict:
    decision = decide(
        {"precision_at_25": 0.01, "coverage": 0.2},
        {"precision_at_25": 0.05, "coverage": 0.3},
        metric="precision_at_25",
        thresholds={"precision_at_25": 0.02},
        tolerance=0.005,
    )
    assert not decision.accepted
    return decision.as_dict()


def test_a_gate_rejection_reaches_the_topic_with_the_metrics_table(tmp_path, topic):
    config = make_config(tmp_path, sns_topic_arn=topic["arn"])
    decision = rejected_decision()
    solution_record.keep_champion(
        config, config.solutions[0].name, {"champion_arn": "arn:champion"}, decision
    )
    (message,) = topic["received"](1)
    assert message["Subject"] == "[demo_retail] challenger rejected by the gate"
    assert (
        "keeps serving arn:champion" in message["Message"]
        and "campaign demo-retail-home" in message["Message"]
    )
    assert decision["table"] and decision["table"] in message["Message"]
    assert "precision_at_25" in message["Message"]


PROBE_DAG = """
import os
from datetime import UTC, datetime

from airflow.sdk import DAG, task

from include.pipeline import notify
from include.pipeline.config import load_config

config = load_config(os.environ["NOTIFY_PROBE_CONFIG"])
with DAG(
    "notify_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    default_args={"retries": 0, "on_failure_callback": notify.failure_callbacks(config)},
) as dag:

    @task
    def extract():
        raise ValueError("mapped column evnt_type is missing")

    extract()
"""


def test_a_failed_task_notifies_through_the_dags_failure_callback(tmp_path, topic, airflow_db, monkeypatch):
    """A real task failure under dag.test(): Airflow renders and sends the SnsNotifier callback."""
    import importlib.util

    config = make_config(tmp_path, sns_topic_arn=topic["arn"])
    monkeypatch.setenv("NOTIFY_PROBE_CONFIG", str(tmp_path / "c.yaml"))
    folder = tmp_path / "probe_dags"
    folder.mkdir()
    dag_file = folder / "notify_probe.py"
    dag_file.write_text(PROBE_DAG)
    bundles = [
        {"name": "notify-probe", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": str(folder), "refresh_interval": 0}},
        # Kept so the project's own bundle stays active for dag.test() runs after this one.
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
    ]  # fmt: skip
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    spec = importlib.util.spec_from_file_location("notify_probe", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [type(n).__name__ for n in notify.failure_callbacks(config)] == ["SnsNotifier"]

    dag_run = module.dag.test()

    assert {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()} == {"extract": "failed"}
    (message,) = topic["received"](1)
    assert message["Subject"] == "[demo_retail] task extract of notify_probe failed"
    assert "mapped column evnt_type is missing" in message["Message"]


def test_the_nth_rejection_in_a_row_notifies_once(tmp_path, topic, s3_client, s3_bucket):
    config = make_config(
        tmp_path, s3_bucket, sns_topic_arn=topic["arn"], events=["rejections_in_a_row"], rejections_in_a_row=2
    )
    decision = rejected_decision()
    plan = {"train": True, "training_mode": "FULL", "champion_arn": "arn:champion"}
    for run in ("r1", "r2", "r2", "r3"):  # r2 twice: a cleared task's rerun records nothing new
        solution_record.record_solution(
            config, config.solutions[0].name, plan=plan, decision=decision,
            challenger_arn=f"arn:challenger-{run}", deployed=False, run_id=run, dag_id="demo_retail_train_deploy",
        )  # fmt: skip
    (message,) = topic["received"](1)
    assert message["Subject"] == "[demo_retail] 2 challengers rejected in a row"
    assert "arn:challenger-r1" in message["Message"] and "arn:challenger-r2" in message["Message"]
    assert notify.trailing_rejections([{"decision": {"verdict": "REJECTED"}}, {"dry_run": True}]) == 1


def test_stale_model_and_data_shrink_notify_and_events_can_be_left_out(tmp_path, topic):
    config = make_config(
        tmp_path, sns_topic_arn=topic["arn"], events=["serving_model_too_old", "data_shrink"]
    )
    assert notify.serving_model_too_old(config, "serving version is 20 days old (max 14)") == 1
    assert notify.data_shrink(config, "interactions shrank from 10,000 to 10 rows") == 1
    assert notify.gate_rejected(config, rejected_decision(), "arn:champion") == 0  # not in events
    subjects = sorted(m["Subject"] for m in topic["received"](2))
    assert subjects == [
        "[demo_retail] data-shrink guard stopped the run",
        "[demo_retail] serving model too old",
    ]


def test_an_unreachable_channel_is_logged_and_never_fails_the_task(tmp_path, topic, caplog):
    missing = topic["arn"].rsplit(":", 1)[0] + ":no-such-topic"
    config = make_config(tmp_path, sns_topic_arn=missing)
    assert notify.data_shrink(config, "x") == 0
    assert "NOTIFICATION FAILED: data_shrink via SnsNotifier" in caplog.text


def test_without_notifications_nothing_is_built(tmp_path):
    config = make_config(tmp_path)
    assert notify.failure_callbacks(config) == []
    assert notify.data_shrink(config, "x") == 0


@pytest.mark.parametrize(
    ("notifications", "key"),
    [
        ({"sns_topic_arn": "my-topic"}, "notifications.sns_topic_arn"),
        ({"email": ["not-an-address"]}, "notifications.email.0"),
        ({"events": ["on_sunday"]}, "notifications.events.0"),
        ({"rejections_in_a_row": 1}, "notifications.rejections_in_a_row"),
    ],
)
def test_bad_notification_settings_name_the_key(tmp_path, notifications, key):
    with pytest.raises(ConfigError, match=f": {key}: "):
        make_config(tmp_path, **notifications)
