"""History load benchmark: N days x M events a day in PostgreSQL, one manual ingest over all of it on
the real stack (include/stack.py --executor celery) with 1 and with 2 Celery workers.

Per worker count: one stack (Redis, W workers of --concurrency each, PostgreSQL metadata DB), then
--repeats manual runs over the same days. Imports are held by default (the import pool gets 0 slots,
the run is ended once every day task finished): extraction is what is measured, and the local
service's import of 30M rows would load the machine with a cost AWS carries, not this pipeline.
So every run extracts every day again; before each, the interactions partitions are deleted from
S3 anyway. `--imports` lets the runs import (the first imports, the others find the same content
imported). Unpausing the DAG starts its latest scheduled run; the bench ends it (with imports held
it would never end and keep the manual run queued). The app table's time column is indexed, as an
app DB's should be (extraction warns without one).
Figures per run, from the REST API and the mapped tasks' XCom:
  extraction wall   first day task's start to last day task's end (s)
  rows/s per worker rows read / extraction wall / workers
  peak RSS per task max over the day tasks of their process's peak RSS (MiB): flat in M
  S3 bytes          CSV bytes the day tasks wrote
and the medians with their spread over the repeats (bench/repeats.py). The two worker counts run
one after the other (two stacks at once would share the 2 cores): compare medians, not single runs.

    nice -n 5 .venv/bin/python bench/bench_history.py --repeats 3   # 30 days x 1M: 33 min here
    .venv/bin/python bench/bench_history.py --days 5 --events-per-day 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from repeats import spread  # noqa: E402 - bench/ is the script's folder

FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
FIRST_DAY = datetime(2024, 3, 1, tzinfo=UTC)
SEED_SQL = """
CREATE TABLE users (user_id TEXT PRIMARY KEY, tier TEXT, region TEXT);
INSERT INTO users SELECT 'user' || i, (ARRAY['free', 'plus', 'pro'])[1 + i % 3],
       (ARRAY['eu', 'us', 'apac'])[1 + i % 3] FROM generate_series(0, {users} - 1) AS i;
CREATE TABLE items (item_id TEXT PRIMARY KEY, category TEXT, price DOUBLE PRECISION, created_at TIMESTAMPTZ);
INSERT INTO items SELECT 'item-' || i, 'cat-' || (i % 20), 1 + (i % 500) / 10.0,
       timestamptz '2024-01-01 00:00:00+00' FROM generate_series(0, {items} - 1) AS i;
CREATE TABLE events (event_id BIGINT PRIMARY KEY, user_id TEXT, item_id TEXT, event_type TEXT,
                     event_value DOUBLE PRECISION, occurred_at TIMESTAMPTZ);
INSERT INTO events
SELECT i, 'user' || (i * 7919 % {users}), 'item-' || (i * 104729 % {items}),
       (ARRAY['click', 'view', 'cart', 'purchase'])[1 + i % 4],
       CASE WHEN i % 4 = 3 THEN round((i % 5000) / 100.0, 2) END,
       timestamptz '{first}' + (i * (86400.0 * {days} / {rows})) * interval '1 second'
