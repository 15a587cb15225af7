"""The lifecycle DAGs end to end with dag.test(): erase_users and export against the local service,
moto S3 and a SQLite app DB.

One scenario: ingest and train; a deletion request in the app DB erases the user with the most
events (job COMPLETED, audit line, request marked done); a rerun for the same user starts no second
job and writes no second audit line; the monthly export writes every dataset, without the user;
the next ingest skips the user's rows although the app DB still has them (written nowhere, counted
as erased, reconcile still ok); the next model does not know the user.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import timedelta

import pytest

from tests.dags import e2e_support as support
from tests.dags.test_pipeline_e2e import START, day, run, seed
from tests.dags.test_pipeline_e2e import local_aws as local_aws  # the fixture

REQUESTS_TABLE = "deletion_requests"


def read_csv(s3, bucket: str, key: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())))


def keys_under(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture
def lifecycle_pipeline(s3_bucket, tmp_path, monkeypatch, request):
    name = "e2e_erase"
    days = 5
    seed(
        "sqlite",
        tmp_path,
        monkeypatch,
        request,
        f"{name}_app",
        users=400,
        days=days,
        end=START + timedelta(days=days),
    )
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as connection:
        connection.execute(
            f"CREATE TABLE {REQUESTS_TABLE} (user_id TEXT NOT NULL, requested_at TEXT NOT NULL, erased_at TEXT)"
        )
    path = support.write_config(
        tmp_path / "configs",
        name=name,
        bucket=s3_bucket,
        app_conn_id=f"{name}_app",
        erasure={"schedule": "0 4 * * *", "requests": {"table": REQUESTS_TABLE}},
        export={"ingestion_mode": "ALL"},
    )
    dags = support.load_dags(path, monkeypatch)
    dags.update(support.load_lifecycle_dags(path, monkeypatch))
    return dags, app_db


def busiest_user(app_db) -> str:
    """The user with the most events, on both sides of day 3 (so both ingests hold their rows)."""
    with sqlite3.connect(app_db) as connection:
        return connection.execute(
            "SELECT user_id FROM events GROUP BY user_id "
            "HAVING SUM(occurred_at < ?) > 0 AND SUM(occurred_at >= ?) > 0 ORDER BY COUNT(*) DESC LIMIT 1",
            (day(3), day(3)),
        ).fetchone()[0]


def recommendations(local_aws, campaign_arn: str, user: str) -> list[str]:
    answer = local_aws["runtime"].get_recommendations(campaignArn=campaign_arn, userId=user, numResults=25)
    return [item["itemId"] for item in answer["itemList"]]


def test_erase_a_user_then_export_ingest_and_retrain_without_them(local_aws, s3_bucket, lifecycle_pipeline):
    dags, app_db = lifecycle_pipeline
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]
    victim = busiest_user(app_db)
    prefix = config.s3.prefix

    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(3)})
    run(dags["train_deploy"], logical_date=None)
    campaign_arn = next(
        c["campaignArn"]
        for c in personalize.list_campaigns()["campaigns"]
        if c["name"] == config.campaign.name
    )
    cold = recommendations(local_aws, campaign_arn, "never-seen-user")
    assert recommendations(local_aws, campaign_arn, victim) != cold, "the first model must know the victim"

    # A deletion request in the app DB; the run reads it (no user_ids in the form).
    with sqlite3.connect(app_db) as connection:
        connection.execute(
            f"INSERT INTO {REQUESTS_TABLE} (user_id, requested_at) VALUES (?, '2026-03-04T10:00:00')",
            (victim,),
        )
    _, states = run(dags["erase_users"], logical_date=None)
    assert states["data_deletion_job"] == "success" and states["mark_requests_done"] == "success"
    group_arn = personalize.list_dataset_groups()["datasetGroups"]
    group_arn = next(g["datasetGroupArn"] for g in group_arn if g["name"] == config.dataset_group)
    jobs = personalize.list_data_deletion_jobs(datasetGroupArn=group_arn)["dataDeletionJobs"]
    assert len(jobs) == 1 and jobs[0]["status"] == "COMPLETED"
    job = personalize.describe_data_deletion_job(dataDeletionJobArn=jobs[0]["dataDeletionJobArn"])[
        "dataDeletionJob"
    ]
    assert job["numDeleted"] > 0
    audit_keys = keys_under(s3, s3_bucket, f"{prefix}/erasure/audit/")
    assert len(audit_keys) == 1
    audit = json.loads(s3.get_object(Bucket=s3_bucket, Key=audit_keys[0])["Body"].read())
    assert audit["job_arn"] == job["dataDeletionJobArn"] and audit["status"] == "COMPLETED"
    assert audit["users"] == 1 and audit["records_deleted"] == job["numDeleted"]
    assert audit["requested_by"] and audit["completed_at"]
    # The pipeline's own copies (day partitions, import staging) lost the user's rows too.
    assert audit["s3_rows_removed"]["interactions"] > 0
    with sqlite3.connect(app_db) as connection:
        (erased_at,) = connection.execute(f"SELECT erased_at FROM {REQUESTS_TABLE}").fetchone()
    assert erased_at is not None

    # The same user again from the form: the job is adopted, the audit line stays the first one.
    _, states = run(dags["erase_users"], logical_date=None, run_conf={"user_ids": [victim]})
    assert states["data_deletion_job"] == "success"
    assert len(personalize.list_data_deletion_jobs(datasetGroupArn=group_arn)["dataDeletionJobs"]) == 1
    assert keys_under(s3, s3_bucket, f"{prefix}/erasure/audit/") == audit_keys
    assert json.loads(s3.get_object(Bucket=s3_bucket, Key=audit_keys[0])["Body"].read()) == audit
    # A run with no pending request and an empty form erases nothing.
    _, states = run(dags["erase_users"], logical_date=None, run_conf={"user_ids": []})
    assert states["data_deletion_job"] == "skipped"

    # The monthly export: every dataset, the user's records gone, the locations in the index.
    run(dags["export"], logical_date=None)
    index = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"{prefix}/exports/latest.json")["Body"].read())
    assert set(index["datasets"]) == {"INTERACTIONS", "ITEMS", "USERS"}
    interactions = index["datasets"]["INTERACTIONS"]
    assert interactions["status"] == "ACTIVE"
    location = interactions["location"].removeprefix(f"s3://{s3_bucket}/")
    exported = read_csv(s3, s3_bucket, f"{location}{interactions['job_name']}/part-00000.csv")
    assert len(exported) > 1000 and victim not in {row["USER_ID"] for row in exported}
    export_jobs = personalize.list_dataset_export_jobs()["datasetExportJobs"]
    run(dags["export"], logical_date=None)  # a rerun in the month adopts the month's jobs
    assert len(personalize.list_dataset_export_jobs()["datasetExportJobs"]) == len(export_jobs) == 3

    # The next ingest: the app DB still has the user's rows; none is written anywhere, all are counted.
    _, states = run(dags["ingest"], logical_date=None, run_conf={"start": day(3), "end": day(5)})
    assert states["reconcile"] == "success"
    # Every day reconciles, the scrubbed ones too: they were not imported again (no doubled rows).
    latest = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"{prefix}/reconcile/latest.json")["Body"].read())
    assert [row["day"] for row in latest["rows"]] == [day(n) for n in range(5)]
    assert all(row["ok"] for row in latest["rows"]), latest["rows"]
    erased = 0
    for n in (3, 4):
        ledger_key = f"{prefix}/state/interactions/partitions/dt={day(n)}.json"
        erased += json.loads(s3.get_object(Bucket=s3_bucket, Key=ledger_key)["Body"].read())["erased"]
    with sqlite3.connect(app_db) as connection:
        (app_rows,) = connection.execute(
            "SELECT COUNT(*) FROM events WHERE user_id = ? AND occurred_at >= ?", (victim, day(3))
        ).fetchone()
    assert erased == app_rows > 0
    for key in keys_under(s3, s3_bucket, f"{prefix}/"):
        if key.endswith(".csv") and "/erasure/" not in key and "/exports/" not in key:
            body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode()
            assert victim not in {line.split(",")[0] for line in body.splitlines()}, key

    # The next model does not know the user: it answers them as a user it has never seen.
    _, states = run(
        dags["train_deploy"],
        logical_date=None,
        run_conf={"force_deploy": True, "force_reason": "deploy the model trained after the erasure"},
    )
    assert states[support.in_group(config, "deploy_campaign")] == "success"
    assert recommendations(local_aws, campaign_arn, victim) == recommendations(
        local_aws, campaign_arn, "never-seen-user"
    )
