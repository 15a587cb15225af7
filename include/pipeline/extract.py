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

import logging
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from functools import partial
from itertools import islice

from include.pipeline import days
from include.pipeline.erased_users import ErasedUserFilter
from include.pipeline.extract_output import PartitionWriter, QuarantineWriter, RecordSorter
from include.pipeline.extract_result import ExtractionError, ExtractionResult, RejectedShareExceeded
from include.pipeline.extract_sql import (
    POSTGRES,
    build_query,
    check_contract,
    dialect_of,
    get_source_hook,
    quarantine_rows_without_time,
    stream_records,
    use_utc_session,
    warn_without_time_index,
)
from include.pipeline.mapping import (
    DatasetMapping,
    quote_identifier,
    schema_for,
)
from include.pipeline.s3_writer import DEFAULT_PART_SIZE, delete_keys, list_keys

log = logging.getLogger(__name__)


DEFAULT_CHUNK_ROWS = 1_000_000
DEFAULT_MAX_REJECTED_SHARE = 0.01


# Records per fast-path batch: large enough to amortise the regex calls, small enough to stay in
# cache (holding thousands of COPY buffers measured several times slower).
RECORD_BATCH = 256


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
    erased_users: frozenset[str] = frozenset(),
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
    dialect = dialect_of(conn)
    if dialect is POSTGRES:
        use_utc_session(conn)
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
            warn_without_time_index(conn, dialect, mapping)
            untimed_key = _join_key(prefix, "quarantine", dataset, partition, "untimed.csv")
            untimed = QuarantineWriter(client, bucket, untimed_key, header, part_size)
            try:
                result.rows_without_time = quarantine_rows_without_time(conn, dialect, mapping, untimed)
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
    # Erased users' rows are dropped before the rules see them: written nowhere, counted as erased.
    erased = ErasedUserFilter(header, erased_users)
    output = PartitionWriter(client, bucket, data_prefix, header, chunk_rows, part_size)
    sorter = RecordSorter(
        schema, output, partial(QuarantineWriter, client, bucket, quarantine_key, header, part_size)
    )
    try:
        records = stream_records(conn, dialect, sql, bound)
        if dialect is POSTGRES and not type(conn).__module__.startswith("psycopg2"):
            take = sorter.take_records if use_fast_path else sorter.take_records_one_by_one
            for batch in iter(partial(_next_batch, records), []):
                take(erased.keep_records(batch))
        else:
            for row in records:
                if erased.keeps_row(row):
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
    result.read, result.written, result.erased = read + erased.erased, written, erased.erased
    result.rejected_by_reason = dict(sorted(rejected.items()))
    result.keys = output.keys
    result.bytes_written = output.bytes_written
    result.content_hash = output.hasher.hexdigest() if output.keys else None
    result.quarantine_key = quarantine.key if quarantine is not None else None
    if read != written + result.rejected:  # the invariant every caller relies on
        raise ExtractionError(
            f"internal error: read {read} != written {written} + rejected {result.rejected}"
        )
    if result.erased:
        log.info("%s: %d row(s) of erased users skipped (written nowhere)", dataset, result.erased)
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
    erased_users: frozenset[str] = frozenset(),
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
        erased_users=erased_users,
    )


def count_days(source, mapping: DatasetMapping, day_starts: Sequence[datetime]) -> dict[str, int]:
    """Rows of the interactions table per day (`dt=` name -> count), by the extraction's own time
    filter, so a day's count is exactly what its extraction reads."""
    if mapping.time_column is None:
        raise ValueError(f"{mapping.table} has no time column: it has no days to count")
    hook = get_source_hook(source)
    conn = hook.get_conn()
    try:
        dialect = dialect_of(conn)
        if dialect is POSTGRES:
            use_utc_session(conn)
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
    erased_users: frozenset[str] = frozenset(),
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
        erased_users=erased_users,
    )
