"""Extraction's SQL side: the query per dialect (bound interval params, time units), the
app database connection, the contract check before reading, and streaming its rows."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from include.pipeline import rules
from include.pipeline.extract_result import ExtractionContractError, ExtractionError
from include.pipeline.mapping import (
    DatasetMapping,
    FieldMapping,
    fields_in_csv_order,
    quote_identifier,
    schema_for,
)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
log = logging.getLogger(__name__)


class _Dialect:
    name: str

    def parameter(self, name: str) -> str:
        raise NotImplementedError

    def select_expression(self, f: FieldMapping) -> str:
        raise NotImplementedError

    def time_filter_column(self, column: str, unit: str) -> str:
        """The interval filter's operand: NULL exactly when the row's time is missing or unreadable."""
        raise NotImplementedError

    def raw_text(self, column: str) -> str:
        raise NotImplementedError

    def order_expression(self, f: FieldMapping) -> str:
        raise NotImplementedError

    def bound_time(self, moment: datetime, unit: str = "datetime"):
        if unit == "seconds":
            return int(moment.timestamp())
        if unit == "milliseconds":
            return int(moment.timestamp()) * 1000
        return self._bound_datetime(moment)

    def _bound_datetime(self, moment: datetime):
        raise NotImplementedError


class _Postgres(_Dialect):
    name = "postgres"

    def parameter(self, name: str) -> str:
        return f"%({name})s"

    def select_expression(self, f: FieldMapping) -> str:
        column = quote_identifier(f.column)
        if f.epoch_seconds:
            return f"CAST(floor(extract(epoch FROM {column})) AS bigint)"
        if f.epoch_unit == "milliseconds":
            return f"CAST(floor({column} / 1000.0) AS bigint)"
        if f.epoch_unit == "seconds":
            return f"CAST({column} AS bigint)"
        # Text, so an integer id column still sorts and compares as the string Personalize sees.
        return f"CAST({column} AS text)" if f.type == "string" else column

    def time_filter_column(self, column: str, unit: str) -> str:
        # The contract check made sure the column's type matches the unit, so only NULL is unusable.
        return quote_identifier(column)

    def raw_text(self, column: str) -> str:
        return f"CAST({quote_identifier(column)} AS text)"

    def order_expression(self, f: FieldMapping) -> str:
        # Byte order: fast, and independent of the database's locale.
        expression = self.select_expression(f)
        return f'{expression} COLLATE "C"' if f.type == "string" else expression

    def _bound_datetime(self, moment: datetime):
        return moment


class _Sqlite(_Dialect):
    """SQLite keeps timestamps as ISO-8601 text `YYYY-MM-DD HH:MM:SS` in UTC (the demo DB's format)."""

    name = "sqlite"

    def parameter(self, name: str) -> str:
        return f":{name}"

    def select_expression(self, f: FieldMapping) -> str:
        column = quote_identifier(f.column)
        if f.epoch_seconds:
            # Only text is read as a date/time: strftime would read a number as a Julian day. Anything
            # else is passed on marked, so the rules reject it by value with the value in view.
            return (
                f"CASE WHEN typeof({column}) = 'text' THEN COALESCE(strftime('%s', {column}), {column}) "
                f"WHEN {column} IS NULL THEN NULL "
                f"ELSE 'not a date/time: ' || typeof({column}) || ' ' || {column} END"
            )
        if f.epoch_unit is not None:
            seconds = f"{column} / 1000" if f.epoch_unit == "milliseconds" else column
            return (
                f"CASE WHEN typeof({column}) = 'integer' THEN CAST({seconds} AS TEXT) "
                f"ELSE CAST({column} AS TEXT) END"
            )
        return f"CAST({column} AS TEXT)"

    def time_filter_column(self, column: str, unit: str) -> str:
        column = quote_identifier(column)
        if unit == "datetime":
            # Normalised, so 'T' separators, fractions and offsets compare correctly with the bounds.
            return f"(CASE WHEN typeof({column}) = 'text' THEN strftime('%Y-%m-%d %H:%M:%S', {column}) END)"
        return f"(CASE WHEN typeof({column}) = 'integer' THEN {column} END)"

    def raw_text(self, column: str) -> str:
        return f"CAST({quote_identifier(column)} AS TEXT)"

    def order_expression(self, f: FieldMapping) -> str:
        return self.select_expression(f)

    def _bound_datetime(self, moment: datetime):
        return moment.strftime("%Y-%m-%d %H:%M:%S")


POSTGRES = _Postgres()
SQLITE = _Sqlite()


def _ordered_fields(mapping: DatasetMapping) -> list[FieldMapping]:
    """Key fields first (TIMESTAMP leading, so interactions come out in time order), then the rest."""
    by_name = {f.field: f for f in mapping.fields}
    keys = list(schema_for(mapping).key_fields)
    if "TIMESTAMP" in keys:
        keys.remove("TIMESTAMP")
        keys.insert(0, "TIMESTAMP")
    return [by_name[n] for n in keys] + [f for f in mapping.fields if f.field not in keys]


def build_query(mapping: DatasetMapping, dialect: _Dialect, name: str | None = None) -> str:
    """The extraction SQL for the mapping (`include/sql/<name or dataset>.sql`); the interval stays
    as named parameters `start`, `end`."""
    template = (SQL_DIR / f"{name or mapping.dataset_type.lower()}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in template.splitlines() if not line.startswith("--"))
    parts = {
        "select_list": ", ".join(
            f"{dialect.select_expression(f)} AS {quote_identifier(f.field)}"
            for f in fields_in_csv_order(mapping)
        ),
        "table": ".".join(quote_identifier(part) for part in mapping.table.split(".")),
        "order_by": ", ".join(dialect.order_expression(f) for f in _ordered_fields(mapping)),
    }
    if mapping.time_column is not None:
        parts |= {
            "time_filter_column": dialect.time_filter_column(mapping.time_column, mapping.time_column_unit),
            "raw_time": dialect.raw_text(mapping.time_column),
            "start": dialect.parameter("start"),
            "end": dialect.parameter("end"),
        }
    return body.format(**parts).strip()


# ------------------------------------------------------------------------------------- DB sources


def get_source_hook(source):
    """A common-sql hook for an Airflow connection id (postgres or sqlite), or `source` itself."""
    if not isinstance(source, str):
        return source
    from airflow.sdk import BaseHook

    conn_type = BaseHook.get_connection(source).conn_type
    if conn_type in ("postgres", "postgresql"):
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=source)
    if conn_type == "sqlite":
        from include.pipeline.sqlite_hook import AppSqliteHook

        return AppSqliteHook(sqlite_conn_id=source)
    raise ExtractionError(
        f"connection {source!r} has type {conn_type!r}; extraction supports postgres, sqlite"
    )


def most_active(config, field: str, count: int) -> list[str]:
    """The `count` values of `field` (USER_ID or ITEM_ID) with the most interactions in the app DB,
    most first (ties by value): users and items every model trained on the data has seen."""
    mapping = config.mappings["INTERACTIONS"]
    columns = [f.column for f in mapping.fields if f.field == field]
    if not columns:
        raise ValueError(f"field {field!r} is not mapped in the interactions (mappings.INTERACTIONS)")
    column = quote_identifier(columns[0])
    table = ".".join(quote_identifier(part) for part in mapping.table.split("."))
    sql = (
        f"SELECT {column} FROM {table} GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT {int(count)}"
    )
    return [str(row[0]) for row in get_source_hook(config.app_db_conn_id).get_records(sql)]


def dialect_of(conn) -> _Dialect:
    if isinstance(conn, sqlite3.Connection):
        return SQLITE
    if type(conn).__module__.split(".")[0] in ("psycopg", "psycopg2"):
        return POSTGRES
    raise ExtractionError(f"unsupported DB-API connection {type(conn).__module__}.{type(conn).__name__}")


def stream_records(conn, dialect: _Dialect, sql: str, params: dict) -> Iterator[Sequence[str | None] | bytes]:
    """Rows as value sequences, or (psycopg 3 COPY) as raw UTF-8 CSV records, one per COPY message."""
    if dialect is SQLITE:
        cursor = conn.execute(sql, params)
        try:
            yield from cursor
        finally:
            cursor.close()
        return
    copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, ENCODING 'UTF8')"
    if type(conn).__module__.startswith("psycopg2"):
        yield from _psycopg2_copy_rows(conn, copy_sql, params)
        return
    with conn.cursor() as cursor, cursor.copy(copy_sql, params or None) as copy:
        # Each COPY message is exactly one CSV record (embedded line breaks stay inside quotes).
        yield from copy


