"""Extraction on real PostgreSQL and SQLite into moto's S3 server."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from datetime import timedelta

import psycopg2
import pytest

from include.pipeline.extract import extract_interval, extract_snapshot
from include.pipeline.extract_result import ExtractionResult, RejectedShareExceeded
from include.pipeline.mapping import DatasetMapping, FieldMapping
from tests.conftest import TEST_DATA
from tests.include.pipeline.appdb import PG_DSN, at, load_retail_events

DAY = at("2024-03-01 00:00:00")
NEXT_DAY = DAY + timedelta(days=1)
HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]


def read_object(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_rows(client, bucket: str, keys: list[str]) -> list[list[str]]:
    """Every data row of the parts, in order, checking each part starts with the schema's header."""
    rows = []
    for key in keys:
        parsed = list(csv.reader(io.StringIO(read_object(client, bucket, key).decode("utf-8"), newline="")))
        assert parsed[0] == HEADER, key
        rows.extend(parsed[1:])
    return rows


def all_keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def run(db, client, bucket, start=DAY, end=NEXT_DAY, **kwargs) -> ExtractionResult:
    return extract_interval(
        db.hook, db.interactions, start, end, bucket=bucket, prefix="pp", s3_client=client, **kwargs
    )


def test_interval_is_half_open_and_exact(app_db, s3_client, s3_bucket):
    app_db.add_events(
        [
            (1, "u1", "before", "click", None, DAY - timedelta(seconds=1)),
            (2, "u1", "at-start", "click", None, DAY),
            (3, "u1", "last-second", "click", None, NEXT_DAY - timedelta(seconds=1)),
            (4, "u1", "at-end", "click", None, NEXT_DAY),
        ]
    )
    first = run(app_db, s3_client, s3_bucket)
    assert first.keys == ["pp/interactions/dt=2024-03-01/part-00000.csv"]
    assert first.data_location == f"s3://{s3_bucket}/pp/interactions/dt=2024-03-01/"
    assert [r[1] for r in read_rows(s3_client, s3_bucket, first.keys)] == ["at-start", "last-second"]
    second = run(app_db, s3_client, s3_bucket, NEXT_DAY, NEXT_DAY + timedelta(days=1))
    rows = read_rows(s3_client, s3_bucket, second.keys)
    assert rows == [["u1", "at-end", str(int(NEXT_DAY.timestamp())), "click", ""]]
    assert (first.read, first.written, second.read, second.written) == (2, 2, 1, 1)


def test_awkward_ids_round_trip_exactly(app_db, s3_client, s3_bucket):
    awkward = ["comma,inside", 'say "hi"', "naïve ünïcødé 日本", "  padded  ", "semi;colon|pipe", "'single'"]
    app_db.add_events(
        (n, user, f"item-{user}", "view", 1.5, DAY + timedelta(minutes=n)) for n, user in enumerate(awkward)
    )
    result = run(app_db, s3_client, s3_bucket)
    rows = read_rows(s3_client, s3_bucket, result.keys)
    assert [r[0] for r in rows] == awkward
    assert [r[1] for r in rows] == [f"item-{u}" for u in awkward]
    assert {r[4] for r in rows} == {"1.5"}
    assert result.rejected == 0 and result.quarantine_key is None


