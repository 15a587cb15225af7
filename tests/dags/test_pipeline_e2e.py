"""The three DAGs end to end with dag.test(): local Personalize service, moto S3, SQLite and PostgreSQL.

One scenario per app database, in order: first ingest + train creates everything and deploys an
ACTIVE campaign that recommends; a worse challenger (popularity-count) is rejected and the
campaign keeps the champion; an UPDATE run deploys through UpdateCampaign; batch inference writes
recommendations. Data is small (a few hundred users, a few thousand events) to stay quick.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from tests.dags import e2e_support as support

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 5
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def day(n: int) -> str:
    return datetime.fromtimestamp(START.timestamp() + n * 86400, UTC).date().isoformat()


@pytest.fixture
def local_aws(personalize_endpoint, s3_endpoint, airflow_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", support.aws_connection(personalize_endpoint, s3_endpoint))
    support.ensure_pool()
    return {
        "personalize": boto3.client(
            "personalize", endpoint_url=personalize_endpoint, region_name="us-east-1"
        ),
        "runtime": boto3.client(
            "personalize-runtime", endpoint_url=personalize_endpoint, region_name="us-east-1"
        ),
        "s3": boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1"),
    }


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def seed(
    kind: str, tmp_path, monkeypatch, request, conn_id: str, users: int, days: int, end: datetime
) -> str:
    from include.demo_data import generate

    if kind == "sqlite":
        url = str(tmp_path / "app.db")
        generate(url, users=users, items=150, days=days, seed=11, end=end)
        table_prefix = ""
    else:
        schema = f"e2e_dags_{os.getpid()}"
        generate(POSTGRES_URL, users=users, items=150, days=days, seed=11, end=end, schema=schema)
        request.addfinalizer(lambda: _drop_schema(schema))
        url = POSTGRES_URL
        table_prefix = schema + "."
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", support.app_db_connection(url))
    return table_prefix


@pytest.fixture
def seeded_pipeline(s3_bucket, tmp_path, monkeypatch, request):
    """Makes the demo app DB with `days` days of events from START, and the pipeline's DAGs reading it.

    Each call returns (DAGs, config path, config overrides); a test that rewrites the config passes
    the overrides again, so it keeps reading the same tables.
    """

    def make(kind: str, name: str, *, users: int, days: int) -> tuple[dict, Path, dict]:
        end = START + timedelta(days=days)
        tables = seed(kind, tmp_path, monkeypatch, request, f"{name}_app", users=users, days=days, end=end)
        overrides = {}
        if tables:
            for dataset, table in (("interactions", "events"), ("items", "items"), ("users", "users")):
                overrides[f"datasets.{dataset}.table"] = tables + table
        path = support.write_config(
            tmp_path / "configs", name=name, bucket=s3_bucket, app_conn_id=f"{name}_app", **overrides
        )
        return support.load_dags(path, monkeypatch), path, overrides

    return make


def run(dag, **kwargs):
    dag_run = dag.test(**kwargs)
    states = support.task_states(dag_run)
    assert str(dag_run.state) == "success", f"{dag.dag_id} ended {dag_run.state}: {states}"
    return dag_run, states


def latest_asset_extra(asset_name: str) -> dict:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name)
            .order_by(AssetEvent.id.desc())
        ).first()
        assert event is not None, f"no event of asset {asset_name}"
        return dict(event.extra)


def campaign(local_aws, name):
    client = local_aws["personalize"]
    arn = next(c["campaignArn"] for c in client.list_campaigns()["campaigns"] if c["name"] == name)
    return client.describe_campaign(campaignArn=arn)["campaign"]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_ingest_train_gate_update_and_batch(kind, local_aws, s3_bucket, monkeypatch, seeded_pipeline):
    from include.pipeline.history import history_key, read_history

    name = f"e2e_{kind}"
    dags, path, overrides = seeded_pipeline(kind, name, users=900, days=DAYS)
    config_dir = path.parent
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]

    # 1. A manual ingest (no logical date, as from the UI) of the first three days, then training.
    _, states = run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(3)})
    assert states["publish_interactions"] == "success"
    _, states = run(dags["train_deploy"], logical_date=None)
    group = config.solutions[0].name
    assert states[f"{group}.deploy_campaign"] == "success" and states[f"{group}.keep_champion"] == "skipped"
    first = campaign(local_aws, config.campaign.name)
    assert first["status"] == "ACTIVE"
    champion = first["solutionVersionArn"]
    # Nothing trains or deploys around the gate.
    assert first["campaignConfig"]["syncWithLatestSolutionVersion"] is False
    solution_arn = champion.rsplit("/", 1)[0]
    assert personalize.describe_solution(solutionArn=solution_arn)["solution"]["performAutoTraining"] is False
    recs = local_aws["runtime"].get_recommendations(
        campaignArn=first["campaignArn"], userId=_known_user(config)
    )
    assert recs["itemList"], "the deployed campaign returned no recommendations"
    # The model asset tells downstream what it was trained on.
    model_extra = latest_asset_extra(f"{config.name}_model")[group]
    assert model_extra["solution_version_arn"] == champion and model_extra["deployed"] is True
    assert model_extra["training_data"]["newest_import_finished"]
    # No new data since the serving version: the cost guard skips training.
    _, states = run(dags["train_deploy"], logical_date=None)
    assert states["plan_training"] == "success" and states[f"{group}.train"] == "skipped", states

    # 2. New data, and a worse challenger (popularity-count): rejected, the campaign keeps the champion.
    run(dags["ingest"], logical_date=None, run_conf={"start": day(3), "end": day(4)})
    worse_path = support.write_config(
        config_dir,
        name=name,
        bucket=s3_bucket,
        app_conn_id=f"{name}_app",
        **overrides,
        **{"solution.name": f"{config.dataset_group}-pop", "solution.recipe": "aws-popularity-count"},
    )
    worse = support.load_dags(worse_path, monkeypatch)
    pop = f"{config.dataset_group}-pop"
    _, states = run(worse["train_deploy"], logical_date=None)
    assert states[f"{pop}.keep_champion"] == "success" and states[f"{pop}.deploy_campaign"] == "skipped", (
        states
    )
    assert campaign(local_aws, config.campaign.name)["solutionVersionArn"] == champion
    # The rejected challenger was trained on this data: the next run does not pay to train it again.
    _, states = run(worse["train_deploy"], logical_date=None)
    assert states["plan_training"] == "success" and states[f"{pop}.train"] == "skipped", states

    # 3. More data; an UPDATE version of the champion's solution is deployed through UpdateCampaign.
    support.write_config(config_dir, name=name, bucket=s3_bucket, app_conn_id=f"{name}_app", **overrides)
    dags = support.load_dags(path, monkeypatch)
    run(dags["ingest"], logical_date=None, run_conf={"start": day(4), "end": day(5)})
    _, states = run(dags["train_deploy"], logical_date=None, run_conf={"training_mode": "UPDATE"})
    assert states[f"{group}.deploy_campaign"] == "success", states
    updated = campaign(local_aws, config.campaign.name)
    assert updated["solutionVersionArn"] != champion
    assert (
        personalize.describe_solution_version(solutionVersionArn=updated["solutionVersionArn"])[
            "solutionVersion"
        ]["trainingMode"]
        == "UPDATE"
    )
    assert updated["latestCampaignUpdate"]["status"] == "ACTIVE"

    history = read_history(s3, s3_bucket, history_key(config.s3.prefix))
    assert [r["decision"]["verdict"] for r in history] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert [r["deployed"] for r in history] == [True, False, True]

    # A dry run trains and evaluates (here forced past the cost guard) but leaves the campaign alone.
    dry_conf = {"dry_run": True, "force_deploy": True, "force_reason": "what would the gate say?"}
    _, states = run(dags["train_deploy"], logical_date=None, run_conf=dry_conf)
    assert states[f"{group}.keep_champion"] == "success" and states[f"{group}.deploy_campaign"] == "skipped"
    assert campaign(local_aws, config.campaign.name)["solutionVersionArn"] == updated["solutionVersionArn"]
    last = read_history(s3, s3_bucket, history_key(config.s3.prefix))[-1]
    assert last["dry_run"] is True and last["deployed"] is False

    # 4. Batch recommendations for every user from the served version.
    _, states = run(dags["batch_inference"], logical_date=None)
    assert states[f"{group}.publish_output"] == "success"


def _known_user(config) -> str:
    from include.pipeline.extract_sql import most_active

    return most_active(config, "USER_ID", 1)[0]


def _bucket_state(s3, bucket: str) -> dict[str, str]:
    """Every object and its ETag, but the reconcile report (rewritten each run with its time)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        o["Key"]: o["ETag"]
        for page in pages
        for o in page.get("Contents", [])
        if not o["Key"].endswith("/reconcile/latest.json")
    }


