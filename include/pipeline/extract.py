"""Extraction: app database -> validated Personalize CSVs on S3, streamed with flat memory.

Interactions are extracted per data interval [start, end) into
`s3://BUCKET/PREFIX/interactions/dt=YYYY-MM-DD/part-NNNNN.csv`; items and users as full snapshots
into `.../items/dt=.../` and `.../users/dt=.../` with a content hash. Every row read is either written
or quarantined with its reason in `PREFIX/quarantine/<dataset>/dt=.../rejected.csv` (outside the
data folder, because a Personalize import job reads every file in the folder it is given).

Rows come from the database in key order, so a duplicate is the row right after its twin and only
one key is held; rows stream through the Personalize rules (`include.pipeline.rules`) into
multipart uploads, so memory does not grow with the number of rows. A rerun writes the same bytes
to the same keys and deletes parts an earlier run left beyond them.

PostgreSQL streams `COPY (query) TO STDOUT` CSV. Its records are checked in batches of a few hundred
by a regex that the rules module derives from the same rules (`csv_line_pattern`): lines it vouches
for are valid and already exactly what csv.writer would write, so they are copied through; any
other record (quoted values, empty or odd values, duplicates) is parsed by the csv module, judged
field by field with `check_values`, and written by csv.writer or quarantined. SQLite rows take that
second path directly.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from itertools import islice
from operator import itemgetter
from pathlib import Path

from airflow.sdk.exceptions import AirflowFailException

from include.pipeline import days, rules
from include.pipeline.mapping import (
    DatasetMapping,
    FieldMapping,
    fields_in_csv_order,
    quote_identifier,
    schema_for,
)
from include.pipeline.s3_writer import DEFAULT_PART_SIZE, MultipartObjectWriter, delete_keys, list_keys

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
DEFAULT_CHUNK_ROWS = 1_000_000
DEFAULT_MAX_REJECTED_SHARE = 0.01
QUARANTINE_COLUMNS = ("rule", "reason")
# Records per fast-path batch: large enough to amortise the regex calls, small enough to stay in
# cache (holding thousands of COPY buffers measured several times slower).
RECORD_BATCH = 256


class ExtractionError(RuntimeError):
    """Extraction could not produce a valid dataset; the message says why and what was kept."""


class ExtractionContractError(ExtractionError, AirflowFailException):
    """The app database does not hold what the config maps (a table, a column, a time type): a retry
    cannot fix it, so the task fails at once; the message names table, column and what to change."""


class RejectedShareExceeded(ExtractionError):
    """More rows broke the rules than the configured share allows; `result` holds the counts."""

    def __init__(self, message: str, result: ExtractionResult):
        super().__init__(message)
        self.result = result


@dataclass
class ExtractionResult:
    """What one extraction did. `to_dict()` is JSON-safe for XCom."""

    dataset_type: str
    bucket: str
    data_prefix: str  # the folder a dataset import job should read
    read: int = 0
    written: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    quarantine_key: str | None = None
    bytes_written: int = 0
    start: str | None = None
    end: str | None = None
    content_hash: str | None = None  # snapshots: sha256 of the written CSV bytes, parts in order
    # Interactions whose time column is NULL or unreadable: in no interval, so this run quarantined
    # them with their reason in `untimed_quarantine_key` (outside the interval's counts and share).
    rows_without_time: int = 0
    untimed_quarantine_key: str | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def data_location(self) -> str:
        return f"s3://{self.bucket}/{self.data_prefix}"

    @property
    def empty(self) -> bool:
        return self.read == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "rejected": self.rejected, "data_location": self.data_location}


# --------------------------------------------------------------------------------------------- SQL


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


def _dialect_of(conn) -> _Dialect:
    if isinstance(conn, sqlite3.Connection):
        return SQLITE
    if type(conn).__module__.split(".")[0] in ("psycopg", "psycopg2"):
        return POSTGRES
    raise ExtractionError(f"unsupported DB-API connection {type(conn).__module__}.{type(conn).__name__}")


def _stream_records(
    conn, dialect: _Dialect, sql: str, params: dict
) -> Iterator[Sequence[str | None] | bytes]:
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


def _use_utc_session(conn) -> None:
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


def _quarantine_rows_without_time(conn, dialect: _Dialect, mapping: DatasetMapping, writer) -> int:
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


def _parse_record(record: bytes) -> list[str]:
    return next(csv.reader([str(record, "utf-8")]))


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


# ---------------------------------------------------------------------------------------- output


class _PartitionWriter:
    """Valid rows into part-NNNNN.csv files of at most `chunk_rows` rows, each with the header."""

    def __init__(self, client, bucket: str, prefix: str, header: Sequence[str], chunk_rows, part_size):
        self._client, self._bucket, self._prefix = client, bucket, prefix
        self._header, self._chunk_rows, self._part_size = list(header), chunk_rows, part_size
        self.hasher = hashlib.sha256()
        self.keys: list[str] = []
        self.bytes_written = 0
        self._current: MultipartObjectWriter | None = None
        self._writer = None
        self._rows_in_part = 0

    def _open_part(self) -> None:
        key = f"{self._prefix}part-{len(self.keys):05d}.csv"
        self._current = MultipartObjectWriter(
            self._client, self._bucket, key, part_size=self._part_size, hasher=self.hasher, binary=True
        )
        self.keys.append(key)
        # Valid values never hold \r or \n (a Personalize rule), so \n-terminated lines are safe.
        self._writer = csv.writer(_Utf8Writer(self._current), lineterminator="\n")
        self._writer.writerow(self._header)
        self._rows_in_part = 0

    def _close_part(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            current.close()
            self.bytes_written += current.bytes_written

    def writerow(self, row: Sequence[str | None]) -> None:
        if self._rows_in_part >= self._chunk_rows or self._current is None:
            self._close_part()
            self._open_part()
        self._writer.writerow(row)
        self._rows_in_part += 1

    def write_block(self, block: bytes, lines: int) -> None:
        """`lines` whole records, each a line `csv_line_pattern` matched: exactly the bytes
        `writerow` would write for them."""
        while lines:
            if self._rows_in_part >= self._chunk_rows or self._current is None:
                self._close_part()
                self._open_part()
            take = min(lines, self._chunk_rows - self._rows_in_part)
            if take < lines:  # crosses into the next part: once per part, so a split is cheap
                cut = len(b"".join(line + b"\n" for line in block.split(b"\n", take)[:take]))
                head, block = block[:cut], block[cut:]
            else:
                head = block
            self._current.write(head)
            self._rows_in_part += take
            lines -= take

    def close(self) -> None:
        self._close_part()

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None


class _Utf8Writer:
    """Text in, UTF-8 bytes out: lets csv.writer write into a binary object."""

    def __init__(self, target: MultipartObjectWriter):
        self._target = target

    def write(self, text: str) -> int:
        return self._target.write(text.encode("utf-8"))


class _QuarantineWriter:
    def __init__(self, client, bucket: str, key: str, header: Sequence[str], part_size: int):
        self.key = key
        self._object = MultipartObjectWriter(client, bucket, key, part_size=part_size)
        # Every field quoted: Python 3.11's writer leaves a lone \r unquoted when the line ends in \n,
        # and rejected values are exactly where line breaks turn up.
        self._writer = csv.writer(self._object, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self._writer.writerow([*header, *QUARANTINE_COLUMNS])

    def writerow(self, row: Sequence[str | None], violation: rules.Violation) -> None:
        self._writer.writerow([*row, f"{violation.field}:{violation.code}", violation.reason])

    def close(self) -> None:
        self._object.close()

    def abort(self) -> None:
        self._object.abort()


class _RecordSorter:
    """Sends each record to the output or, with the rule it breaks, to the quarantine.

    Records arrive in key order, so a duplicate directly follows the record it repeats: only the last
    written key is kept. Keys are compared as UTF-8 bytes whichever path a record takes.

    Raw PostgreSQL CSV records go in batches: one regex pass (`_run_pattern`) finds the longest run
    of lines that `csv_line_pattern` vouches for and whose key differs from the line before, and
    the run is written as one block; only the lines that stop a run are parsed and judged alone.
    """

    def __init__(self, schema: rules.DatasetSchema, output: _PartitionWriter, open_quarantine):
        self._schema = schema
        self._output = output
        self._open_quarantine = open_quarantine
        self.quarantine: _QuarantineWriter | None = None
        self.read = self.written = 0
        self.rejected: Counter[str] = Counter()
        self._last_key = None
        self._duplicate = rules.duplicate(schema.key_fields)
        key_indexes = [schema.field_names.index(n) for n in schema.key_fields]
        self._key_of = itemgetter(*key_indexes)
        self._key_groups = [i + 1 for i in key_indexes]
        self._line = schema.csv_line_pattern().match
        self._run = _run_pattern(schema).match

    def _key_bytes(self, row: Sequence[str]) -> tuple[bytes, ...] | bytes:
        values = self._key_of(row)
        if isinstance(values, tuple):
            return tuple(str(v).encode("utf-8") for v in values)
        return str(values).encode("utf-8")

    def _reject(self, row: Sequence[str | None], violation: rules.Violation) -> None:
        if self.quarantine is None:
            self.quarantine = self._open_quarantine()
        self.quarantine.writerow(row, violation)
        self.rejected[f"{violation.field}:{violation.code}"] += 1

    def take_row(self, row: Sequence[str | None]) -> None:
        """One record as values (SQLite rows, parsed CSV)."""
        self.read += 1
        violation = self._schema.check_values(row)
        if violation is None:
            key = self._key_bytes(row)
            if key == self._last_key:
                violation = self._duplicate
            else:
                self._last_key = key
                self._output.writerow(row)
                self.written += 1
                return
        self._reject(row, violation)

    def take_records_one_by_one(self, records: list[bytes]) -> None:
        for record in records:
            self.take_row(_parse_record(record))

    def take_records(self, records: list[bytes]) -> None:
        """A batch of raw CSV records from PostgreSQL's COPY, one record per item."""
        blob = b"".join(records)
        index, position = 0, 0
        while index < len(records):
            run_end = self._run(blob, position).end()
            if run_end > position and self._key(blob, position) == self._last_key:
                run_end = position  # the run starts with a duplicate: judge it alone
            if run_end > position:
                # Plain lines only, so line i of the run is record index + i.
                lines = blob.count(b"\n", position, run_end)
                self._output.write_block(blob[position:run_end], lines)
                self.read += lines
                self.written += lines
                index += lines
                position = run_end
                self._last_key = self._key(records[index - 1])
            if index < len(records):
                # The record that ended the run, judged alone: a duplicate, or a value the fast test
                # cannot vouch for.
                record = records[index]
                self.take_row(_parse_record(record))
                index += 1
                position += len(record)

    def _key(self, data: bytes, position: int = 0) -> tuple[bytes, ...] | bytes:
        return self._line(data, position).group(*self._key_groups)

    def close(self) -> None:
        self._output.close()
        if self.quarantine is not None:
            self.quarantine.close()

    def abort(self) -> None:
        self._output.abort()
        if self.quarantine is not None:
            self.quarantine.abort()


