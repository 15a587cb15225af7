"""What a dataset holds, by Personalize's import jobs joined with manifests (pure; no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.pipeline.import_ledger import Ledger
from include.pipeline.imports import join_jobs, reconcile_ledger
from include.pipeline.reconcile import format_table, reconcile_rows

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def summary(name: str, status: str, mode: str = "INCREMENTAL", minute: int = 0) -> dict:
    return {
        "jobName": name,
        "datasetImportJobArn": f"arn:job/{name}",
        "status": status,
        "importMode": mode,
        "creationDateTime": T0 + timedelta(minutes=minute),
    }


def manifest(name: str, **records: int) -> dict:
    parts = {f"dt=2026-03-{int(d[1:]):02d}": n for d, n in records.items()}
    return {"job_name": name, "partitions": {p: f"fp{p[-2:]}" for p in parts}, "partition_records": parts}


def test_attempt_names_map_to_the_manifest_failed_jobs_hold_nothing_running_ones_claim():
    record = join_jobs(
        [
            summary("imp-a", "ACTIVE", "FULL", 0),
            summary("imp-b", "CREATE FAILED", minute=1),
            summary("imp-b-a2", "ACTIVE", minute=2),  # the operator's second attempt of imp-b
            summary("imp-c", "CREATE FAILED", minute=3),
            summary("imp-d", "CREATE IN_PROGRESS", minute=4),
        ],
        [
            manifest("imp-a", d1=10),
            manifest("imp-b", d2=20),
            manifest("imp-c", d3=30),
            manifest("imp-d", d4=40),
        ],
    )
    assert [j.source for j in record.jobs] == ["manifest"] * 5
    assert record.held == {"dt=2026-03-01": 10, "dt=2026-03-02": 20}
    assert sorted(record.claimed) == ["dt=2026-03-01", "dt=2026-03-02", "dt=2026-03-04"]  # day 3 failed
    assert [j.name for j in record.running] == ["imp-d"] and record.held_records == 30


def test_an_active_full_import_replaces_what_came_before():
    record = join_jobs(
        [
            summary("one", "ACTIVE", "FULL", 0),
            summary("two", "ACTIVE", minute=1),
            summary("all", "ACTIVE", "FULL", 2),
        ],
        [manifest("one", d1=5), manifest("two", d2=6), manifest("all", d1=5, d3=7)],
    )
    assert record.held == {"dt=2026-03-01": 5, "dt=2026-03-03": 7}
    assert sorted(record.claimed) == ["dt=2026-03-01", "dt=2026-03-03"]


def test_jobs_without_manifest_are_mapped_by_ledger_data_location_or_name():
    locations = {"arn:job/x-interactions-20260305-0123456789": "s3://b/p/interactions/dt=2026-03-05/"}
    record = join_jobs(
        [
            summary("x-interactions-20260305-0123456789", "ACTIVE", minute=1),
            summary("x-interactions-20260306-20260308-abcdef0123-a2", "ACTIVE", minute=2),
            summary("legacy", "ACTIVE", minute=3),
        ],
        [],
        ledger_imports=[
            {"job_name": "legacy", "job_arn": "arn:job/legacy", "partitions": {"dt=2026-03-09": "f"}}
        ],
        data_location=locations.get,
    )
    assert [j.source for j in record.jobs] == ["data location", "job name", "ledger"]
    assert record.claimed == {
        "dt=2026-03-05": None,
        "dt=2026-03-06": None,
        "dt=2026-03-07": None,
        "dt=2026-03-08": None,
        "dt=2026-03-09": "f",
    }
    assert record.held == {} and len(record.unknown_counts) == 3  # counts unknown, never guessed


def test_ledger_is_rebuilt_from_personalize_and_overruled_when_it_disagrees(s3_client, s3_bucket):
    ledger = Ledger(s3_bucket, "p")
    stale = {"job_name": "gone", "partitions": {"dt=2026-03-01": "fp01"}, "records": 10}
    ledger.record_import(s3_client, "INTERACTIONS", stale, "arn:job/gone")
    record = join_jobs(
        [summary("gone", "CREATE FAILED"), summary("kept", "ACTIVE", minute=1)], [manifest("kept", d2=20)]
    )

    warnings = reconcile_ledger(s3_client, ledger, "INTERACTIONS", record)

    (warning,) = warnings
    assert "the ledger says job gone (arn:job/gone) imported ['dt=2026-03-01']" in warning
    assert "Personalize says that job is CREATE FAILED" in warning
    assert ledger.imported_fingerprints(s3_client, "INTERACTIONS") == {"dt=2026-03-02": "fp02"}
    assert reconcile_ledger(s3_client, ledger, "INTERACTIONS", record) == []  # in line now


def test_reconcile_rows_flag_duplicates_missing_days_and_accept_carried_ones():
    rows = reconcile_rows(
        {"dt=2026-03-01": 100, "dt=2026-03-02": 50, "dt=2026-03-03": 70, "dt=2026-03-04": 30},
        {"dt=2026-03-01": 99, "dt=2026-03-02": 100},
        {"dt=2026-03-01": 1},
        extracted={"dt=2026-03-01": 99, "dt=2026-03-02": 50, "dt=2026-03-03": 70, "dt=2026-03-04": 30},
        claimed={"dt=2026-03-01", "dt=2026-03-02"},
    )
    assert [(r.day, r.ok) for r in rows] == [
        ("2026-03-01", True),
        ("2026-03-02", False),
        ("2026-03-03", True),  # 100 records waiting for the 1000-record minimum: carried
        ("2026-03-04", True),
    ]
    assert "duplicated" in rows[1].note and "carried" in rows[2].note
    assert "1 mismatch(es)" in format_table(rows)
    big = reconcile_rows({"dt=2026-03-03": 5000}, {}, {}, extracted={"dt=2026-03-03": 5000}, claimed=set())
    assert not big[0].ok and big[0].note == "not imported"