FROM generate_series(0::bigint, {rows} - 1) AS i;
CREATE INDEX events_occurred_at ON events (occurred_at);
ANALYZE events;
"""


def admin(sql: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(sql))
    engine.dispose()


def seed_app_db(name: str, days: int, per_day: int) -> None:
    import psycopg

    admin(f'CREATE DATABASE "{name}"')
    rows = days * per_day
    users, items = max(100, per_day // 20), 1000
    started = time.perf_counter()
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}", autocommit=True) as conn:
        conn.execute(
            SEED_SQL.format(users=users, items=items, rows=rows, days=days, first=FIRST_DAY.isoformat())
        )
    print(f"seeded {rows:,} events ({days} days) in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def bench_config(folder: Path, days: int) -> Path:
    import yaml

    source = ROOT / "include" / "config" / "demo_retail.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["schedule"].update(start_date=FIRST_DAY.isoformat(), catchup=False)
    data["tasks"].update(
        retries=1, retry_delay_seconds=5, poll_seconds=1, defer_after_seconds=60, extract_parallelism=days
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / source.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def measure(workers: int, args, app_db: str, scratch: Path) -> list[dict]:
    from include.stack import Stack
    from include.stack_processes import free_port
    from include.stack_setup import Shop, StackSettings

    metadata = f"pp_bench_meta_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{metadata}"')
    root = scratch / f"stack-{workers}"
    app_conn = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "port": 5432,
        "login": "postgres",
        "schema": app_db,
    }
    settings = StackSettings(
        api_port=free_port(),
        db_url=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{metadata}",
        config_dir=str(bench_config(root / "config", args.days)),
        personalize_delay=0.1,
        parallelism=max(4, 2 * workers * args.concurrency),
        executor="celery",
        celery_workers=workers,
        worker_concurrency=args.concurrency,
        shop=Shop(users=60, items=30, days=2, seed=1),  # the stack's SQLite demo shop: unused here
        extra_env={"AIRFLOW_CONN_DEMO_APP_DB": json.dumps(app_conn)},
    )
    stack = Stack(root / "state", settings)
    runs = []
    try:
        stack.up()
        if not args.imports:
            hold_imports(stack)
        runs = [one_run(stack, args) for _ in range(args.repeats)]
    finally:
        stack.down()
        admin(f'DROP DATABASE IF EXISTS "{metadata}" WITH (FORCE)')
    return runs


def hold_imports(stack) -> None:
    """No import job starts: the import pool gets 0 slots (imports are not what this bench measures,
    and the local service's import reads a dataset into memory, a cost AWS's service does not put
    on this machine)."""
    import httpx

    (config,) = stack.configs()
    pool = config.tasks.import_pool
    httpx.patch(
        f"{stack.base_url}/api/v2/pools/{pool}",
        params={"update_mask": "slots"},
        json={"pool": pool, "slots": 0, "include_deferred": True},
        headers={"Authorization": f"Bearer {stack.token()}"},
        timeout=60,
    ).raise_for_status()


def end_other_runs(api: str, dag_id: str, run_id: str, headers: dict) -> None:
    """Unpausing the DAG starts its latest scheduled run; with imports held it never ends, and the
    DAG's one active run would keep the bench's run queued."""
    import httpx

    runs = httpx.get(f"{api}/dags/{dag_id}/dagRuns", headers=headers, timeout=60).json()["dag_runs"]
    for other in runs:
        if other["dag_run_id"] != run_id and other["state"] in ("queued", "running"):
            url = f"{api}/dags/{dag_id}/dagRuns/{other['dag_run_id']}"
            httpx.patch(url, json={"state": "failed"}, headers=headers, timeout=60).raise_for_status()


def one_run(stack, args) -> dict:
    import httpx

    (config,) = stack.configs()
    dag_id = config.dag_ids["ingest"]
    s3 = stack.s3_client()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=config.s3.bucket, Prefix=config.s3.key("interactions") + "/"
    )
    for obj in (o for page in pages for o in page.get("Contents", [])):
        s3.delete_object(Bucket=config.s3.bucket, Key=obj["Key"])
    headers = {"Authorization": f"Bearer {stack.token()}"}
    api = f"{stack.base_url}/api/v2"
    httpx.patch(f"{api}/dags/{dag_id}", json={"is_paused": False}, headers=headers, timeout=60)
    end = FIRST_DAY + timedelta(days=args.days)
    conf = {"start": FIRST_DAY.date().isoformat(), "end": end.date().isoformat()}
    run = httpx.post(
        f"{api}/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, headers=headers, timeout=60
    ).json()
    run_id = run["dag_run_id"]
    run_url = f"{api}/dags/{dag_id}/dagRuns/{run_id}"
    deadline = time.monotonic() + args.run_timeout
    while True:
        if not args.imports:
            end_other_runs(api, dag_id, run_id, headers)
        state = httpx.get(run_url, headers=headers, timeout=60).json()["state"]
        tis = httpx.get(
            f"{run_url}/taskInstances", params={"limit": 500}, headers=headers, timeout=60
        ).json()["task_instances"]
        days = [ti for ti in tis if ti["task_id"] == "extract_interactions" and ti["map_index"] >= 0]
        extracted = len(days) == args.days and all(ti["state"] in FINISHED for ti in days)
        if state in ("success", "failed") or (extracted and not args.imports):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {dag_id} run {run_id} still {state} after {args.run_timeout} s")
        time.sleep(2)
    if not args.imports and state not in ("success", "failed"):
        # The imports wait on the emptied pool: end the run so the next one can start.
        httpx.patch(run_url, json={"state": "failed"}, headers=headers, timeout=60).raise_for_status()
        state = "success" if all(ti["state"] == "success" for ti in days) else "failed"
    if state != "success" or len(days) != args.days:
        raise SystemExit(f"bench: run {run_id} {state}, {len(days)} day tasks: {[t['state'] for t in tis]}")
    results = []
    for ti in days:
        url = f"{api}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/extract_interactions/xcomEntries/return_value"
        results.append(
            httpx.get(url, params={"map_index": ti["map_index"]}, headers=headers, timeout=60).json()["value"]
        )
    starts = [datetime.fromisoformat(ti["start_date"]) for ti in days]
    ends = [datetime.fromisoformat(ti["end_date"]) for ti in days]
    wall = (max(ends) - min(starts)).total_seconds()
    rows = sum(r["read"] for r in results)
    workers = stack.settings.celery_workers
    return {
        "extraction_wall_s": wall,
        "rows": rows,
        "rows_per_s_per_worker": rows / wall / workers,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        "s3_bytes": sum(r["bytes"] for r in results),
        "hosts": sorted({ti["hostname"] for ti in days}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=1, help="tasks each worker runs at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-timeout", type=float, default=3600)
    parser.add_argument(
        "--imports",
        action="store_true",
        help="let the run import into the local service too (default: imports held, the run ended "
        "once every day is extracted)",
    )
    args = parser.parse_args()
    app_db = f"pp_bench_app_{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="bench-history-"))
    results = {}
    try:
        seed_app_db(app_db, args.days, args.events_per_day)
        for workers in args.workers:
            results[workers] = measure(workers, args, app_db, scratch)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.days} days x {args.events_per_day:,} events, {args.repeats} runs per worker count, "
        f"worker concurrency {args.concurrency}"
    )
    for workers, runs in results.items():
        print(f"{workers} worker(s), day tasks ran on {sorted({h for r in runs for h in r['hosts']})}:")
        for label, key in (
            ("extraction wall s", "extraction_wall_s"),
            ("rows/s per worker", "rows_per_s_per_worker"),
            ("peak RSS per task MiB", "peak_rss_mib"),
            ("S3 bytes", "s3_bytes"),
        ):
            print(f"  {label}: {spread([r[key] for r in runs])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
