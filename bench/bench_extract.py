"""Extraction benchmark: N interactions in PostgreSQL -> validated CSV on moto's S3 server, against
the physical baseline in the same run: the raw `COPY (same query) TO STDOUT WITH CSV` streamed,
unvalidated, into the same S3 by the same multipart upload.

Each measurement runs in a fresh subprocess so its peak RSS is its own. Goals (issue 6): time ratio
validated/baseline <= 1.3, and peak RSS of the validated run equal within 10% at 1M and 10M rows.
The data: one day of events, one row in a thousand without a user (quarantined by the validated run).
`--days D` puts D such days in the table and extracts the middle one, as each of ingest's day tasks
does in a catch-up; `--time-index` adds the index on the time column an app database should have
(without it each day's query and its untimed check read the whole table, issue 18).

Single runs on the shared 2-core machine read ratios of 1.14, 0.91 and 1.60: noise. So each size is
measured `--repeats` times (default 5) with baseline and validated runs interleaved, their order
alternating (bench/repeats.py), and the ratios print as median, interquartile range and range.
The README's performance table quotes the medians.

    .venv/bin/python bench/bench_extract.py --rows 1000000 10000000 --repeats 5
    .venv/bin/python bench/bench_extract.py --rows 1000000 --days 30 --repeats 3 [--time-index]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from repeats import interleaved, ratio_spreads, spread  # noqa: E402 - bench/ is the script's folder

# Everything talks to a local moto server: fake credentials only, never a real profile.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
)

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
DAY = datetime(2024, 3, 1, tzinfo=UTC)
BUCKET = "bench-extract"
# One row in a thousand lacks its user: the validated run quarantines it, the baseline copies it.
SEED_SQL = """
CREATE TABLE {table} (event_id BIGINT PRIMARY KEY, user_id TEXT, item_id TEXT, event_type TEXT,
                      event_value DOUBLE PRECISION, occurred_at TIMESTAMPTZ);
INSERT INTO {table}
SELECT i,
       CASE WHEN i % 1000 = 999 THEN NULL ELSE 'user' || (i * 7919 % 200003) END,
       'item-' || (i * 104729 % 50021),
       (ARRAY['click', 'view', 'cart', 'purchase'])[1 + i % 4],
       CASE WHEN i % 4 = 3 THEN round((i % 5000) / 100.0, 2) END,
       timestamptz '2024-03-01 00:00:00+00' + (i * (86400.0 * {days} / {rows})) * interval '1 second'
