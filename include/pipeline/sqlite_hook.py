"""A common-sql hook for SQLite app databases (the demo default).

apache-airflow-providers-sqlite is not among our dependencies, so this is the small DbApiHook
subclass it would provide: the connection's host (or schema) is the database file path, as in the
sqlite provider (`sqlite:////abs/path.db` or a connection with host `/abs/path.db`).
"""

from __future__ import annotations

import sqlite3

from airflow.providers.common.sql.hooks.sql import DbApiHook


class AppSqliteHook(DbApiHook):
    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "sqlite_default"
    conn_type = "sqlite"
    hook_name = "SQLite"
    supports_autocommit = False

    def get_conn(self) -> sqlite3.Connection:
        connection = self.connection
        path = connection.host or connection.schema
        if not path:
            raise ValueError(f"SQLite connection {connection.conn_id!r} names no database file (host)")
        return sqlite3.connect(path)

    def get_uri(self) -> str:
        connection = self.connection
        return f"sqlite:///{connection.host or connection.schema}"