def test_every_kind_of_bad_row_is_quarantined_with_its_reason(app_db, s3_client, s3_bucket):
    t = DAY + timedelta(hours=1)
    good = [(n, f"user{n}", f"item{n}", "click", 1.0, t + timedelta(seconds=n)) for n in range(100, 110)]
    bad = [
        (1, None, "i1", "click", None, t),
        (2, "", "i2", "click", None, t),
        (3, "u3", None, "click", None, t),
        (4, "u4", "x" * 257, "click", None, t),
        (5, "line\nbreak", "i5", "click", None, t),
        (6, "u6", "carriage\rreturn", "click", None, t),
        (7, "u7", "i7", None, None, t),
        (9, "user100", "item100", "click", 5.0, t + timedelta(seconds=100)),  # twin of a good row
    ]
    expected_rules = {
        1: "USER_ID:missing_value",
        2: "USER_ID:missing_value",
        3: "ITEM_ID:missing_value",
        4: "ITEM_ID:too_long",
        5: "USER_ID:line_break",
        6: "ITEM_ID:line_break",
        7: "EVENT_TYPE:missing_value",
        9: "USER_ID+ITEM_ID+TIMESTAMP+EVENT_TYPE:duplicate",
    }
    if app_db.kind == "sqlite":
        # SQLite keeps whatever type the app wrote (and stores NaN as NULL).
        bad.append((10, "u10", "i10", "click", "abc", t))
    else:
        bad.append((10, "u10", "i10", "click", float("nan"), t))
    expected_rules[10] = "EVENT_VALUE:not_a_number"
    app_db.add_events(good + bad)

    result = run(app_db, s3_client, s3_bucket, max_rejected_share=1.0)

    quarantined = list(
        csv.DictReader(
            io.StringIO(read_object(s3_client, s3_bucket, result.quarantine_key).decode(), newline="")
        )
    )
    assert result.quarantine_key == "pp/quarantine/interactions/dt=2024-03-01/rejected.csv"
    assert list(quarantined[0]) == [*HEADER, "rule", "reason"]
    by_user = {row["USER_ID"]: row for row in quarantined}
    for event_id, rule in expected_rules.items():
        user = next(e[1] for e in bad if e[0] == event_id)
        row = by_user[user or ""]
        assert row["rule"] == rule, (event_id, row)
        assert row["reason"].startswith(rule.split(":")[0] + ":")
    assert by_user["line\nbreak"]["ITEM_ID"] == "i5"  # the quarantine CSV keeps the value intact
    # The twin kept is the one that sorts first (EVENT_VALUE 1.0); the other is the duplicate.
    assert float(by_user["user100"]["EVENT_VALUE"]) == 5.0
    assert result.read == len(good) + len(bad)
    assert result.written == len(good)
    assert result.read == result.written + result.rejected == result.written + len(quarantined)
    counted = {rule: list(expected_rules.values()).count(rule) for rule in expected_rules.values()}
    assert result.rejected_by_reason == dict(sorted(counted.items()))
    assert [r[0] for r in read_rows(s3_client, s3_bucket, result.keys)] == [g[1] for g in good]


def test_timestamp_rules_apply_to_an_epoch_column(app_db, s3_client, s3_bucket):
    """An app that stores its own epoch column: milliseconds and pre-1970 values are quarantined."""
    app_db.execute("ALTER TABLE {s}.events ADD COLUMN client_time BIGINT")
    mapping = DatasetMapping(
        "INTERACTIONS",
        app_db.qualified("events"),
        (
            FieldMapping("USER_ID", "user_id"),
            FieldMapping("ITEM_ID", "item_id"),
            FieldMapping("TIMESTAMP", "client_time", "long"),
            FieldMapping("EVENT_TYPE", "event_type"),
        ),
        time_column="occurred_at",
    )
    app_db.add_events((n, f"u{n}", "i", "click", None, DAY + timedelta(minutes=n)) for n in range(4))
    app_db.execute(
        "UPDATE {s}.events SET client_time = ? WHERE event_id = ?",
        [(1709251200, 0), (1709251200123, 1), (-5, 2), (None, 3)],
    )
    result = extract_interval(
        app_db.hook, mapping, DAY, NEXT_DAY, bucket=s3_bucket, s3_client=s3_client, max_rejected_share=1
    )
    assert result.rejected_by_reason == {
        "TIMESTAMP:missing_value": 1,
        "TIMESTAMP:negative_timestamp": 1,
        "TIMESTAMP:timestamp_in_milliseconds": 1,
    }
    assert result.written == 1


def some_events(count: int, start=DAY) -> list[tuple]:
    return [
        (n, f"user{n % 7}", f"item{n % 11}", "click", n / 4, start + timedelta(minutes=n))
        for n in range(count)
    ]