def test_backfill_three_intervals_then_rerun_creates_nothing_new(local_aws, s3_bucket, seeded_pipeline):
    from include.pipeline.import_ledger import Ledger

    dags, _, _ = seeded_pipeline("sqlite", "e2e_backfill", users=900, days=3)
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]
    logical_dates = [START + timedelta(days=n) for n in (1, 2, 3)]  # runs own the intervals [d-1, d)

    for logical_date in logical_dates:
        _, states = run(dags["ingest"], logical_date=logical_date)
        assert states["publish_interactions"] == "success", states
        assert states["extract_interactions[0]"] == "success", states  # one mapped task per day

    ledger = Ledger(s3_bucket, config.s3.prefix)
    partitions = ledger.partitions(s3, "INTERACTIONS")
    assert [p.name for p in partitions] == [f"dt={day(n)}" for n in range(3)]
    assert all(p.records >= 1000 for p in partitions)
    group = next(
        g for g in personalize.list_dataset_groups()["datasetGroups"] if g["name"] == config.dataset_group
    )
    datasets = personalize.list_datasets(datasetGroupArn=group["datasetGroupArn"])["datasets"]
    interactions = next(d["datasetArn"] for d in datasets if d["datasetType"].upper() == "INTERACTIONS")
    jobs = personalize.list_dataset_import_jobs(datasetArn=interactions)["datasetImportJobs"]
    assert len(jobs) == 3
    before = _bucket_state(s3, s3_bucket)
    # Items and users did not change over the three days: one snapshot copy each, not three.
    for dataset in ("items", "users"):
        folders = {k.rsplit("/", 2)[1] for k in before if k.startswith(f"{config.s3.prefix}/{dataset}/")}
        assert folders == {f"dt={day(1)}"}, (dataset, folders)

    for logical_date in logical_dates:
        _, states = run(dags["ingest"], logical_date=logical_date)
        assert states["publish_interactions"] == "skipped", states  # nothing new landed: no asset event
        # The day is in S3 and Personalize holds it: no extraction task at all (an empty mapping).
        assert states["extract_interactions"] == "skipped", states

    assert _bucket_state(s3, s3_bucket) == before
    assert len(personalize.list_dataset_import_jobs(datasetArn=interactions)["datasetImportJobs"]) == 3
    all_jobs = [
        j
        for d in datasets
        for j in personalize.list_dataset_import_jobs(datasetArn=d["datasetArn"])["datasetImportJobs"]
    ]
    assert len(all_jobs) == 5  # three interaction intervals, one items and one users snapshot
    solutions = personalize.list_solutions(datasetGroupArn=group["datasetGroupArn"])["solutions"]
    assert all(
        not personalize.list_solution_versions(solutionArn=s["solutionArn"])["solutionVersions"]
        for s in solutions
    )


