"""A common-sql hook for SQLite app databases (the demo default).

apache-airflow-providers-sqlite is not among our dependencies, so this is the small DbApiHook
subclass it would provide: the connection's host (or schema) is the database file path, as in the
sqlite provider (`sqlite:////abs/path.db` or a connection with host `/abs/path.db`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from airflow.providers.common.sql.hooks.sql import DbApiHook


class AppSqliteHook(DbApiHook):
    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "sqlite_default"
    conn_type = "sqlite"
    hook_name = "SQLite"
    supports_autocommit = False

    def get_conn(self) -> sqlite3.Connection:
        """The app database, read-only: the pipeline only reads it, and a misspelt path must fail
        naming the path instead of leaving a new empty database file behind."""
        from airflow.sdk.exceptions import AirflowFailException

        connection = self.connection
        path = connection.host or connection.schema
        if not path:
            raise AirflowFailException(
                f"SQLite connection {connection.conn_id!r} names no database file (host)"
            )
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            where = "its folder does not exist either" if not file.parent.is_dir() else "no such file"
            raise AirflowFailException(
                f"SQLite connection {connection.conn_id!r}: database file {file} does not exist ({where}); "
                "fix the connection's host (the database file path)"
            )
        return sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True)

    def get_uri(self) -> str:
        connection = self.connection
        return f"sqlite:///{connection.host or connection.schema}"