FROM generate_series(0::bigint, {rows} - 1) AS i;
{index}
ANALYZE {table};
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mapping_for(table: str):
    from include.pipeline.mapping import DEMO_INTERACTIONS, DatasetMapping

    m = DEMO_INTERACTIONS
    return DatasetMapping(m.dataset_type, table, m.fields, m.time_column)


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def child(mode: str, table: str, endpoint: str, prefix: str, day: datetime) -> dict:
    """One measured run, in its own process."""
    import psycopg
    from airflow.models.connection import Connection
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from include.pipeline.extract import extract_interval
    from include.pipeline.extract_sql import POSTGRES, build_query
    from include.pipeline.s3_writer import MultipartObjectWriter

    mapping = mapping_for(table)
    client = s3_client(endpoint)
    client.list_buckets()  # connection set up and credentials resolved before the clock starts
    connection = Connection(
        conn_id="bench", conn_type="postgres", host="127.0.0.1", port=5432, login="postgres", schema="test"
    )
    hook = PostgresHook(connection=connection)
    started = time.perf_counter()
    if mode == "baseline":
        sql = build_query(mapping, POSTGRES)
        params = {"start": day, "end": day + timedelta(days=1)}
        out = MultipartObjectWriter(client, BUCKET, f"{prefix}/raw.csv", binary=True)
        rows = 0
        with (
            psycopg.connect(PG_DSN) as conn,
            conn.cursor() as cur,
            cur.copy(f"COPY ({sql}) TO STDOUT WITH CSV", params) as copy,
        ):
            for block in copy:
                out.write(block)
                rows += 1
        out.close()
        figures = {"rows_read": rows, "bytes": out.bytes_written}
    else:
        result = extract_interval(
            hook,
            mapping,
            day,
            day + timedelta(days=1),
            bucket=BUCKET,
            prefix=prefix,
            s3_client=client,
        )
        figures = {
            "rows_read": result.read,
            "written": result.written,
            "rejected": result.rejected,
            "bytes": result.bytes_written,
            "parts": len(result.keys),
        }
    return {"mode": mode, "seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib(), **figures}


def measure(mode: str, table: str, endpoint: str, day: datetime) -> dict:
    prefix = f"{mode}-{uuid.uuid4().hex[:8]}"
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--table",
            table,
            "--endpoint",
            endpoint,
            "--prefix",
            prefix,
            "--day",
            day.isoformat(),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"},
    )
    if output.returncode:
        raise RuntimeError(f"{mode} run failed:\n{output.stderr[-3000:]}")
    figures = json.loads(output.stdout.strip().splitlines()[-1])
    # Free moto's storage before the next run.
    client = s3_client(endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return figures


def bench(rows: int, endpoint: str, repeats: int, days: int = 1, time_index: bool = False) -> dict:
    import psycopg

    schema = f"bench_extract_{uuid.uuid4().hex[:8]}"
    table = f"{schema}.events"
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            seeding = time.perf_counter()
            index = f"CREATE INDEX ON {table} (occurred_at);" if time_index else ""
            conn.execute(SEED_SQL.format(table=table, rows=rows * days, days=days, index=index))
            print(f"seeded {rows * days:,} rows in {time.perf_counter() - seeding:.1f}s", file=sys.stderr)
        day = DAY + timedelta(days=days // 2)
        pairs = interleaved(
            repeats,
            lambda: measure("baseline", table, endpoint, day),
            lambda: measure("validated", table, endpoint, day),
        )
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return {"rows": rows, "days": days, "time_index": time_index, "pairs": pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved baseline/validated pairs per size"
    )
    parser.add_argument(
        "--days", type=int, default=1, help="days of --rows each in the table; the middle one is read"
    )
    parser.add_argument("--time-index", action="store_true", help="index the table's time column")
    parser.add_argument("--child", choices=["baseline", "validated"])
    parser.add_argument("--day")
    parser.add_argument("--table")
    parser.add_argument("--endpoint")
    parser.add_argument("--prefix")
    args = parser.parse_args()
    if args.child:
        day = datetime.fromisoformat(args.day)
        print(json.dumps(child(args.child, args.table, args.endpoint, args.prefix, day)))
        return 0

    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                s3_client(endpoint).create_bucket(Bucket=BUCKET)
                break
            except Exception:
                time.sleep(0.1)
        results = [bench(rows, endpoint, args.repeats, args.days, args.time_index) for rows in args.rows]
    finally:
        moto.terminate()
        moto.wait(timeout=30)

    for r in results:
        pairs = r["pairs"]
        table = f"one day of {r['days']} in the table, time column {'indexed' if r['time_index'] else 'not indexed'}"
        print(f"{r['rows']:,} rows ({table}), {len(pairs)} interleaved pairs (seconds, peak RSS MiB):")
        for index, (b, v) in enumerate(pairs):
            order = "baseline first" if index % 2 == 0 else "validated first"
            print(
                f"  {index + 1}. baseline {b['seconds']:.1f} s {b['peak_rss_mib']:.0f} MiB, validated "
                f"{v['seconds']:.1f} s {v['peak_rss_mib']:.0f} MiB, ratio {v['seconds'] / b['seconds']:.2f} ({order})"
            )
        print(f"  baseline s:  {spread([b['seconds'] for b, _ in pairs])}")
        print(f"  validated s: {spread([v['seconds'] for _, v in pairs])}")
        print(f"  validated rows/s: {spread([v['rows_read'] / v['seconds'] for _, v in pairs])}")
        for label, figure in ratio_spreads(
            pairs, {"time ratio validated/baseline": "seconds", "peak RSS ratio": "peak_rss_mib"}
        ).items():
            print(f"  {label}: {figure}")
        print(f"  validated run: {json.dumps(pairs[-1][1])}")
    if len(results) > 1:
        low = spread([v["peak_rss_mib"] for _, v in results[0]["pairs"]]).median
        high = spread([v["peak_rss_mib"] for _, v in results[-1]["pairs"]]).median
        print(
            f"validated peak RSS (medians) {results[-1]['rows']:,} vs {results[0]['rows']:,} rows: "
            f"{high / low - 1:+.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
