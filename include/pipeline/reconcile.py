"""Per day: rows in the app DB vs records imported into Personalize vs rows quarantined.

    python -m include.pipeline.reconcile --config NAME [--start YYYY-MM-DD --end YYYY-MM-DD]

App DB counts leave out the rows of erased users that extraction skipped (the ledger's `erased`).
Imported is what the dataset holds by Personalize's record: the manifests of its ACTIVE import
jobs since the newest ACTIVE FULL one. A day is ok when app DB == imported + quarantined, or when
it is carried (extracted, waiting for Personalize's 1000-record import minimum). Prints a table,
writes it as JSON to `s3://BUCKET/PREFIX/reconcile/latest.json`, and exits 1 on any mismatch. The
ingest DAG runs it as its last task, failing for the run's own days and warning for the others.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from include.pipeline import days, rules
from include.pipeline import imports as imp
from include.pipeline.config import PipelineConfig
from include.pipeline.import_ledger import count_csv_rows, discover_partitions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayRow:
    day: str  # YYYY-MM-DD
    app_db: int
    imported: int | None  # None: held by an import job without a manifest (count unknown)
    quarantined: int
    ok: bool
    note: str = ""  # carried, in progress, unknown count, duplicated ... (printed, not in the JSON)

    def as_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "note"}


def reconcile_rows(
    app_db: dict[str, int],
    held: dict[str, int],
    quarantined: dict[str, int],
    *,
    extracted: dict[str, int],
    claimed: Iterable[str],
    unknown: Iterable[str] = (),
    running: Iterable[str] = (),
    min_records: int = rules.MIN_IMPORT_RECORDS,
) -> list[DayRow]:
    """The table (pure: unit-tested without any server). Keys are `dt=` partition names."""
    claimed, unknown, running = set(claimed), set(unknown), set(running)
    pending = {name: n for name, n in extracted.items() if name not in claimed and n > 0}
    carried = sum(pending.values()) < min_records
    rows = []
    for name in sorted(set(app_db) | set(held) | set(extracted)):
        source, bad = app_db.get(name, 0), quarantined.get(name, 0)
        imported: int | None = held.get(name, 0)
        note = ""
        if name in unknown and name not in held:
            imported, note = None, "imported by a job without a manifest: count unknown"
        ok = imported is not None and source == imported + bad
        if not ok and name in running:
            note = "import in progress"
        elif not ok and name in pending and carried and source == extracted[name] + bad:
            ok, note = True, f"carried: waits for the {min_records}-record import minimum"
        elif imported is not None and imported > source - bad and source > 0:
            note = f"imported {imported / max(1, source - bad):.2f}x: duplicated"
        elif not ok and imported == 0:
            note = "not imported"
        elif not ok and imported is not None and imported < source - bad:
            note = "app DB has rows not imported (late rows?): full_import brings them in"
        rows.append(DayRow(days.partition_day(name).isoformat(), source, imported, bad, ok, note))
    return rows


def format_table(rows: list[DayRow]) -> str:
    header = f"{'day':<10}  {'app_db':>8}  {'imported':>8}  {'quarantined':>11}  {'ok':<3}  note"
    lines = [header, "-" * len(header)]
    for r in rows:
        imported = "?" if r.imported is None else str(r.imported)
        lines.append(
            f"{r.day:<10}  {r.app_db:>8}  {imported:>8}  {r.quarantined:>11}  {'yes' if r.ok else 'NO':<3}  {r.note}"
        )
    total = (
        sum(r.app_db for r in rows),
        sum(r.imported or 0 for r in rows),
        sum(r.quarantined for r in rows),
    )
    bad = sum(not r.ok for r in rows)
    lines.append("-" * len(header))
    lines.append(f"{'total':<10}  {total[0]:>8}  {total[1]:>8}  {total[2]:>11}  {bad} mismatch(es)")
    return "\n".join(lines)


def reconcile(config: PipelineConfig, *, start: date | None = None, end: date | None = None) -> list[DayRow]:
    """Gather the three sides for every day of the dataset's history (or [start, end))."""
    from include.pipeline.clients import ledger, personalize_hook, s3_client
    from include.pipeline.extract import count_days

    s3, book = s3_client(config), ledger(config)
    hook = personalize_hook(config)
    client = hook.conn
    arn = _interactions_dataset_arn(hook, config)
    record = imp.read_dataset_record(client, s3, book, "INTERACTIONS", arn) if arn else imp.DatasetRecord()
    partitions = {
        p.name: p for p in discover_partitions(s3, book, "INTERACTIONS", config.s3.key("interactions"))
    }
    quarantined = _quarantined(s3, config)
    names = set(record.held) | set(partitions) | set(quarantined) | set(record.claimed)
    if start is not None and end is not None:
        names |= {
            days.partition_name(d) for d, _ in days.whole_days(days.day_start(start), days.day_start(end))
        }
    names = {
        n
        for n in names
        if (start is None or days.partition_day(n) >= start) and (end is None or days.partition_day(n) < end)
    }
    moments = [days.day_start(days.partition_day(n)) for n in sorted(names)]
    app_db = count_days(config.app_db_conn_id, config.mappings["INTERACTIONS"], moments) if moments else {}
    # Rows of erased users stay in the app DB but are neither imported nor quarantined.
    erased = book.erased_rows(s3, "INTERACTIONS")
    app_db = {name: count - erased.get(name, 0) for name, count in app_db.items()}
    unknown = {n for job in record.active for n, fp in job.partitions.items() if fp is None}
    running = {n for job in record.running for n in job.partitions}
    return reconcile_rows(
        app_db,
        {n: c for n, c in record.held.items() if n in names},
        {n: c for n, c in quarantined.items() if n in names},
        extracted={n: p.records for n, p in partitions.items() if n in names},
        claimed=record.claimed,
        unknown=unknown,
        running=running,
    )


