"""Extraction on real PostgreSQL and SQLite into moto's S3 server."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from include.pipeline.extract import (
    ExtractionResult,
    extract_interval,
)
from include.pipeline.mapping import DatasetMapping, FieldMapping
from tests.include.pipeline.appdb import at

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