def _run_pattern(schema: rules.DatasetSchema) -> re.Pattern[bytes]:
    """Consecutive lines that `csv_line_pattern` vouches for, stopping before a line whose key
    repeats the line before. The key fields lead every line (`fields_in_csv_order`), and plain values
    hold no commas, so equal keys are equal line prefixes: a backreference compares them."""
    values = [b"(?:%s)%s" % pair for pair in schema.csv_value_patterns()]
    key_size = len(schema.key_fields)
    if schema.field_names[:key_size] != list(schema.key_fields):
        raise ExtractionError(f"key fields {schema.key_fields} must lead the columns {schema.field_names}")
    key = b",".join(values[:key_size])
    rest = b"".join(b"," + v for v in values[key_size:])
    return re.compile(b"(?:(?P<key>%s)%s\n(?!(?P=key)[,\n]))*" % (key, rest))


# -------------------------------------------------------------------------------------- the run


def _next_batch(records: Iterator[bytes]) -> list[bytes]:
    return list(islice(records, RECORD_BATCH))


def _join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _s3_client(s3_client, aws_conn_id: str | None):
    if s3_client is not None:
        return s3_client
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def _run(
    source,
    mapping: DatasetMapping,
    *,
    partition: str,
    params: dict,
    result: ExtractionResult,
    s3_client,
    aws_conn_id: str | None,
    prefix: str,
    max_rejected_share: float,
    chunk_rows: int,
    part_size: int,
    use_fast_path: bool = True,
) -> ExtractionResult:
    if not 0 <= max_rejected_share <= 1:
        raise ValueError(f"max_rejected_share={max_rejected_share} must be between 0 and 1")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} must be at least 1")
    client = _s3_client(s3_client, aws_conn_id)
    dataset = mapping.dataset_type.lower()
    bucket = result.bucket
    data_prefix = _join_key(prefix, dataset, partition) + "/"
    quarantine_key = _join_key(prefix, "quarantine", dataset, partition, "rejected.csv")
    result.data_prefix = data_prefix
    schema = schema_for(mapping)
    header = schema.field_names

    hook = get_source_hook(source)
    conn = hook.get_conn()
    dialect = _dialect_of(conn)
    if dialect is POSTGRES:
        _use_utc_session(conn)
    sql = build_query(mapping, dialect)
    unit = mapping.time_column_unit if mapping.time_column is not None else "datetime"
    bound = {name: dialect.bound_time(value, unit) for name, value in params.items()}
    log.info(
        "Extracting %s from %s (%s) into s3://%s/%s",
        dataset,
        mapping.table,
        dialect.name,
        bucket,
        data_prefix,
    )

    try:
        check_contract(conn, dialect, mapping)
        if mapping.time_column is not None:
            untimed_key = _join_key(prefix, "quarantine", dataset, partition, "untimed.csv")
            untimed = _QuarantineWriter(client, bucket, untimed_key, header, part_size)
            try:
                result.rows_without_time = _quarantine_rows_without_time(conn, dialect, mapping, untimed)
                untimed.close()
            except BaseException:
                untimed.abort()
                raise
            if result.rows_without_time:
                result.untimed_quarantine_key = untimed_key
            else:
                delete_keys(
                    client, bucket, [k for k in list_keys(client, bucket, untimed_key) if k == untimed_key]
                )
    except BaseException:
        conn.close()
        raise
    existing = set(list_keys(client, bucket, data_prefix))
    output = _PartitionWriter(client, bucket, data_prefix, header, chunk_rows, part_size)
    sorter = _RecordSorter(
        schema, output, partial(_QuarantineWriter, client, bucket, quarantine_key, header, part_size)
    )
    try:
        records = _stream_records(conn, dialect, sql, bound)
        if dialect is POSTGRES and not type(conn).__module__.startswith("psycopg2"):
            take = sorter.take_records if use_fast_path else sorter.take_records_one_by_one
            for batch in iter(partial(_next_batch, records), []):
                take(batch)
        else:
            for row in records:
                sorter.take_row(row)
        sorter.close()
    except BaseException:
        sorter.abort()
        if output.keys:
            # Old parts are partly overwritten: a mixed partition must never be imported.
            delete_keys(client, bucket, set(output.keys) | existing)
        raise
    finally:
        conn.close()
    quarantine = sorter.quarantine
    read, written, rejected = sorter.read, sorter.written, sorter.rejected

    stale = existing - set(output.keys)
    delete_keys(client, bucket, stale)
    if quarantine is None:
        delete_keys(
            client, bucket, [k for k in list_keys(client, bucket, quarantine_key) if k == quarantine_key]
        )
    result.read, result.written = read, written
    result.rejected_by_reason = dict(sorted(rejected.items()))
    result.keys = output.keys
    result.bytes_written = output.bytes_written
    result.content_hash = output.hasher.hexdigest() if output.keys else None
    result.quarantine_key = quarantine.key if quarantine is not None else None
    if read != written + result.rejected:  # the invariant every caller relies on
        raise ExtractionError(
            f"internal error: read {read} != written {written} + rejected {result.rejected}"
        )
    span = f"[{result.start}, {result.end})" if result.start else "snapshot"
    log.info(
        "%s %s: read %d, written %d, rejected %d %s -> %d part(s) under %s",
        dataset,
        span,
        read,
        written,
        result.rejected,
        result.rejected_by_reason,
        len(output.keys),
        result.data_location,
    )
    if result.rows_without_time:
        log.warning(
            "%d row(s) of %s have no usable %s and belong to no interval: quarantined with their "
            "reason in s3://%s/%s",
            result.rows_without_time,
            mapping.table,
            mapping.time_column,
            bucket,
            result.untimed_quarantine_key,
        )
    if read == 0:
        log.warning("%s %s is empty: nothing written to %s", dataset, span, result.data_location)
    elif result.rejected / read > max_rejected_share:
        delete_keys(client, bucket, output.keys)
        result.keys = []
        reasons = ", ".join(f"{reason} {count}" for reason, count in result.rejected_by_reason.items())
        raise RejectedShareExceeded(
            f"{dataset} {span}: {result.rejected} of {read} rows rejected "
            f"({result.rejected / read:.2%}), over the {max_rejected_share:.2%} limit: {reasons}. "
            f"Rejected rows with reasons: s3://{bucket}/{quarantine_key}; nothing was kept in "
            f"{result.data_location}.",
            result,
        )
    return result