def latest_key(config: PipelineConfig) -> str:
    """`PREFIX/reconcile/latest.json`: the newest reconcile table, which the Airflow UI page reads."""
    return config.s3.key("reconcile", "latest.json")


def write_latest(config: PipelineConfig, rows: list[DayRow], s3: Any = None) -> str:
    """`s3://BUCKET/PREFIX/reconcile/latest.json`, the shape the Airflow UI page reads."""
    if s3 is None:
        from include.pipeline.clients import s3_client

        s3 = s3_client(config)
    key = latest_key(config)
    body = {
        "generated_at": datetime.now(UTC).isoformat(),
        "config": config.name,
        "rows": [r.as_json() for r in rows],
    }
    s3.put_object(
        Bucket=config.s3.bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json"
    )
    return f"s3://{config.s3.bucket}/{key}"


def _interactions_dataset_arn(hook: Any, config: PipelineConfig) -> str | None:
    group_arn = hook.find_dataset_group(config.dataset_group)
    if group_arn is None:
        return None
    datasets = hook.conn.list_datasets(datasetGroupArn=group_arn)["datasets"]
    return next((d["datasetArn"] for d in datasets if d["datasetType"].upper() == "INTERACTIONS"), None)


def _quarantined(s3: Any, config: PipelineConfig) -> dict[str, int]:
    """Rows in each day's quarantine file (`PREFIX/quarantine/interactions/dt=.../rejected.csv`)."""
    folder = config.s3.key("quarantine", "interactions") + "/"
    counts: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.s3.bucket, Prefix=folder):
        for obj in page.get("Contents", []):
            if name := days.partition_in_key(obj["Key"]):
                counts[name] = counts.get(name, 0) + count_csv_rows(s3, config.s3.bucket, obj["Key"])
    return counts


def main(argv: list[str] | None = None) -> int:
    from include.pipeline.config import load_configs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the pipeline's name (`name:` in its YAML)")
    parser.add_argument("--start", type=date.fromisoformat, help="first day (YYYY-MM-DD)")
    parser.add_argument("--end", type=date.fromisoformat, help="day after the last (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    configs = {c.name: c for c in load_configs()}
    if args.config not in configs:
        parser.error(f"--config {args.config!r}: no such pipeline; known: {', '.join(sorted(configs))}")
    config = configs[args.config]
    rows = reconcile(config, start=args.start, end=args.end)
    print(format_table(rows))
    print(f"written to {write_latest(config, rows)}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
