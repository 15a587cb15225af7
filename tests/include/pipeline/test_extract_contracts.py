"""Extraction contracts on real PostgreSQL and SQLite: mapped columns exist, time columns are of a
declared kind, rows without a usable time are quarantined by the run that reads them."""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta

import pytest
from airflow.models.connection import Connection
from airflow.sdk.exceptions import AirflowFailException

from include.pipeline.extract import extract_interval, extract_snapshot
from include.pipeline.extract_result import ExtractionContractError
from include.pipeline.mapping import DEMO_INTERACTIONS, DatasetMapping
from include.pipeline.sqlite_hook import AppSqliteHook
from tests.conftest import TEST_DATA
from tests.include.pipeline.appdb import at, load_retail_events

DAY = at("2024-03-01 00:00:00")
NEXT_DAY = DAY + timedelta(days=1)
COLUMNS = {
    "USER_ID": "user_id",
    "ITEM_ID": "item_id",
    "TIMESTAMP": "occurred_at",
    "EVENT_TYPE": "event_type",
    "EVENT_VALUE": "event_value",
}


def events_mapping(db, time_units=None, **columns) -> DatasetMapping:
    return DatasetMapping.from_columns(
        "INTERACTIONS", db.qualified("events"), {**COLUMNS, **columns}, time_units=time_units
    )


def extract(db, s3_client, bucket, mapping=None, start=DAY, end=NEXT_DAY, **kwargs):
    return extract_interval(
        db.hook,
        mapping or db.interactions,
        start,
        end,
        bucket=bucket,
        prefix="pp",
        s3_client=s3_client,
        **kwargs,
    )


def rows_of(s3_client, bucket, keys) -> list[list[str]]:
    rows = []
    for key in keys:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        rows.extend(list(csv.reader(io.StringIO(body)))[1:])
    return rows


def test_a_mapped_column_missing_from_the_table_fails_naming_table_and_column(app_db, s3_client, s3_bucket):
    # SQLite used to read the unknown "evnt_type" as a string literal: every row said 'evnt_type'.
    app_db.add_events([(1, "u1", "i1", "click", None, DAY)])
    with pytest.raises(ExtractionContractError) as raised:
        extract(app_db, s3_client, s3_bucket, events_mapping(app_db, EVENT_TYPE="evnt_type"))
    message = str(raised.value)
    assert f"table {app_db.qualified('events')!r} has no column 'evnt_type' (mapped to EVENT_TYPE)" in message
    assert "'event_type'" in message  # the columns it does have
    assert isinstance(raised.value, AirflowFailException)  # a retry cannot fix it
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


def test_a_missing_table_fails_naming_it(app_db, s3_client, s3_bucket):
    mapping = DatasetMapping.from_columns("ITEMS", app_db.qualified("itemz"), {"ITEM_ID": "item_id"})
    with pytest.raises(
        ExtractionContractError, match=r"datasets.items.table: table '.*itemz' does not exist"
    ):
        extract_snapshot(app_db.hook, mapping, DAY, bucket=s3_bucket, s3_client=s3_client)


@pytest.mark.parametrize(("unit", "scale"), [("seconds", 1), ("milliseconds", 1000)])
def test_integer_epoch_columns_with_a_declared_unit(app_db, s3_client, s3_bucket, unit, scale):
    app_db.execute("ALTER TABLE {s}.events ADD COLUMN epoch_time BIGINT")
    app_db.add_events((n, f"u{n}", "i", "click", None, None) for n in range(4))
    times = [DAY - timedelta(seconds=1), DAY, NEXT_DAY - timedelta(seconds=1), NEXT_DAY]
    app_db.execute(
        "UPDATE {s}.events SET epoch_time = ? WHERE event_id = ?",
        [(int(t.timestamp()) * scale + 999 * (scale > 1), n) for n, t in enumerate(times)],
    )
    mapping = events_mapping(app_db, {"TIMESTAMP": unit}, TIMESTAMP="epoch_time")
    result = extract(app_db, s3_client, s3_bucket, mapping)
    rows = rows_of(s3_client, s3_bucket, result.keys)
    assert [(r[0], r[2]) for r in rows] == [
        ("u1", str(int(DAY.timestamp()))),
        ("u2", str(int(NEXT_DAY.timestamp()) - 1)),
    ]
    assert result.rows_without_time == 0


def test_an_integer_time_column_without_a_unit_is_refused_with_the_fix(app_db, s3_client, s3_bucket):
    app_db.execute("ALTER TABLE {s}.events ADD COLUMN epoch_time BIGINT")
    with pytest.raises(ExtractionContractError) as raised:
        extract(app_db, s3_client, s3_bucket, events_mapping(app_db, TIMESTAMP="epoch_time"))
    assert "epoch_time (TIMESTAMP) is" in str(raised.value)
    assert "declare datasets.interactions.time_units.TIMESTAMP: seconds or milliseconds" in str(raised.value)


def test_a_unit_on_a_date_time_column_is_refused(app_db, s3_client, s3_bucket):
    with pytest.raises(ExtractionContractError, match=r"time_units\.TIMESTAMP is seconds, but .*occurred_at"):
        extract(app_db, s3_client, s3_bucket, events_mapping(app_db, {"TIMESTAMP": "seconds"}))


