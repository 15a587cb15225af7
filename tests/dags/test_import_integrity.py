"""Training data integrity (issue 11): every day imported exactly once, whatever fails.

Each test runs the ingest DAG with dag.test() against its own local Personalize service (whose
dataset files are read to count the records it holds per day) and the session's moto S3, and
checks per day: records in the dataset == rows the extraction wrote == app DB rows - quarantined.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import boto3
import pandas as pd
import pytest

from tests.dags import e2e_support as support
from tests.dags.test_pipeline_e2e import START, day, seed

DEADLINE_SECONDS = 300


@pytest.fixture
def own_personalize(personalize_endpoint, s3_endpoint, airflow_db, tmp_path, monkeypatch):
    """A local Personalize service of this test's own (its state dir is read to count records),
    with a gate that can hold its import jobs in CREATE PENDING."""
    from include.local_personalize.server import start_in_thread

    server = start_in_thread(tmp_path / "personalize", transition_delay=0.01)
    gate = threading.Event()
    gate.set()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", support.aws_connection(server.url, s3_endpoint))
    support.ensure_pool()

    def hold_imports() -> None:
        """Park the service's one job lane until `gate` is set: new import jobs stay CREATE PENDING."""
        gate.clear()
        server.backend.worker.submit(lambda: gate.wait(DEADLINE_SECONDS), job=True)

    yield {
        "client": boto3.client("personalize", endpoint_url=server.url, region_name="us-east-1"),
        "state": tmp_path / "personalize",
        "hold_imports": hold_imports,
        "release": gate.set,
        "url": server.url,
    }
    gate.set()
    server.stop()


@pytest.fixture
def pipeline(own_personalize, s3_bucket, tmp_path, monkeypatch, request):
    def make(name: str, *, users: int, days: int):
        seed(
            "sqlite",
            tmp_path,
            monkeypatch,
            request,
            f"{name}_app",
            users=users,
            days=days,
            end=START + timedelta(days=days),
        )
        path = support.write_config(
            tmp_path / "configs", name=name, bucket=s3_bucket, app_conn_id=f"{name}_app"
        )
        return support.load_dags(path, monkeypatch), path

    return make


def run_ingest(dags, **kwargs):
    dag_run = dags["ingest"].test(**kwargs)
    states = support.task_states(dag_run)
    assert str(dag_run.state) == "success", f"ingest ended {dag_run.state}: {states}"
    return states


def app_db_days(tmp_path) -> Counter:
    with sqlite3.connect(tmp_path / "app.db") as connection:
        rows = connection.execute("SELECT substr(occurred_at, 1, 10), COUNT(*) FROM events GROUP BY 1")
        return Counter({d: n for d, n in rows})


def dataset_days(own_personalize, group: str) -> Counter:
    """Records per UTC day in the local service's INTERACTIONS dataset (its bulk data file)."""
    path = own_personalize["state"] / "data" / group / "INTERACTIONS.csv"
    if not path.exists():
        return Counter()
    frame = pd.read_csv(path, dtype=str)
    stamps = pd.to_datetime(frame["TIMESTAMP"].astype(int), unit="s", utc=True)
    return Counter(stamps.dt.strftime("%Y-%m-%d").value_counts().to_dict())


def quarantined_days(s3, bucket: str, prefix: str) -> Counter:
    """Rows per day in the quarantine files (`.../quarantine/interactions/dt=YYYY-MM-DD/...csv`)."""
    counts = Counter()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/quarantine/interactions/"
    )
    for page in pages:
        for obj in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            counts[re.search(r"dt=(\d{4}-\d{2}-\d{2})/", obj["Key"]).group(1)] += (
                len(list(csv.reader(io.StringIO(text)))) - 1
            )
    return counts


def interactions_jobs(client, group: str) -> list[dict]:
    groups = client.list_dataset_groups()["datasetGroups"]
    group_arn = next(g["datasetGroupArn"] for g in groups if g["name"] == group)
    datasets = client.list_datasets(datasetGroupArn=group_arn)["datasets"]
    arn = next(d["datasetArn"] for d in datasets if d["datasetType"].upper() == "INTERACTIONS")
    jobs = client.list_dataset_import_jobs(datasetArn=arn)["datasetImportJobs"]
    return sorted(jobs, key=lambda j: j["creationDateTime"])