def test_rerun_gives_identical_objects_and_removes_stale_parts(app_db, s3_client, s3_bucket):
    app_db.add_events(some_events(10))
    first = run(app_db, s3_client, s3_bucket, chunk_rows=3)
    assert first.keys == [f"pp/interactions/dt=2024-03-01/part-0000{n}.csv" for n in range(4)]
    snapshot = {key: read_object(s3_client, s3_bucket, key) for key in first.keys}

    again = run(app_db, s3_client, s3_bucket, chunk_rows=3)
    assert again.to_dict() == first.to_dict()
    assert {key: read_object(s3_client, s3_bucket, key) for key in again.keys} == snapshot
    assert all_keys(s3_client, s3_bucket) == first.keys

    # Fewer rows now: the earlier run's fourth part must not linger and get imported twice.
    app_db.execute("DELETE FROM {s}.events WHERE event_id >= 6")
    shorter = run(app_db, s3_client, s3_bucket, chunk_rows=3)
    assert all_keys(s3_client, s3_bucket) == shorter.keys == first.keys[:2]
    assert len(read_rows(s3_client, s3_bucket, shorter.keys)) == 6


def test_rerun_without_rejects_removes_the_old_quarantine(app_db, s3_client, s3_bucket):
    app_db.add_events([*some_events(5), (99, None, "i", "click", None, DAY)])
    first = run(app_db, s3_client, s3_bucket, max_rejected_share=0.5)
    assert first.quarantine_key in all_keys(s3_client, s3_bucket)
    app_db.execute("DELETE FROM {s}.events WHERE event_id = 99")
    second = run(app_db, s3_client, s3_bucket)
    assert second.quarantine_key is None
    assert all_keys(s3_client, s3_bucket) == second.keys


def test_rejected_share_over_the_limit_fails_with_a_summary(app_db, s3_client, s3_bucket):
    app_db.add_events(some_events(50))
    app_db.add_events((100 + n, "", f"i{n}", "click", None, DAY) for n in range(2))  # 2 of 52: 3.85%
    with pytest.raises(RejectedShareExceeded) as failure:
        run(app_db, s3_client, s3_bucket)
    message = str(failure.value)
    assert "2 of 52 rows rejected (3.85%), over the 1.00% limit: USER_ID:missing_value 2" in message
    assert "pp/quarantine/interactions/dt=2024-03-01/rejected.csv" in message
    # Only the quarantine remains: nothing in the data folder an import job could pick up.
    assert all_keys(s3_client, s3_bucket) == ["pp/quarantine/interactions/dt=2024-03-01/rejected.csv"]
    assert failure.value.result.read == 52 and failure.value.result.rejected == 2

    passed = run(app_db, s3_client, s3_bucket, max_rejected_share=0.04)
    assert (passed.written, passed.rejected) == (50, 2)


def test_empty_interval_writes_nothing_and_says_so(app_db, s3_client, s3_bucket, caplog):
    app_db.add_events(some_events(3, start=DAY - timedelta(days=3)))
    with caplog.at_level(logging.WARNING, logger="include.pipeline.extract"):
        result = run(app_db, s3_client, s3_bucket)
    assert (result.read, result.written, result.keys, result.empty) == (0, 0, [], True)
    assert all_keys(s3_client, s3_bucket) == []
    assert any("is empty: nothing written" in r.getMessage() for r in caplog.records)


def test_interval_must_be_whole_aware_utc_days(sqlite_app_db, s3_client, s3_bucket):
    with pytest.raises(ValueError, match="no time zone"):
        run(sqlite_app_db, s3_client, s3_bucket, start=DAY.replace(tzinfo=None))
    with pytest.raises(ValueError, match="midnight UTC"):
        run(sqlite_app_db, s3_client, s3_bucket, end=NEXT_DAY + timedelta(hours=1))
    with pytest.raises(ValueError, match="reversed"):
        run(sqlite_app_db, s3_client, s3_bucket, start=NEXT_DAY, end=DAY)


