"""The ingest DAG's tasks: interval, extraction, import planning and recording, reconcile."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from include.pipeline import days, notify
from include.pipeline import imports as imp
from include.pipeline.clients import ledger, personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.import_ledger import Ledger, discover_partitions
from include.pipeline.schedule import (
    resolve_ingest_interval,
)

log = logging.getLogger(__name__)


SNAPSHOT_TYPES = ("ITEMS", "USERS")


def resolve_interval(config: PipelineConfig, context: Mapping[str, Any]) -> dict:
    params = context["params"]
    interval = resolve_ingest_interval(
        cron=config.schedule.ingest,
        param_start=params.get("start"),
        param_end=params.get("end"),
        data_interval_start=context.get("data_interval_start"),
        data_interval_end=context.get("data_interval_end"),
        run_after=context["dag_run"].run_after,
    )
    days.whole_days(interval.start, interval.end)  # refuses intervals that are not whole days
    log.info("ingest interval [%s, %s), chosen from %s", interval.start, interval.end, interval.source)
    return interval.as_dict()


def extract_snapshots(config: PipelineConfig, interval: Mapping[str, str]) -> dict:
    """Full snapshots of items and users, each with a content hash; a snapshot equal to the last
    one imported is not kept (the earlier copy is), so S3 holds one copy per distinct content."""
    from include.pipeline.extract import extract_snapshot
    from include.pipeline.s3_writer import delete_keys

    s3 = s3_client(config)
    book = ledger(config)
    users_erased = erased_users(config, s3)
    snapshots = {}
    for dataset_type in SNAPSHOT_TYPES:
        mapping = config.mappings.get(dataset_type)
        if mapping is None:
            continue
        result = extract_snapshot(
            config.app_db_conn_id,
            mapping,
            days.maybe_utc(interval["end"]),
            bucket=config.s3.bucket,
            prefix=config.s3.prefix,
            s3_client=s3,
            max_rejected_share=config.datasets.max_rejected_share,
            erased_users=users_erased,
        )
        snapshot = {
            "content_hash": result.content_hash,
            "data_location": result.data_location,
            "records": result.written,
            "as_of": days.maybe_utc(interval["end"]).date().isoformat(),
        }
        previous = _previous_snapshot(s3, book, dataset_type)
        if (
            previous is not None
            and previous["content_hash"] == result.content_hash
            and previous["data_location"].rstrip("/") != result.data_location.rstrip("/")
        ):
            delete_keys(s3, config.s3.bucket, result.keys)
            log.info(
                "%s snapshot unchanged since %s (hash %s): this run's copy is not kept",
                dataset_type, previous["data_location"], result.content_hash,
            )  # fmt: skip
            snapshot = {**snapshot, **previous}
        log.info("%s snapshot: %d records, hash %s", dataset_type, result.written, result.content_hash)
        snapshots[dataset_type] = snapshot
    return snapshots


def erased_users(config: PipelineConfig, s3: Any) -> frozenset[str]:
    """The users an erasure removed: no extract writes their rows anywhere."""
    from include.pipeline.erased_users import ERASED_USERS_FOLDER, read_erased_users

    return read_erased_users(s3, config.s3.bucket, config.s3.key(ERASED_USERS_FOLDER))


def _previous_snapshot(s3: Any, book: Ledger, dataset_type: str) -> dict | None:
    """The newest snapshot a manifest records whose files are still on S3."""
    manifests = sorted(book.manifests(s3, dataset_type), key=lambda m: m.get("written_at", ""))
    for manifest in reversed(manifests):
        location = manifest.get("data_location") or ""
        content_hash = (manifest.get("partitions") or {}).get("snapshot")
        if not (content_hash and location.startswith(f"s3://{book.bucket}/")):
            continue
        folder = location.removeprefix(f"s3://{book.bucket}/")
        if s3.list_objects_v2(Bucket=book.bucket, Prefix=folder, MaxKeys=1).get("KeyCount", 0):
            as_of = days.partition_in_key(folder)
            return {
                "content_hash": content_hash,
                "data_location": location,
                "as_of": days.partition_day(as_of).isoformat() if as_of else manifest.get("as_of"),
            }
    return None


def plan_dataset_imports(
    config: PipelineConfig,
    resources: Mapping[str, Any],
    snapshots: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any],
) -> dict:
    """Decide every import job of this run. Returns the operator kwargs and what each job covers.

    Personalize is the record: its import jobs (joined with the manifest written before each
    one) say which days the dataset holds. A job pending or in progress is adopted and waited on,
    never planned again; an ACTIVE one's days are done; only a failed job's days are planned
    again. The S3 ledger is a cache, rebuilt or overruled from that record.
    """
    from airflow.sdk.exceptions import AirflowFailException

    s3 = s3_client(config)
    book = ledger(config)
    client = personalize_hook(config).conn
    dataset_arns = resources["dataset_arns"]
    asked_full = bool(params.get("full_import"))
    arn = dataset_arns["INTERACTIONS"]

    record = imp.read_dataset_record(client, s3, book, "INTERACTIONS", arn)
    imp.reconcile_ledger(s3, book, "INTERACTIONS", record)
    partitions = discover_partitions(s3, book, "INTERACTIONS", config.s3.key("interactions"))
    jobs, batches = [], []
    for job in record.running:
        location = job.manifest.get("data_location")
        log.info(
            "import job %s is %s (started by an earlier run): adopted, this run waits on it; it holds %s",
            job.name, job.status, sorted(job.partitions),
        )  # fmt: skip
        if not location:
            log.warning(
                "import job %s has no manifest: its days are not planned again, not waited on", job.name
            )
            continue
        jobs.append(_job(config, job.name, arn, location, job.import_mode))
        batches.append(_adopted_batch(job, "INTERACTIONS"))

    current = {p.name: p.fingerprint for p in partitions}
    unknown = sorted(name for name, fp in record.claimed.items() if fp is None and name in current)
    if unknown:
        log.warning(
            "%d day(s) are held by import jobs without a manifest (content unknown): kept as imported, "
            "not imported again: %s",
            len(unknown), unknown,
        )  # fmt: skip
    imported = {name: (current.get(name) if fp is None else fp) for name, fp in record.claimed.items()}
    if changed := sorted(n for n, fp in imported.items() if n in current and fp != current[n]):
        # Interactions have no record ID: importing a changed day again appends all of its rows,
        # doubling the ones already imported. Only a FULL import replaces them.
        log.warning(
            "re-extracted with different content since imported (late or changed rows): %s. Not "
            "imported again (INCREMENTAL would double their earlier rows); reconcile shows the "
            "difference; trigger with full_import to bring them in",
            changed,
        )
        imported.update({n: current[n] for n in changed})
    if asked_full:
        full, why = True, "the run's form asks for full_import"
    elif record.active or record.running:
        full, why = False, f"the dataset holds {len(record.active)} ACTIVE import(s): INCREMENTAL"
    else:
        full, why = True, "the dataset has no ACTIVE import yet"
    plan = imp.plan_imports(partitions, imported, job_prefix=f"{config.name}-interactions", full=full)
    log.info(
        "INTERACTIONS import plan (%s, %s; Personalize: %d ACTIVE, %d running, %d failed job(s), %d records held): %s",
        "FULL" if full else "INCREMENTAL", why, len(record.active), len(record.running), len(record.failed),
        record.held_records, plan.describe(),
    )  # fmt: skip
    if full and plan.batches and record.active:
        after = sum(p.records for p in partitions)
        if after < record.held_records and not params.get("allow_shrink"):
            message = (
                f"a FULL import of INTERACTIONS would leave {after} records ({len(partitions)} day(s) in "
                f"{config.s3.uri('interactions')}/), but the dataset holds {record.held_records} now (by the "
                "manifests of its ACTIVE import jobs). Re-extract the missing days first, or trigger with "
                "allow_shrink to replace the dataset anyway."
            )
            notify.data_shrink(config, message)
            raise AirflowFailException(message)
    for batch in plan.batches:
        location = imp.data_location(s3, book, "INTERACTIONS", batch)
        # The manifest is written before the job exists, so the job can always be mapped back to its days.
        book.write_manifest(
            s3, "INTERACTIONS", {**batch.to_dict(), "dataset_arn": arn, "data_location": location}
        )
        jobs.append(_job(config, batch.job_name, arn, location, batch.import_mode))
        batches.append({**batch.to_dict(), "dataset_type": "INTERACTIONS", "data_location": location})

    for dataset_type, snapshot in snapshots.items():
        planned = _plan_snapshot(config, client, s3, book, dataset_type, snapshot, dataset_arns, asked_full)
        if planned is not None:
            jobs.append(planned[0])
            batches.append(planned[1])
    return {
        "import_jobs": jobs,
        "batches": batches,
        "carried": plan.carried,
        "carried_records": plan.carried_records,
    }


def _adopted_batch(job: imp.ImportJob, dataset_type: str) -> dict:
    return {
        "job_name": job.name,
        "import_mode": job.import_mode,
        "dataset_type": dataset_type,
        "partitions": job.partitions,
        "partition_records": job.manifest.get("partition_records") or {},
        "records": int(job.manifest.get("records") or 0),
        "data_location": job.manifest.get("data_location"),
        "adopted": True,
    }


def _plan_snapshot(
    config: PipelineConfig,
    client: Any,
    s3: Any,
    book: Ledger,
    dataset_type: str,
    snapshot: Mapping[str, Any],
    dataset_arns: Mapping[str, str],
    asked_full: bool,
) -> tuple[dict, dict] | None:
    """A FULL import of the items/users snapshot, only when its content differs from what the
    dataset's newest non-failed import holds (by Personalize and the manifests)."""
    if snapshot["records"] == 0:
        log.info("%s snapshot is empty: nothing to import", dataset_type)
        return None
    arn = dataset_arns[dataset_type]
    record = imp.read_dataset_record(client, s3, book, dataset_type, arn)
    held = [job for job in record.jobs if not job.failed]
    last_hash = held[-1].partitions.get("snapshot") if held else None
    if last_hash == snapshot["content_hash"] and not asked_full:
        log.info(
            "%s snapshot unchanged since import job %s (hash %s): not imported",
            dataset_type,
            held[-1].name,
            last_hash,
        )
        return None
    name = f"{config.name}-{dataset_type.lower()}-{snapshot['as_of'].replace('-', '')}-{snapshot['content_hash'][:10]}"
    location = snapshot["data_location"].rstrip("/") + "/"
    batch = {
        "job_name": name,
        "import_mode": "FULL",
        "dataset_type": dataset_type,
        "partitions": {"snapshot": snapshot["content_hash"]},
        "records": snapshot["records"],
        "data_location": location,
        "as_of": snapshot["as_of"],
    }
    book.write_manifest(s3, dataset_type, {**batch, "dataset_arn": arn})
    log.info(
        "%s snapshot changed (%s -> %s): FULL import %s",
        dataset_type,
        last_hash,
        snapshot["content_hash"],
        name,
    )
    # A snapshot is the whole catalogue (or user base): FULL replaces what was there before.
    return _job(config, name, arn, location, "FULL"), batch


