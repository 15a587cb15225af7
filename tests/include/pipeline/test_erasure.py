"""Erasure and export config, the erased-users filter in extraction (PostgreSQL and SQLite), and the
scrub of the pipeline's own CSV copies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.pipeline.config import ConfigError, load_config
from include.pipeline.erased_users import ErasedUserFilter, read_erased_users, user_ids_csv
from include.pipeline.erasure_scrub import _without_users
from tests.include.pipeline.test_config import demo_dict, write
from tests.include.pipeline.test_extract import DAY, read_rows, run

# --- config


def load_with(tmp_path, **keys):
    data = demo_dict()
    data.update(keys)
    return load_config(write(tmp_path, data))


def test_erasure_and_export_default_to_manual_erasure_and_no_export(tmp_path):
    config = load_with(tmp_path)
    assert config.erasure.schedule is None and config.erasure.requests is None
    assert config.export is None


def test_a_full_erasure_and_export_config_is_read(tmp_path):
    config = load_with(
        tmp_path,
        erasure={
            "schedule": "0 4 * * *",
            "requests": {"table": "app.deletion_requests", "done_column": "done_at"},
        },
        export={"ingestion_mode": "BULK"},
    )
    assert config.erasure.requests.table == "app.deletion_requests"
    assert config.erasure.requests.user_id_column == "user_id"
    assert config.erasure.requests.done_column == "done_at"
    assert config.export.schedule == "0 5 1 * *" and config.export.ingestion_mode == "BULK"


@pytest.mark.parametrize(
    ("keys", "dotted", "words"),
    [
        (
            {"erasure": {"schedule": "0 4 * * *"}},
            "erasure:",
            "scheduled runs read the deletion-requests table",
        ),
        ({"erasure": {"schedule": "@daily", "requests": {"table": "t"}}}, "erasure.schedule:", "cron"),
        ({"erasure": {"requests": {"table": "t; DROP TABLE x"}}}, "erasure.requests.table:", "pattern"),
        (
            {"erasure": {"requests": {"table": "t", "user_column": "u"}}},
            "erasure.requests.user_column:",
            "unknown key",
        ),
        (
            {"erasure": {"requests": {"table": "t", "done_column": "a b"}}},
            "erasure.requests.done_column:",
            "pattern",
        ),
        ({"export": {"ingestion_mode": "FULL"}}, "export.ingestion_mode:", "'BULK', 'PUT' or 'ALL'"),
        ({"export": {"schedule": "monthly"}}, "export.schedule:", "cron"),
    ],
)
def test_bad_erasure_or_export_keys_name_the_key(tmp_path, keys, dotted, words):
    with pytest.raises(ConfigError) as error:
        load_with(tmp_path, **keys)
    message = str(error.value)
    assert f": {dotted}" in message and words in message, message


# --- the erased-users list and filter


def test_the_list_round_trips_awkward_ids(s3_client, s3_bucket):
    users = ["plain", "comma,inside", 'say "hi"', "naïve"]
    s3_client.put_object(Bucket=s3_bucket, Key="pp/erasure/users/a.csv", Body=user_ids_csv(users[:2]))
    s3_client.put_object(Bucket=s3_bucket, Key="pp/erasure/users/b.csv", Body=user_ids_csv(users[2:]))
    assert read_erased_users(s3_client, s3_bucket, "pp/erasure/users") == frozenset(users)
    assert read_erased_users(s3_client, s3_bucket, "pp/other") == frozenset()


def test_a_list_file_without_the_user_id_column_is_refused_naming_it(s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="pp/erasure/users/bad.csv", Body=b"ID\nu1\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*USER_ID"):
        read_erased_users(s3_client, s3_bucket, "pp/erasure/users")


def test_the_filter_reads_raw_records_quoted_or_not():
    kept = ErasedUserFilter(["USER_ID", "ITEM_ID"], ["u1", "a,b"])
    records = [b"u1,i1\n", b"u2,i1\n", b'"a,b",i2\n', b"u10,i3\n"]
    assert kept.keep_records(records) == [b"u2,i1\n", b"u10,i3\n"]
    assert kept.erased == 2
    assert kept.keeps_row(["u3", "i1"]) and not kept.keeps_row(["u1", "i9"]) and kept.erased == 3
    # A dataset without USER_ID (items) passes untouched.
    items = ErasedUserFilter(["ITEM_ID", "PRICE"], ["u1"])
    assert not items.active and items.keep_records([b"u1,1\n"]) == [b"u1,1\n"]


def test_extraction_writes_erased_users_rows_nowhere_and_counts_them(app_db, s3_client, s3_bucket):
    users = ["keep", "gone", "comma,gone"]
    app_db.add_events(
        (n, users[n % 3], f"item-{n}", "view", 1.0, DAY + timedelta(minutes=n)) for n in range(30)
    )
    # A bad row of an erased user would have gone to the quarantine: it is not written there either.
    app_db.add_events([(99, "gone", "", "view", 1.0, DAY + timedelta(hours=2))])
    result = run(app_db, s3_client, s3_bucket, erased_users=frozenset({"gone", "comma,gone"}))
    assert [row[0] for row in read_rows(s3_client, s3_bucket, result.keys)] == ["keep"] * 10
    assert (result.read, result.written, result.rejected, result.erased) == (31, 10, 0, 21)
    assert result.quarantine_key is None
    assert result.to_dict()["erased"] == 21


# --- the scrub of the pipeline's own copies


def test_scrub_removes_only_the_users_lines_and_keeps_the_rest_byte_for_byte():
    body = 'USER_ID,ITEM_ID\nu1,i1\n"a,b",i2\nu2,"x ""y"""\nu1,i3\n'
    kept, removed = _without_users(body, frozenset({"u1", "a,b"}))
    assert kept == 'USER_ID,ITEM_ID\nu2,"x ""y"""\n' and removed == 3
    # Quarantine files quote every value; files without USER_ID are left alone.
    assert _without_users('"USER_ID","reason"\n"u1","bad"\n', frozenset({"u1"})) == (
        '"USER_ID","reason"\n',
        1,
    )
    assert _without_users("ITEM_ID\nu1\n", frozenset({"u1"})) == ("ITEM_ID\nu1\n", 0)