def test_snapshots_carry_a_content_hash_that_changes_only_with_the_data(app_db, s3_client, s3_bucket):
    app_db.execute(
        "INSERT INTO {s}.items VALUES (?, ?, ?, ?)",
        [("i2", "books", 9.5, DAY), ("i1", "toys|games", 20, DAY), ("i,3", "home", 1, DAY)],
    )
    app_db.execute("INSERT INTO {s}.users VALUES (?, ?, ?, ?)", [("u1", "free", "eu", DAY)])
    kwargs = {"bucket": s3_bucket, "prefix": "pp", "s3_client": s3_client}
    items = extract_snapshot(app_db.hook, app_db.items, DAY, **kwargs)
    users = extract_snapshot(app_db.hook, app_db.users, DAY.date(), **kwargs)
    assert items.keys == ["pp/items/dt=2024-03-01/part-00000.csv"]
    assert users.keys == ["pp/users/dt=2024-03-01/part-00000.csv"]
    body = read_object(s3_client, s3_bucket, items.keys[0]).decode()
    epoch = int(DAY.timestamp())
    price = "1" if app_db.kind == "postgres" else "1.0"
    assert body.splitlines()[:2] == [
        "ITEM_ID,CATEGORY,PRICE,CREATION_TIMESTAMP",
        f'"i,3",home,{price},{epoch}',
    ]
    assert items.content_hash == __import__("hashlib").sha256(body.encode()).hexdigest()

    assert extract_snapshot(app_db.hook, app_db.items, DAY, **kwargs).content_hash == items.content_hash
    app_db.execute("UPDATE {s}.items SET category = 'garden' WHERE item_id = 'i2'")
    assert extract_snapshot(app_db.hook, app_db.items, DAY, **kwargs).content_hash != items.content_hash


def test_retail_sample_rows_without_customer_are_quarantined_and_counted(app_db, s3_client, s3_bucket):
    source = load_retail_events(app_db, TEST_DATA / "online_retail_sample.csv")
    start, end = at("2011-01-01 00:00:00"), at("2011-07-01 00:00:00")
    in_interval = [r for r in source if "2011-01-01" <= r["InvoiceDate"] < "2011-07-01"]
    no_customer = sum(1 for r in in_interval if not r["CustomerID"])
    keys = Counter(
        (
            r["CustomerID"],
            r["StockCode"],
            r["InvoiceDate"],
            r["InvoiceNo"].startswith("C") or int(r["Quantity"]) < 0,
        )
        for r in in_interval
        if r["CustomerID"]
    )
    duplicates = sum(count - 1 for count in keys.values())

    with pytest.raises(RejectedShareExceeded, match="USER_ID:missing_value"):
        run(app_db, s3_client, s3_bucket, start=start, end=end)
    result = run(app_db, s3_client, s3_bucket, start=start, end=end, max_rejected_share=0.5)

    assert result.read == len(in_interval)
    assert result.rejected_by_reason["USER_ID:missing_value"] == no_customer > 1000
    assert result.rejected_by_reason.get("USER_ID+ITEM_ID+TIMESTAMP+EVENT_TYPE:duplicate", 0) == duplicates
    assert result.written == len(in_interval) - no_customer - duplicates
    rows = read_rows(s3_client, s3_bucket, result.keys)
    assert len(rows) == result.written
    assert {r[3] for r in rows} == {"purchase", "return"}
    assert all(int(start.timestamp()) <= int(r[2]) < int(end.timestamp()) for r in rows)
    quarantine = read_object(s3_client, s3_bucket, result.quarantine_key).decode()
    assert quarantine.count("USER_ID: required value is empty") == no_customer


class Psycopg2Hook:
    """The part of a common-sql hook extraction uses, on psycopg2 (what PostgresHook uses when
    psycopg 3 is unavailable)."""

    def get_conn(self):
        return psycopg2.connect(PG_DSN)


def test_psycopg2_connections_give_the_same_bytes(postgres_app_db, s3_client, s3_bucket):
    postgres_app_db.add_events([*some_events(20), (50, 'a,"b"', "ü\nx", "click", None, DAY)])
    mapping = postgres_app_db.interactions
    kwargs = {"bucket": s3_bucket, "s3_client": s3_client, "max_rejected_share": 1}
    on_psycopg3 = extract_interval(postgres_app_db.hook, mapping, DAY, NEXT_DAY, prefix="v3", **kwargs)
    on_psycopg2 = extract_interval(Psycopg2Hook(), mapping, DAY, NEXT_DAY, prefix="v2", **kwargs)
    assert on_psycopg3.content_hash == on_psycopg2.content_hash
    assert (on_psycopg2.written, on_psycopg2.rejected) == (20, 1)