def extract_interval(
    source,
    mapping: DatasetMapping,
    start: datetime,
    end: datetime,
    *,
    bucket: str,
    prefix: str = "",
    s3_client=None,
    aws_conn_id: str | None = "aws_default",
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    part_size: int = DEFAULT_PART_SIZE,
    fast_path: bool = True,
) -> ExtractionResult:
    """Extract interactions with `start <= time < end` into `PREFIX/interactions/dt=<start date>/`.

    `source` is an Airflow connection id (postgres or sqlite) or a common-sql hook. The interval must
    cover whole UTC days (it names the dt= partition). S3 is `s3_client` if given, else the S3 hook
    of `aws_conn_id`. Raises RejectedShareExceeded (with the counts and quarantine location) when
    more than `max_rejected_share` of the rows break the rules. `fast_path=False` sends every
    PostgreSQL record through the csv parser and writer (same bytes, slower; for comparison).
    """
    if mapping.dataset_type != "INTERACTIONS":
        raise ValueError(f"extract_interval takes an INTERACTIONS mapping, not {mapping.dataset_type}")
    start = days.to_utc(start, "start", naive_is_utc=False)
    end = days.to_utc(end, "end", naive_is_utc=False)
    if end <= start:
        raise ValueError(f"empty or reversed interval: start={start.isoformat()} end={end.isoformat()}")
    if not (days.is_midnight(start) and days.is_midnight(end)):
        raise ValueError(
            f"interval [{start.isoformat()}, {end.isoformat()}) must start and end at midnight UTC: "
            "it names the dt=YYYY-MM-DD partition"
        )
    result = ExtractionResult("INTERACTIONS", bucket, "", start=start.isoformat(), end=end.isoformat())
    return _run(
        source,
        mapping,
        partition=days.partition_name(start),
        params={"start": start, "end": end},
        result=result,
        s3_client=s3_client,
        aws_conn_id=aws_conn_id,
        prefix=prefix,
        max_rejected_share=max_rejected_share,
        chunk_rows=chunk_rows,
        part_size=part_size,
        use_fast_path=fast_path,
    )


