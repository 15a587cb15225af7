from __future__ import annotations

import sqlite3

import pytest
from airflow.models.connection import Connection

from include.pipeline.sqlite_hook import AppSqliteHook


def test_common_sql_calls_work_on_a_sqlite_file(tmp_path, monkeypatch):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
    conn.close()
    monkeypatch.setenv("AIRFLOW_CONN_APP_SQLITE", f"sqlite:///{path}")  # the path lands in `schema`
    hook = AppSqliteHook(sqlite_conn_id="app_sqlite")
    hook.run("INSERT INTO t VALUES (?)", parameters=(5,))
    assert hook.get_records("SELECT a FROM t") == [(5,)]
    on_host = AppSqliteHook(connection=Connection(conn_id="h", conn_type="sqlite", host=str(path)))
    assert on_host.get_first("SELECT count(*) FROM t") == (1,)


def test_a_connection_without_a_file_is_refused():
    hook = AppSqliteHook(connection=Connection(conn_id="nofile", conn_type="sqlite"))
    with pytest.raises(ValueError, match="nofile"):
        hook.get_conn()