def _job(config: PipelineConfig, name: str, dataset_arn: str, location: str, mode: str) -> dict:
    return {
        "job_name": name,
        "dataset_arn": dataset_arn,
        "data_location": location,
        "import_mode": mode,
        "role_arn": config.role_arn,
    }


def record_imports(
    config: PipelineConfig, plan: Mapping[str, Any], job_arns: Sequence[str], interval: Mapping[str, str]
) -> dict | None:
    """Write the finished jobs to the ledger; return the asset's extra when interactions landed.

    Every finished job is recorded even when another job of the run failed (its ARN is None), and
    only then does this raise: an unrecorded job's partitions would be planned again by the next
    run, under a new job name when merged with new data, and imported twice.
    """
    s3 = s3_client(config)
    book = ledger(config)
    arns = list(job_arns or [])
    if len(arns) != len(plan["batches"]):
        raise RuntimeError(f"{len(plan['batches'])} import jobs planned but {len(arns)} reported an ARN")
    for batch, arn in zip(plan["batches"], arns, strict=True):
        if arn:
            book.record_import(
                s3, batch["dataset_type"], {k: v for k, v in batch.items() if k != "files"}, arn
            )
    if unfinished := [b["job_name"] for b, a in zip(plan["batches"], arns, strict=True) if not a]:
        raise RuntimeError(
            f"import job(s) {unfinished} did not finish (see import_datasets); the finished ones are "
            "recorded in the ledger, so the next run imports only what is still pending"
        )
    landed = [
        (b, a) for b, a in zip(plan["batches"], arns, strict=True) if b["dataset_type"] == "INTERACTIONS"
    ]
    if plan.get("carried"):
        log.info(
            "carried to the next run: %d partition(s), %d records: %s",
            len(plan["carried"]), plan["carried_records"], plan["carried"],
        )  # fmt: skip
    if not landed:
        return None
    return {
        "interval_start": interval["start"],
        "interval_end": interval["end"],
        "records": sum(b["records"] for b, _ in landed),
        "partitions": sorted(p for b, _ in landed for p in b["partitions"]),
        "import_job_arns": [a for _, a in landed],
        "import_modes": sorted({b["import_mode"] for b, _ in landed}),
    }