def test_rows_without_a_usable_time_are_quarantined_with_their_reason_by_each_run(
    app_db, s3_client, s3_bucket
):
    app_db.add_events([(1, "u1", "i1", "click", None, DAY), (2, "u2", "i2", "click", None, None)])
    if app_db.kind == "sqlite":  # SQLite stores whatever it is given
        app_db.add_events(
            [(3, "u3", "i3", "click", None, "last tuesday"), (4, "u4", "i4", "click", None, 1709251200)]
        )
    result = extract(app_db, s3_client, s3_bucket)
    expected = 3 if app_db.kind == "sqlite" else 1
    assert (result.read, result.written, result.rows_without_time) == (1, 1, expected)
    assert result.untimed_quarantine_key == "pp/quarantine/interactions/dt=2024-03-01/untimed.csv"
    body = s3_client.get_object(Bucket=s3_bucket, Key=result.untimed_quarantine_key)["Body"].read().decode()
    quarantined = {row[0]: row[-2:] for row in list(csv.reader(io.StringIO(body)))[1:]}
    assert quarantined["u2"] == [
        "TIMESTAMP:missing_time",
        "TIMESTAMP: occurred_at is empty: the row is in no data interval",
    ]
    if app_db.kind == "sqlite":
        assert (
            quarantined["u3"][0] == "TIMESTAMP:unreadable_time" and "'last tuesday'" in quarantined["u3"][1]
        )
        # An integer in a date/time column is not read as a Julian day: quarantined, with the fix.
        assert quarantined["u4"][0] == "TIMESTAMP:unreadable_time"
        assert "declare time_units.TIMESTAMP: seconds or milliseconds" in quarantined["u4"][1]
    # Once the rows are fixed, the next run has nothing untimed and leaves no stale file behind.
    app_db.execute("DELETE FROM {s}.events WHERE event_id > 1")
    again = extract(app_db, s3_client, s3_bucket)
    assert (again.rows_without_time, again.untimed_quarantine_key) == (0, None)
    assert result.untimed_quarantine_key not in {
        o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    }


def test_real_retail_data_as_epoch_milliseconds_extracts_like_the_date_time_column(
    app_db, s3_client, s3_bucket
):
    """The dirty UCI sample (rows without customer, duplicates, returns): the same rows whichever
    way the app stores its times; the NULL-time rows it gains are quarantined, not lost."""
    load_retail_events(app_db, TEST_DATA / "online_retail_sample.csv")
    app_db.execute("ALTER TABLE {s}.events ADD COLUMN epoch_ms BIGINT")
    if app_db.kind == "postgres":
        app_db.execute(
            "UPDATE {s}.events SET epoch_ms = CAST(extract(epoch FROM occurred_at) * 1000 AS bigint)"
        )
    else:
        app_db.execute("UPDATE {s}.events SET epoch_ms = CAST(strftime('%s', occurred_at) AS INTEGER) * 1000")
    app_db.execute("UPDATE {s}.events SET epoch_ms = NULL, occurred_at = NULL WHERE event_id % 1000 = 7")
    start, end = at("2011-01-01 00:00:00"), at("2011-02-01 00:00:00")
    by_datetime = extract(app_db, s3_client, s3_bucket, start=start, end=end, max_rejected_share=0.5)
    datetime_rows = rows_of(s3_client, s3_bucket, by_datetime.keys)
    mapping = events_mapping(app_db, {"TIMESTAMP": "milliseconds"}, TIMESTAMP="epoch_ms")
    by_epoch = extract(app_db, s3_client, s3_bucket, mapping, start=start, end=end, max_rejected_share=0.5)
    assert rows_of(s3_client, s3_bucket, by_epoch.keys) == datetime_rows
    assert by_epoch.rejected_by_reason == by_datetime.rejected_by_reason
    assert by_epoch.rejected_by_reason["USER_ID:missing_value"] > 0
    assert by_epoch.rows_without_time == by_datetime.rows_without_time == 40
    assert by_epoch.read == by_epoch.written + by_epoch.rejected > 1000


def test_a_misspelt_sqlite_path_is_an_error_naming_it_and_leaves_no_file(tmp_path, s3_client, s3_bucket):
    path = tmp_path / "ap.db"
    hook = AppSqliteHook(connection=Connection(conn_id="app_typo", conn_type="sqlite", host=str(path)))
    with pytest.raises(AirflowFailException, match=str(path)):
        extract_interval(hook, DEMO_INTERACTIONS, DAY, NEXT_DAY, bucket=s3_bucket, s3_client=s3_client)
    assert not path.exists()


def test_a_time_column_without_an_index_is_named_with_the_index_to_add(
    postgres_app_db, s3_client, s3_bucket, caplog
):
    # Without it every day's query and its untimed check read the whole table (issue 18's bench).
    postgres_app_db.add_events([(1, "u1", "i1", "click", None, DAY)])

    def warnings() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="include.pipeline.extract_sql"):
            assert extract(postgres_app_db, s3_client, s3_bucket).written == 1
        return [r.getMessage() for r in caplog.records if "no index" in r.getMessage()]

    table = postgres_app_db.qualified("events")
    assert warnings() == [
        f"{table}.occurred_at has no index leading with it: every day's extraction reads the whole "
        f'table. Add one: CREATE INDEX ON {table} ("occurred_at")'
    ]
    postgres_app_db.execute("CREATE INDEX ON {s}.events (event_type, occurred_at)")
    assert warnings(), "an index whose first column is another one does not serve the interval"
    postgres_app_db.execute("CREATE INDEX ON {s}.events (occurred_at, user_id)")
    assert warnings() == []
