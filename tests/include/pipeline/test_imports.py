"""Import planning: small intervals carried (never lost), large ones split, nothing imported twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.pipeline.days import whole_days
from include.pipeline.import_ledger import DataFile, Ledger, Partition
from include.pipeline.imports import ImportPlanError, data_location, plan_imports


def part(day: int, records: int, *sizes: int, tag: str = "a") -> Partition:
    name = f"dt=2026-01-{day:02d}"
    files = tuple(
        DataFile(f"p/interactions/{name}/part-{i:05d}.csv", size, f"{tag}{day}{i}")
        for i, size in enumerate(sizes or (100,))
    )
    return Partition(name, records, files, f"p/interactions/{name}/")


def test_interval_below_the_minimum_is_carried_then_imported_with_the_next():
    first = plan_imports([part(1, 400)], {}, job_prefix="x")
    assert first.batches == [] and first.carried == ["dt=2026-01-01"] and first.carried_records == 400
    second = plan_imports([part(1, 400), part(2, 700)], {}, job_prefix="x")
    (batch,) = second.batches
    assert set(batch.partitions) == {"dt=2026-01-01", "dt=2026-01-02"} and batch.records == 1100
    assert batch.folder is None  # two partitions: staged into one folder


def test_imported_partitions_are_not_imported_again_but_changed_ones_are():
    p1, p2 = part(1, 1500), part(2, 1500)
    imported = {p1.name: p1.fingerprint, p2.name: p2.fingerprint}
    assert plan_imports([p1, p2], imported, job_prefix="x").batches == []
    changed = part(2, 1600, tag="b")
    plan = plan_imports([p1, changed], imported, job_prefix="x")
    assert [list(b.partitions) for b in plan.batches] == [["dt=2026-01-02"]]
    assert plan.changed == ["dt=2026-01-02"] and plan.up_to_date == ["dt=2026-01-01"]


def test_one_whole_partition_is_imported_from_its_own_folder():
    (batch,) = plan_imports([part(3, 2000)], {}, job_prefix="x").batches
    assert batch.folder == "p/interactions/dt=2026-01-03/" and batch.import_mode == "INCREMENTAL"


def test_full_reimports_everything_first_job_full():
    p1, p2 = part(1, 1500), part(2, 1500)
    imported = {p1.name: p1.fingerprint, p2.name: p2.fingerprint}
    plan = plan_imports([p1, p2], imported, job_prefix="x", full=True)
    assert [b.import_mode for b in plan.batches] == ["FULL"]
    assert set(plan.batches[0].partitions) == {p1.name, p2.name}


def test_too_large_is_split_into_balanced_jobs_within_the_limit_and_none_is_tiny():
    big = part(1, 100_000, *([300] * 7))  # 2100 bytes, limit 1000
    plan = plan_imports([big], {}, job_prefix="x", max_incremental_bytes=1000)
    sizes = [b.bytes for b in plan.batches]
    assert all(size <= 1000 for size in sizes) and sum(sizes) == 2100
    assert min(sizes) >= 2100 / len(sizes) - 300
    files = [f for b in plan.batches for f in b.files]
    assert sorted(files, key=lambda f: f.key) == sorted(
        big.files, key=lambda f: f.key
    )  # each file exactly once
    assert len({b.job_name for b in plan.batches}) == len(plan.batches)


def test_full_split_is_one_full_then_incremental():
    plan = plan_imports(
        [part(1, 100_000, *([300] * 4))],
        {},
        job_prefix="x",
        full=True,
        max_full_bytes=700,
        max_incremental_bytes=700,
    )
    assert plan.batches[0].import_mode == "FULL"
    assert set(b.import_mode for b in plan.batches[1:]) == {"INCREMENTAL"}


def test_a_single_file_over_the_limit_is_an_error_naming_it():
    with pytest.raises(ImportPlanError, match=r"part-00000\.csv is 5000 bytes"):
        plan_imports(
            [part(1, 100_000, 5000)], {}, job_prefix="x", max_incremental_bytes=1000, max_full_bytes=1000
        )


def test_job_names_are_deterministic_and_valid():
    a = plan_imports([part(1, 1500)], {}, job_prefix="a-very-long-pipeline-name-" * 3).batches[0].job_name
    b = plan_imports([part(1, 1500)], {}, job_prefix="a-very-long-pipeline-name-" * 3).batches[0].job_name
    assert a == b and len(a) <= 63 and a[0].isalnum()
    c = (
        plan_imports([part(1, 1500, tag="z")], {}, job_prefix="a-very-long-pipeline-name-" * 3)
        .batches[0]
        .job_name
    )
    assert c != a


def test_empty_partitions_need_nothing():
    plan = plan_imports([part(1, 0)], {}, job_prefix="x")
    assert plan.batches == [] and plan.carried == []


def test_day_intervals_cut_whole_days_and_refuse_partial_ones():
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)
    assert [d.day for d, _ in whole_days(start, end)] == [1, 2, 3]
    with pytest.raises(ValueError, match="not midnight UTC"):
        whole_days(start, datetime(2026, 1, 2, 6, tzinfo=UTC))
    with pytest.raises(ValueError, match="empty or reversed"):
        whole_days(end, start)


def test_ledger_round_trip_and_staging(s3_client, s3_bucket):
    ledger = Ledger(s3_bucket, "p")
    keys = []
    for day in (1, 2):
        key = f"p/interactions/dt=2026-01-0{day}/part-00000.csv"
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"USER_ID,ITEM_ID,TIMESTAMP\nu,i,1\n")
        keys.append(key)
    from include.pipeline.import_ledger import describe_files

    partitions = [
        Partition(
            f"dt=2026-01-0{d}",
            600,
            describe_files(s3_client, s3_bucket, [k]),
            f"p/interactions/dt=2026-01-0{d}/",
        )
        for d, k in zip((1, 2), keys, strict=True)
    ]
    for partition in partitions:
        ledger.record_partition(s3_client, "INTERACTIONS", partition)
    assert ledger.partitions(s3_client, "INTERACTIONS") == partitions
    plan = plan_imports(ledger.partitions(s3_client, "INTERACTIONS"), {}, job_prefix="x")
    location = data_location(s3_client, ledger, "INTERACTIONS", plan.batches[0])
    staged = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=location.split("/", 3)[3])["Contents"]
    assert len(staged) == 2
    ledger.record_import(s3_client, "INTERACTIONS", plan.batches[0].to_dict(), "arn:job")
    assert ledger.imported_fingerprints(s3_client, "INTERACTIONS") == plan.batches[0].partitions
    assert (
        plan_imports(
            ledger.partitions(s3_client, "INTERACTIONS"),
            ledger.imported_fingerprints(s3_client, "INTERACTIONS"),
            job_prefix="x",
        ).batches
        == []
    )