def reconcile_ingest(config: PipelineConfig, interval: Mapping[str, str]) -> list[dict]:
    """Per day: app DB vs imported vs quarantined, written to S3 for the UI. A mismatch on a day of
    this run's interval fails the task (no retry: rerunning does not change the counts); one on
    another day is a warning, so drift is seen the day it happens without blocking today's data."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.reconcile import format_table, reconcile, write_latest

    rows = reconcile(config)
    location = write_latest(config, rows)
    log.info("reconcile (written to %s):\n%s", location, format_table(rows))
    own = {
        days.partition_name(d).removeprefix("dt=")
        for d, _ in days.whole_days(interval["start"], interval["end"])
    }
    outside = [r for r in rows if not r.ok and r.day not in own]
    inside = [r for r in rows if not r.ok and r.day in own]
    if outside:
        log.warning(
            "RECONCILE: %d day(s) outside this run's interval do not match: %s",
            len(outside), "; ".join(f"{r.day} app_db={r.app_db} imported={r.imported} quarantined={r.quarantined} {r.note}" for r in outside),
        )  # fmt: skip
    if inside:
        raise AirflowFailException(
            "RECONCILE: this run's day(s) do not match (app DB != imported + quarantined): "
            + "; ".join(
                f"{r.day} app_db={r.app_db} imported={r.imported} quarantined={r.quarantined} {r.note}"
                for r in inside
            )
            + f". Full table in the log and {location}; run `python -m include.pipeline.reconcile --config {config.name}`."
        )
    return [r.as_json() for r in rows]