def use_utc_session(conn) -> None:
    """Naive `timestamp` columns hold UTC (as the SQLite demo's do): comparing them with the aware
    interval bounds converts them in the session's time zone, which the server may default to local
    time, shifting the interval by hours."""
    cursor = conn.cursor()
    try:
        cursor.execute("SET TIME ZONE 'UTC'")
    finally:
        cursor.close()


def _table_columns(conn, dialect: _Dialect, table: str) -> dict[str, str]:
    """{column: declared type, lower case} of an app table; {} when there is no such table."""
    if dialect is SQLITE:
        *schema, name = table.split(".")
        prefix = f"{quote_identifier(schema[0])}." if schema else ""
        rows = conn.execute(f"PRAGMA {prefix}table_info({quote_identifier(name)})").fetchall()
        return {row[1]: (row[2] or "").lower() for row in rows}
    quoted = ".".join(quote_identifier(part) for part in table.split("."))
    cursor = conn.cursor()
    try:
        cursor.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%(table)s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            {"table": quoted},
        )
        return {name: kind.lower() for name, kind in cursor.fetchall()}
    finally:
        cursor.close()


_POSTGRES_INTEGER_TYPES = ("smallint", "integer", "bigint")


def check_contract(conn, dialect: _Dialect, mapping: DatasetMapping) -> None:
    """The table exists, holds every mapped column, and each time column is of its declared kind.

    Without it a missing column fails late or, on SQLite, silently: an unknown double-quoted name is
    read as a string literal, so every row would carry the column's name as its value.
    """
    dataset = mapping.dataset_type.lower()
    columns = _table_columns(conn, dialect, mapping.table)
    if not columns:
        raise ExtractionContractError(
            f"datasets.{dataset}.table: table {mapping.table!r} does not exist in the app database "
            f"({dialect.name})"
        )
    by_column = {f.column: f for f in mapping.fields}
    for column in mapping.columns:
        if column not in columns:
            field_name = by_column[column].field if column in by_column else "time_column"
            raise ExtractionContractError(
                f"datasets.{dataset}: table {mapping.table!r} has no column {column!r} (mapped to "
                f"{field_name}); its columns are {sorted(columns)}"
            )
    timed = [(f.field, f.column, f.time_unit) for f in mapping.fields if f.time_unit is not None]
    if mapping.time_column is not None and mapping.time_column not in {c for _, c, _ in timed}:
        timed.append(("time_column", mapping.time_column, "datetime"))
    for field_name, column, unit in timed:
        declared = columns[column]
        if dialect is POSTGRES:
            is_datetime = declared.startswith("timestamp") or declared == "date"
            is_integer = declared in _POSTGRES_INTEGER_TYPES
        else:  # SQLite types are advisory; values are checked row by row, only INTEGER columns here
            is_datetime, is_integer = "int" not in declared, "int" in declared or declared in ("", "numeric")
        if unit == "datetime" and not is_datetime:
            hint = (
                f"declare datasets.{dataset}.time_units.{field_name}: seconds or milliseconds"
                if is_integer and field_name != "time_column"
                else "map a date/time column"
            )
            raise ExtractionContractError(
                f"datasets.{dataset}: {mapping.table}.{column} ({field_name}) is {declared or 'untyped'}, "
                f"not a date/time: {hint}"
            )
        if unit in ("seconds", "milliseconds") and not is_integer:
            raise ExtractionContractError(
                f"datasets.{dataset}.time_units.{field_name} is {unit}, but {mapping.table}.{column} is "
                f"{declared}, not an integer column: map an integer epoch column or remove the unit"
            )


