"""Test app databases (the agreed demo schema) on real PostgreSQL and on SQLite files.

Each `AppDb` owns a uniquely named PostgreSQL schema or a fresh SQLite file, so tests never see each
other's rows; `drop()` removes it.
"""

from __future__ import annotations

import csv
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from airflow.models.connection import Connection
from airflow.providers.postgres.hooks.postgres import PostgresHook

from include.pipeline.mapping import DEMO_INTERACTIONS, DEMO_ITEMS, DEMO_USERS, DatasetMapping
from include.pipeline.sqlite_hook import AppSqliteHook

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_CONNECTION = Connection(
    conn_id="test_app_pg", conn_type="postgres", host="127.0.0.1", port=5432, login="postgres", schema="test"
)

PG_DDL = """
CREATE TABLE {s}.users (user_id TEXT PRIMARY KEY, tier TEXT, region TEXT, signup_at TIMESTAMPTZ);
CREATE TABLE {s}.items (item_id TEXT PRIMARY KEY, category TEXT, price NUMERIC, created_at TIMESTAMPTZ);
CREATE TABLE {s}.events (event_id BIGINT PRIMARY KEY, user_id TEXT, item_id TEXT, event_type TEXT,
                         event_value DOUBLE PRECISION, occurred_at TIMESTAMPTZ);
"""
SQLITE_DDL = """
CREATE TABLE users (user_id TEXT PRIMARY KEY, tier TEXT, region TEXT, signup_at TIMESTAMP);
CREATE TABLE items (item_id TEXT PRIMARY KEY, category TEXT, price REAL, created_at TIMESTAMP);
CREATE TABLE events (event_id INTEGER PRIMARY KEY, user_id TEXT, item_id TEXT, event_type TEXT,
                     event_value REAL, occurred_at TIMESTAMP);
"""


def at(text: str) -> datetime:
    """'2024-03-01 12:00:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class AppDb:
    kind: str  # "postgres" | "sqlite"
    location: str  # schema name or SQLite file path
    hook: object

    def qualified(self, table: str) -> str:
        return f"{self.location}.{table}" if self.kind == "postgres" else table

    def mapping(self, base: DatasetMapping) -> DatasetMapping:
        return DatasetMapping(
            base.dataset_type, self.qualified(base.table), base.fields, base.time_column, base.schema_name
        )

    @property
    def interactions(self) -> DatasetMapping:
        return self.mapping(DEMO_INTERACTIONS)

    @property
    def items(self) -> DatasetMapping:
        return self.mapping(DEMO_ITEMS)

    @property
    def users(self) -> DatasetMapping:
        return self.mapping(DEMO_USERS)

    def execute(self, sql: str, rows: Iterable[tuple] = ()) -> None:
        """Run `sql` once, or once per row; `?` placeholders in either dialect."""
        rows = list(rows)
        if self.kind == "postgres":
            sql = sql.replace("?", "%s").replace("{s}", self.location)
            with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur:
                if rows:
                    cur.executemany(sql, rows)
                else:
                    cur.execute(sql)
        else:
            with sqlite3.connect(self.location) as conn:
                if rows:
                    conn.executemany(sql.replace("{s}.", ""), rows)
                else:
                    conn.executescript(sql.replace("{s}.", ""))
            conn.close()

    def add_events(self, events: Iterable[tuple]) -> None:
        """(event_id, user_id, item_id, event_type, event_value, occurred_at) with occurred_at an
        aware datetime (or, on SQLite only, raw text to store as is)."""
        rows = []
        for event_id, user, item, event_type, value, occurred in events:
            if self.kind == "sqlite" and isinstance(occurred, datetime):
                occurred = occurred.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            rows.append((event_id, user, item, event_type, value, occurred))
        self.execute(
            "INSERT INTO {s}.events (event_id, user_id, item_id, event_type, event_value, occurred_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def drop(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.location} CASCADE")
        else:
            Path(self.location).unlink(missing_ok=True)


def create_app_db(kind: str, directory: Path) -> AppDb:
    if kind == "postgres":
        schema = f"pp_extract_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(PG_DDL.format(s=schema))
        return AppDb("postgres", schema, PostgresHook(connection=PG_CONNECTION))
    path = directory / f"app-{uuid.uuid4().hex[:8]}.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_DDL)
    conn.close()
    connection = Connection(conn_id="test_app_sqlite", conn_type="sqlite", host=str(path))
    return AppDb("sqlite", str(path), AppSqliteHook(connection=connection))


def load_retail_events(db: AppDb, csv_path: Path) -> list[dict]:
    """The UCI Online Retail sample as app events: CustomerID -> user, StockCode -> item,
    InvoiceDate -> time; a negative quantity or a "C" (cancelled) invoice is a "return", else a
    "purchase"; Quantity is the event value. Rows are loaded as they are, dirt included (rows
    without CustomerID keep a NULL user). Returns the source rows for independent expectations."""
    with csv_path.open(newline="", encoding="utf-8") as f:
        source = list(csv.DictReader(f))
    events = []
    for number, row in enumerate(source, start=1):
        is_return = row["InvoiceNo"].startswith("C") or int(row["Quantity"]) < 0
        events.append(
            (
                number,
                row["CustomerID"] or None,
                row["StockCode"],
                "return" if is_return else "purchase",
                float(row["Quantity"]),
                at(row["InvoiceDate"]),
            )
        )
    db.add_events(events)
    return source