def test_connection_ids_resolve_to_common_sql_hooks(sqlite_app_db, s3_client, s3_bucket, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TEST_APP_DB", f"sqlite:///{sqlite_app_db.location}")
    sqlite_app_db.add_events(some_events(4))
    result = extract_interval(
        "test_app_db", sqlite_app_db.interactions, DAY, NEXT_DAY, bucket=s3_bucket, s3_client=s3_client
    )
    assert result.written == 4


@pytest.mark.parametrize("batch", [1, 3, 7, 4096])
def test_postgres_fast_path_gives_exactly_the_csv_writer_output(
    postgres_app_db, s3_client, s3_bucket, batch, monkeypatch
):
    """Batched regex fast path vs every record parsed, judged and written by the csv module."""
    monkeypatch.setattr("include.pipeline.extract.RECORD_BATCH", batch)
    t = DAY + timedelta(hours=2)
    events = []
    for n in range(60):
        user = ["plain", "with,comma", 'with "quote"', "ü" * 200, "é" * 129, "tab\there", " spaced "][n % 7]
        item = f"item{n % 5}"
        moment = t + timedelta(seconds=n // 3)  # groups of three share a second: twins are possible
        value = [None, 1.5, 1e20, -3.0][n % 4]
        events.append((n, user, item, "view", value, moment))
    # Runs of twins (two and three in a row), bad rows between twins, twins of quoted values.
    events += [(100 + k, "plain", "item0", "view", None, t) for k in range(3)]
    events += [
        (110, "plain", "item1", "view", 2.0, t + timedelta(seconds=1)),
        (111, None, "x", "view", None, t),
    ]
    events += [(120 + k, 'with "quote"', "q", "view", None, t) for k in range(2)]
    events += [(130, "u", "x" * 257, "view", None, t), (131, "u", "a\nb", "view", None, t)]
    postgres_app_db.add_events(events)
    kwargs = {"bucket": s3_bucket, "s3_client": s3_client, "max_rejected_share": 1, "chunk_rows": 7}
    mapping = postgres_app_db.interactions
    fast = extract_interval(postgres_app_db.hook, mapping, DAY, NEXT_DAY, prefix="fast", **kwargs)
    slow = extract_interval(
        postgres_app_db.hook, mapping, DAY, NEXT_DAY, prefix="slow", fast_path=False, **kwargs
    )

    assert fast.content_hash == slow.content_hash
    assert (fast.read, fast.written, fast.rejected_by_reason) == (
        slow.read,
        slow.written,
        slow.rejected_by_reason,
    )
    assert [k.replace("fast/", "") for k in fast.keys] == [k.replace("slow/", "") for k in slow.keys]
    for fast_key, slow_key in zip(fast.keys, slow.keys, strict=True):
        assert read_object(s3_client, s3_bucket, fast_key) == read_object(s3_client, s3_bucket, slow_key)
    assert read_object(s3_client, s3_bucket, fast.quarantine_key) == read_object(
        s3_client, s3_bucket, slow.quarantine_key
    )
    assert fast.rejected_by_reason["USER_ID+ITEM_ID+TIMESTAMP+EVENT_TYPE:duplicate"] >= 4
    assert fast.rejected_by_reason["ITEM_ID:too_long"] == 1
    assert fast.read == len(events)


def test_s3_comes_from_the_airflow_aws_connection(
    sqlite_app_db, s3_endpoint, s3_client, s3_bucket, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEST_S3",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}),
    )
    sqlite_app_db.add_events(some_events(3))
    result = extract_interval(
        sqlite_app_db.hook, sqlite_app_db.interactions, DAY, NEXT_DAY, bucket=s3_bucket, aws_conn_id="test_s3"
    )
    assert all_keys(s3_client, s3_bucket) == result.keys
    # What the DAG pushes to XCom: plain JSON.
    pushed = json.loads(json.dumps(result.to_dict()))
    assert pushed["read"] == pushed["written"] + pushed["rejected"] == 3
    assert pushed["data_location"] == f"s3://{s3_bucket}/interactions/dt=2024-03-01/"


def test_rows_without_a_usable_time_are_reported_not_lost(app_db, s3_client, s3_bucket, caplog):
    app_db.add_events([*some_events(3), (50, "u", "i", "click", None, None)])
    if app_db.kind == "sqlite":
        app_db.add_events([(51, "u", "i", "click", None, "last tuesday")])
    with caplog.at_level(logging.WARNING, logger="include.pipeline.extract"):
        result = run(app_db, s3_client, s3_bucket)
    expected = 2 if app_db.kind == "sqlite" else 1
    assert (result.read, result.rows_without_time) == (3, expected)
    assert any(f"{expected} row(s) of" in r.getMessage() for r in caplog.records)


class NewYorkSessionHook:
    """A PostgreSQL server whose sessions default to a local time zone, as initdb sets from the host."""

    def get_conn(self):
        import psycopg

        return psycopg.connect(PG_DSN, options="-c TimeZone=America/New_York")


def test_naive_timestamp_columns_are_utc_whatever_the_session_time_zone(
    postgres_app_db, s3_client, s3_bucket
):
    import psycopg

    schema = postgres_app_db.location
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {schema}.events ALTER COLUMN occurred_at TYPE TIMESTAMP")
        conn.execute(
            f"INSERT INTO {schema}.events VALUES (1, 'u1', 'first-second', 'click', NULL, %s), "
            f"(2, 'u1', 'last-second', 'click', NULL, %s), (3, 'u1', 'next-day', 'click', NULL, %s)",
            [
                DAY.replace(tzinfo=None),
                (NEXT_DAY - timedelta(seconds=1)).replace(tzinfo=None),
                NEXT_DAY.replace(tzinfo=None),
            ],
        )
    result = extract_interval(
        NewYorkSessionHook(),
        postgres_app_db.interactions,
        DAY,
        NEXT_DAY,
        bucket=s3_bucket,
        s3_client=s3_client,
    )
    rows = read_rows(s3_client, s3_bucket, result.keys)
    assert [(r[1], r[2]) for r in rows] == [
        ("first-second", str(int(DAY.timestamp()))),
        ("last-second", str(int(NEXT_DAY.timestamp()) - 1)),
    ]


def test_count_days_counts_what_each_day_extraction_reads(app_db, s3_client, s3_bucket):
    from include.pipeline.extract import count_days

    # 30 events a minute apart just before midnight, 50 from midnight on: split across two days.
    app_db.add_events(some_events(80, start=NEXT_DAY - timedelta(minutes=30)))
    counts = count_days(app_db.hook, app_db.interactions, [DAY, NEXT_DAY, NEXT_DAY + timedelta(days=1)])
    assert counts == {
        f"dt={DAY.date().isoformat()}": 30,
        f"dt={NEXT_DAY.date().isoformat()}": 50,
        f"dt={(NEXT_DAY + timedelta(days=1)).date().isoformat()}": 0,
    }
    assert run(app_db, s3_client, s3_bucket).read == 30


def test_most_active_ranks_users_and_items_by_interactions_ties_by_value(app_db):
    from types import SimpleNamespace

    from include.pipeline.extract_sql import most_active

    events = [("u2", "b"), ("u2", "b"), ("u2", "c"), ("u1", "a"), ("u1", "b"), ("u3", "a"), ("u3", "c")]
    app_db.add_events(
        (n, user, item, "click", None, DAY + timedelta(minutes=n)) for n, (user, item) in enumerate(events)
    )
    config = SimpleNamespace(mappings={"INTERACTIONS": app_db.interactions}, app_db_conn_id=app_db.hook)
    assert most_active(config, "USER_ID", 2) == ["u2", "u1"]  # u1 before u3: same count
    assert most_active(config, "ITEM_ID", 5) == ["b", "a", "c"]
    with pytest.raises(ValueError, match="'EVENT_ID' is not mapped"):
        most_active(config, "EVENT_ID", 1)