def assert_each_day_once(own_personalize, config, s3, tmp_path, expected_days: list[str], quarantined=None):
    held = dataset_days(own_personalize, config.dataset_group)
    source = app_db_days(tmp_path)
    bad = quarantined if quarantined is not None else quarantined_days(s3, config.s3.bucket, config.s3.prefix)
    assert sorted(held) == expected_days
    for d in expected_days:
        assert held[d] == source[d] - bad[d], (
            f"{d}: dataset {held[d]}, app DB {source[d]}, quarantined {bad[d]}"
        )


def wait_for(predicate, what: str):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.parametrize("orphan", ["finished", "still_running"])
def test_ingest_killed_while_its_import_runs_then_next_interval_imports_each_day_once(
    orphan, own_personalize, pipeline, local_s3, tmp_path
):
    dags, path = pipeline(f"kill_{orphan}", users=900, days=3)
    config, client = dags["config"], own_personalize["client"]
    run_ingest(dags, logical_date=START + timedelta(days=1))
    assert len(interactions_jobs(client, config.dataset_group)) == 1

    # Day 2 in a separate process running dag.test(); killed -9 while its import job is pending.
    own_personalize["hold_imports"]()
    script = textwrap.dedent(
        f"""
        import importlib.util
        from datetime import datetime
        from include.pipeline.config import load_config
        spec = importlib.util.spec_from_file_location("dags_under_test", {str(support.DAG_FILE)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.build_ingest(load_config({str(path)!r}))
        dag.test(logical_date=datetime.fromisoformat({(START + timedelta(days=2)).isoformat()!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{support.REPO_ROOT}{os.pathsep}{support.REPO_ROOT / 'plugins'}"}
    log = open(tmp_path / "killed_run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=support.REPO_ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        job = wait_for(
            lambda: len(jobs := interactions_jobs(client, config.dataset_group)) == 2 and jobs[-1],
            "the second run's import job",
        )
        assert job["status"] == "CREATE PENDING"
        os.killpg(process.pid, signal.SIGKILL)  # the run's process and anything it started
        process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(60)
        log.close()
    if orphan == "finished":
        own_personalize["release"]()  # the job goes on in Personalize, whatever happened to the run
        wait_for(lambda: interactions_jobs(client, config.dataset_group)[-1]["status"] == "ACTIVE", "the job")
    else:
        # The next run plans while the orphan is still pending: it must adopt it and wait on it. The
        # gate opens once that run has written the manifest of its own new day (planning is done).
        new_day = day(2).replace("-", "")
        folder = f"{config.s3.prefix}/manifests/interactions/"

        def release_after_planning():
            wait_for(
                lambda: any(
                    new_day in o["Key"]
                    for o in local_s3.list_objects_v2(Bucket=config.s3.bucket, Prefix=folder).get(
                        "Contents", []
                    )
                ),
                "the next run's plan",
            )
            own_personalize["release"]()

        threading.Thread(target=release_after_planning, daemon=True).start()

    run_ingest(dags, logical_date=START + timedelta(days=3))
    jobs = interactions_jobs(client, config.dataset_group)
    assert [j["status"] for j in jobs] == ["ACTIVE"] * 3, jobs
    assert_each_day_once(own_personalize, config, local_s3, tmp_path, [day(0), day(1), day(2)])


@pytest.fixture
def local_s3(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


def _delete_prefix(s3, bucket: str, prefix: str) -> int:
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    return len(keys)


def test_lost_state_prefix_or_bucket_imports_only_the_new_day_never_full(
    own_personalize, pipeline, local_s3, tmp_path
):
    dags, _ = pipeline("lost_state", users=900, days=4)
    config, client, bucket = dags["config"], own_personalize["client"], dags["config"].s3.bucket
    for n in (1, 2):
        run_ingest(dags, logical_date=START + timedelta(days=n))
    quarantined = quarantined_days(local_s3, bucket, config.s3.prefix)

    # 1. Every object under the state prefix deleted (a lifecycle rule, a delete, a prefix change).
    assert _delete_prefix(local_s3, bucket, f"{config.s3.prefix}/state/") > 0
    run_ingest(dags, logical_date=START + timedelta(days=3))
    quarantined |= quarantined_days(local_s3, bucket, config.s3.prefix)
    assert_each_day_once(own_personalize, config, local_s3, tmp_path, [day(0), day(1), day(2)], quarantined)

    # 2. Local S3 restarted (moto keeps everything in memory): the bucket comes back empty.
    _delete_prefix(local_s3, bucket, "")
    local_s3.delete_bucket(Bucket=bucket)
    local_s3.create_bucket(Bucket=bucket)
    run_ingest(dags, logical_date=START + timedelta(days=4))
    quarantined |= quarantined_days(local_s3, bucket, config.s3.prefix)
    assert_each_day_once(own_personalize, config, local_s3, tmp_path, [day(n) for n in range(4)], quarantined)
    modes = [j["importMode"] for j in interactions_jobs(client, config.dataset_group)]
    assert modes == ["FULL", "INCREMENTAL", "INCREMENTAL", "INCREMENTAL"], modes


def test_full_import_covers_every_day_in_s3_even_without_the_ledger(
    own_personalize, pipeline, local_s3, tmp_path
):
    dags, _ = pipeline("full_history", users=150, days=31)
    config, client = dags["config"], own_personalize["client"]
    run_ingest(dags, logical_date=None, run_conf={"start": day(0), "end": day(30)})
    assert_each_day_once(own_personalize, config, local_s3, tmp_path, [day(n) for n in range(30)])
    _delete_prefix(local_s3, config.s3.bucket, f"{config.s3.prefix}/state/")

    run_ingest(dags, logical_date=None, run_conf={"start": day(30), "end": day(31), "full_import": True})
    jobs = interactions_jobs(client, config.dataset_group)
    assert [j["importMode"] for j in jobs] == ["FULL", "FULL"]
    assert_each_day_once(own_personalize, config, local_s3, tmp_path, [day(n) for n in range(31)])


def test_full_import_that_would_shrink_fails_and_train_deploy_refuses_a_halved_dataset(
    own_personalize, pipeline, local_s3, tmp_path
):
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.tasks import ingest, training

    dags, _ = pipeline("shrink", users=400, days=5)
    config, bucket = dags["config"], dags["config"].s3.bucket
    run_ingest(dags, logical_date=None, run_conf={"start": day(0), "end": day(4)})
    states = support.task_states(dags["train_deploy"].test(logical_date=None))
    assert states[support.in_group(config, "train")] == "success", states
    before = sum(dataset_days(own_personalize, config.dataset_group).values())

    # Three of the four days' extracts are lost; a FULL import would keep only what is left.
    for n in (1, 2, 3):
        _delete_prefix(local_s3, bucket, f"{config.s3.prefix}/interactions/dt={day(n)}/")
    conf = {"start": day(4), "end": day(5), "full_import": True}
    dag_run = dags["ingest"].test(logical_date=None, run_conf=conf)
    states = support.task_states(dag_run)
    assert states["plan_imports"] == "failed" and str(dag_run.state) == "failed", states
    assert sum(dataset_days(own_personalize, config.dataset_group).values()) == before  # untouched
    resources = _resources(own_personalize["client"], config)
    with pytest.raises(AirflowFailException, match=rf"holds {before} now") as refused:
        ingest.plan_dataset_imports(config, resources, {}, conf)
    assert "allow_shrink" in str(refused.value)

    # The form says allow_shrink: the dataset is cut to two days of five.
    run_ingest(dags, logical_date=None, run_conf={**conf, "allow_shrink": True})
    now = sum(dataset_days(own_personalize, config.dataset_group).values())
    assert now < before * (1 - config.gate.max_data_shrink)
    dag_run = dags["train_deploy"].test(logical_date=None)
    states = support.task_states(dag_run)
    assert states["plan_training"] == "failed", states
    assert states.get(support.in_group(config, "train")) != "success", states
    with pytest.raises(AirflowFailException) as stopped:
        training.check_data_shrink(config, config.solutions[0].name, now, None)
    assert f"holds {now} records now" in str(stopped.value) and f"trained on {before}" in str(stopped.value)


def _resources(client, config) -> dict:
    groups = client.list_dataset_groups()["datasetGroups"]
    group_arn = next(g["datasetGroupArn"] for g in groups if g["name"] == config.dataset_group)
    datasets = client.list_datasets(datasetGroupArn=group_arn)["datasets"]
    return {"dataset_arns": {d["datasetType"].upper(): d["datasetArn"] for d in datasets}, "new_datasets": []}


def test_reconcile_command_prints_the_table_writes_latest_json_and_exits_by_the_result(
    own_personalize, pipeline, local_s3, tmp_path, capsys
):
    import json

    from include.pipeline import reconcile

    dags, _ = pipeline("reconciled", users=900, days=2)
    config = dags["config"]
    run_ingest(dags, logical_date=None, run_conf={"start": day(0), "end": day(2)})
    assert reconcile.main(["--config", config.name]) == 0
    out = capsys.readouterr().out
    assert day(0) in out and "0 mismatch(es)" in out
    body = json.loads(
        local_s3.get_object(Bucket=config.s3.bucket, Key=f"{config.s3.prefix}/reconcile/latest.json")[
            "Body"
        ].read()
    )
    assert body["config"] == config.name and datetime.fromisoformat(body["generated_at"]).tzinfo is not None
    assert [r["day"] for r in body["rows"]] == [day(0), day(1)]
    assert set(body["rows"][0]) == {"day", "app_db", "imported", "quarantined", "ok"}
    source = app_db_days(tmp_path)
    assert all(
        r["ok"] and r["app_db"] == source[r["day"]] == r["imported"] + r["quarantined"] for r in body["rows"]
    )

    # A day's rows changed in the app DB after it was imported: the count no longer matches.
    with sqlite3.connect(tmp_path / "app.db") as connection:
        connection.execute("DELETE FROM events WHERE substr(occurred_at, 1, 10) = ?", (day(1),))
    assert reconcile.main(["--config", config.name]) == 1
    assert "1 mismatch(es)" in capsys.readouterr().out


def test_late_rows_are_not_imported_twice_reconcile_fails_the_run_and_full_import_repairs(
    own_personalize, pipeline, local_s3, tmp_path
):
    dags, _ = pipeline("late_rows", users=900, days=2)
    config, client = dags["config"], own_personalize["client"]
    conf = {"start": day(0), "end": day(2)}
    run_ingest(dags, logical_date=None, run_conf=conf)
    held = dataset_days(own_personalize, config.dataset_group)
    with sqlite3.connect(tmp_path / "app.db") as connection:  # ten events of day 0 arrive late
        connection.execute(
            "INSERT INTO events (user_id, item_id, event_type, event_value, occurred_at) "
            "SELECT user_id, item_id, event_type, event_value, "
            "strftime('%Y-%m-%d %H:%M:%S', occurred_at, '+1 seconds') FROM events "
            "WHERE substr(occurred_at, 1, 10) = ? AND substr(occurred_at, 12, 2) < '23' LIMIT 10",
            (day(0),),
        )

    dag_run = dags["ingest"].test(logical_date=None, run_conf=conf)
    states = support.task_states(dag_run)
    assert states["reconcile"] == "failed" and str(dag_run.state) == "failed", states
    assert len(interactions_jobs(client, config.dataset_group)) == 1  # day 0 not imported again
    assert dataset_days(own_personalize, config.dataset_group) == held

    run_ingest(dags, logical_date=None, run_conf={**conf, "full_import": True})
    assert [j["importMode"] for j in interactions_jobs(client, config.dataset_group)] == ["FULL", "FULL"]
    assert_each_day_once(own_personalize, config, local_s3, tmp_path, [day(0), day(1)])