def time_column_indexed(conn, dialect: _Dialect, mapping: DatasetMapping) -> bool | None:
    """PostgreSQL: does an index lead with the time column? None when it cannot tell (SQLite, whose
    filter is an expression no column index serves; a view)."""
    if dialect is not POSTGRES or mapping.time_column is None:
        return None
    quoted = ".".join(quote_identifier(part) for part in mapping.table.split("."))
    cursor = conn.cursor()
    try:
        cursor.execute(
            "SELECT c.relkind, EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = c.oid AND a.attname = %(column)s) "
            "FROM pg_class c WHERE c.oid = to_regclass(%(table)s)",
            {"table": quoted, "column": mapping.time_column},
        )
        found = cursor.fetchone()
    finally:
        cursor.close()
    if found is None or found[0] not in ("r", "p", "m"):
        return None
    return bool(found[1])


def warn_without_time_index(conn, dialect: _Dialect, mapping: DatasetMapping) -> None:
    """Without an index on the time column, each day's query and its untimed check read the whole
    table: a catch-up of N days reads it 2N times (one day of 30M rows: 8.9 s without, 5.4 s with;
    bench_extract --days 30)."""
    if time_column_indexed(conn, dialect, mapping) is False:
        log.warning(
            "%s.%s has no index leading with it: every day's extraction reads the whole table. "
            "Add one: CREATE INDEX ON %s (%s)",
            mapping.table,
            mapping.time_column,
            mapping.table,
            quote_identifier(mapping.time_column),
        )