def count_days(source, mapping: DatasetMapping, day_starts: Sequence[datetime]) -> dict[str, int]:
    """Rows of the interactions table per day (`dt=` name -> count), by the extraction's own time
    filter, so a day's count is exactly what its extraction reads."""
    if mapping.time_column is None:
        raise ValueError(f"{mapping.table} has no time column: it has no days to count")
    hook = get_source_hook(source)
    conn = hook.get_conn()
    try:
        dialect = _dialect_of(conn)
        if dialect is POSTGRES:
            _use_utc_session(conn)
        unit = mapping.time_column_unit
        column = dialect.time_filter_column(mapping.time_column, unit)
        table = ".".join(quote_identifier(part) for part in mapping.table.split("."))
        sql = (
            f"SELECT COUNT(*) FROM {table} WHERE {column} >= {dialect.parameter('start')} "
            f"AND {column} < {dialect.parameter('end')}"
        )
        counts = {}
        for day_start in day_starts:
            day_start = days.to_utc(day_start, "day", naive_is_utc=False)
            bounds = {"start": day_start, "end": day_start + timedelta(days=1)}
            cursor = conn.cursor()
            try:
                cursor.execute(sql, {k: dialect.bound_time(v, unit) for k, v in bounds.items()})
                counts[days.partition_name(day_start)] = int(cursor.fetchone()[0])
            finally:
                cursor.close()
        return counts
    finally:
        conn.close()


