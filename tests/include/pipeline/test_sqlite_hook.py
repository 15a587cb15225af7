from __future__ import annotations

import sqlite3

import pytest
from airflow.models.connection import Connection
from airflow.sdk.exceptions import AirflowFailException

from include.pipeline.sqlite_hook import AppSqliteHook


def test_common_sql_calls_read_a_sqlite_file(tmp_path, monkeypatch):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
        conn.execute("INSERT INTO t VALUES (5)")
    conn.close()
    monkeypatch.setenv("AIRFLOW_CONN_APP_SQLITE", f"sqlite:///{path}")  # the path lands in `schema`
    hook = AppSqliteHook(sqlite_conn_id="app_sqlite")
    assert hook.get_records("SELECT a FROM t") == [(5,)]
    on_host = AppSqliteHook(connection=Connection(conn_id="h", conn_type="sqlite", host=str(path)))
    assert on_host.get_first("SELECT count(*) FROM t") == (1,)


def test_the_app_database_opens_read_only(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
    conn.close()
    hook = AppSqliteHook(connection=Connection(conn_id="ro", conn_type="sqlite", host=str(path)))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        hook.run("INSERT INTO t VALUES (1)")


def test_a_connection_without_a_file_is_refused():
    hook = AppSqliteHook(connection=Connection(conn_id="nofile", conn_type="sqlite"))
    with pytest.raises(AirflowFailException, match="nofile"):
        hook.get_conn()


@pytest.mark.parametrize("missing", ["app.dbb", "no-such-folder/app.db"])
def test_a_misspelt_path_names_the_path_and_creates_no_file(tmp_path, missing):
    path = tmp_path / missing
    hook = AppSqliteHook(connection=Connection(conn_id="typo", conn_type="sqlite", host=str(path)))
    with pytest.raises(AirflowFailException) as raised:
        hook.get_conn()
    assert str(path) in str(raised.value) and "'typo'" in str(raised.value)
    assert not path.exists() and sorted(tmp_path.iterdir()) == []