def test_interval_below_the_import_minimum_is_carried_into_the_next_run(
    local_aws, s3_bucket, seeded_pipeline
):
    from include.pipeline.import_ledger import Ledger

    dags, _, _ = seeded_pipeline("sqlite", "e2e_carry", users=180, days=2)
    config = dags["config"]
    ledger = Ledger(s3_bucket, config.s3.prefix)

    _, states = run(dags["ingest"], logical_date=START + timedelta(days=1))
    first_day = ledger.partitions(local_aws["s3"], "INTERACTIONS")[0]
    assert 0 < first_day.records < 1000, "the test needs a first day below Personalize's import minimum"
    assert states["publish_interactions"] == "skipped"  # nothing landed: no asset event, nothing lost
    assert ledger.imported_fingerprints(local_aws["s3"], "INTERACTIONS") == {}

    _, states = run(dags["ingest"], logical_date=START + timedelta(days=2))
    assert states["publish_interactions"] == "success"
    (record,) = ledger.imports(local_aws["s3"], "INTERACTIONS")
    assert sorted(record["partitions"]) == [f"dt={day(0)}", f"dt={day(1)}"]
    assert record["records"] == sum(p.records for p in ledger.partitions(local_aws["s3"], "INTERACTIONS"))
    job = local_aws["personalize"].describe_dataset_import_job(datasetImportJobArn=record["job_arn"])
    assert job["datasetImportJob"]["status"] == "ACTIVE"


def test_train_deploy_run_fails_at_once_on_bad_params(local_aws, seeded_pipeline):
    """finish (all_done) is the only leaf: a run whose params check failed must still fail."""
    dags, _, _ = seeded_pipeline("sqlite", "e2e_badform", users=30, days=1)
    dag_run = dags["train_deploy"].test(run_conf={"force_deploy": True})  # no force_reason
    states = support.task_states(dag_run)
    assert states["check_params"] == "failed", states
    assert states["plan_training"] == "upstream_failed", states
    assert str(dag_run.state) == "failed", states