def extract_snapshot(
    source,
    mapping: DatasetMapping,
    as_of: date | datetime,
    *,
    bucket: str,
    prefix: str = "",
    s3_client=None,
    aws_conn_id: str | None = "aws_default",
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    part_size: int = DEFAULT_PART_SIZE,
    fast_path: bool = True,
) -> ExtractionResult:
    """Extract all ITEMS or USERS into `PREFIX/<dataset>/dt=<as_of date>/`, with a content hash.

    Equal hashes mean byte-identical snapshots: the DAG can skip the metadata import.
    """
    if mapping.dataset_type not in ("ITEMS", "USERS"):
        raise ValueError(f"extract_snapshot takes an ITEMS or USERS mapping, not {mapping.dataset_type}")
    day = days.to_utc(as_of, "as_of", naive_is_utc=False).date() if isinstance(as_of, datetime) else as_of
    result = ExtractionResult(mapping.dataset_type, bucket, "")
    return _run(
        source,
        mapping,
        partition=days.partition_name(day),
        params={},
        result=result,
        s3_client=s3_client,
        aws_conn_id=aws_conn_id,
        prefix=prefix,
        max_rejected_share=max_rejected_share,
        chunk_rows=chunk_rows,
        part_size=part_size,
        use_fast_path=fast_path,
    )


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_MAX_REJECTED_SHARE",
    "ExtractionContractError",
    "ExtractionError",
    "ExtractionResult",
    "RejectedShareExceeded",
    "build_query",
    "count_days",
    "extract_interval",
    "extract_snapshot",
    "get_source_hook",
]