def quarantine_rows_without_time(conn, dialect: _Dialect, mapping: DatasetMapping, writer) -> int:
    """Rows whose time is NULL or unreadable belong to no interval: this run quarantines them with
    their reason, so they are seen and counted instead of being lost."""
    sql = build_query(mapping, dialect, "interactions_without_time")
    unit = mapping.time_column_unit
    time_field = next((f.field for f in mapping.fields if f.column == mapping.time_column), "time_column")
    cursor = conn.cursor()
    count = 0
    try:
        cursor.execute(sql)
        for *row, raw in cursor:
            if raw is None:
                violation = rules.Violation(
                    time_field,
                    "missing_time",
                    f"{mapping.time_column} is empty: the row is in no data interval",
                )
            else:
                hint = (
                    f"; an integer epoch? declare time_units.{time_field}: seconds or milliseconds"
                    if unit == "datetime" and str(raw).lstrip("-").isdigit()
                    else ""
                )
                violation = rules.Violation(
                    time_field,
                    "unreadable_time",
                    f"{mapping.time_column} {str(raw)[:60]!r} is not a readable "
                    f"{'date/time' if unit == 'datetime' else 'epoch in ' + unit}{hint}",
                )
            writer.writerow(["" if v is None else str(v) for v in row], violation)
            count += 1
    finally:
        cursor.close()
    return count


def _psycopg2_copy_rows(conn, copy_sql: str, params: dict) -> Iterator[list[str]]:
    """psycopg2 pushes COPY output into a file; a pipe turns that into rows we can pull."""
    cursor = conn.cursor()
    statement = cursor.mogrify(copy_sql, params or None)
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_fd, "wb") as sink:
                cursor.copy_expert(statement, sink)
        except BaseException as err:  # reported to the reading side below
            failure.append(err)

    producer = threading.Thread(target=produce, name="pg-copy", daemon=True)
    producer.start()
    try:
        with open(read_fd, encoding="utf-8", newline="") as source:
            yield from csv.reader(source)
    finally:
        producer.join()
        cursor.close()
    if failure:
        raise failure[0]
