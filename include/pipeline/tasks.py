"""What the DAGs' Python tasks do. The DAG file only wires these together.

Each function takes the validated config and the task's inputs and does the work through
Airflow's hooks (the AWS connection decides whether that is AWS or the local service), logging
what it decided and why in plain words, since the task log is what a person reads in the UI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from include.pipeline import days, notify
from include.pipeline import imports as imp
from include.pipeline.clients import ledger, personalize_hook, runtime_client, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.gate import GateDecision, decide
from include.pipeline.history import append_record, history_key, read_history
from include.pipeline.mapping import quote_identifier
from include.pipeline.schedule import (
    catching_up,
    cost_guard,
    resolve_ingest_interval,
    serving_age_warning,
)

log = logging.getLogger(__name__)

SNAPSHOT_TYPES = ("ITEMS", "USERS")


class SmokeTestFailed(RuntimeError):
    pass


# ------------------------------------------------------------------------------------ clients


def on_failure_summary(context: Mapping[str, Any]) -> None:
    """One line per failed task: the hook point for Slack / SNS / PagerDuty notifiers."""
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    log.error(
        "PIPELINE FAILURE dag=%s task=%s run=%s try=%s: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "run_id", "?"),
        getattr(ti, "try_number", "?"),
        (str(error).splitlines() or [type(error).__name__])[0] if error else "no exception recorded",
    )


# -------------------------------------------------------------------------------------- ingest


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


def extract_interactions(config: PipelineConfig, interval: Mapping[str, str]) -> dict:
    """Extract each day of the interval into its own partition and record it in the ledger."""
    from include.pipeline.extract import extract_interval

    s3 = s3_client(config)
    book = ledger(config)
    mapping = config.mappings["INTERACTIONS"]
    totals = {"read": 0, "written": 0, "rejected": 0, "partitions": []}
    for day_start, day_end in days.whole_days(interval["start"], interval["end"]):
        result = extract_interval(
            config.app_db_conn_id,
            mapping,
            day_start,
            day_end,
            bucket=config.s3.bucket,
            prefix=config.s3.prefix,
            s3_client=s3,
            max_rejected_share=config.datasets.max_rejected_share,
        )
        partition = imp.Partition(
            days.partition_name(day_start),
            result.written,
            imp.describe_files(s3, config.s3.bucket, result.keys),
            result.data_prefix,
        )
        book.record_partition(
            s3, "INTERACTIONS", partition, start=result.start, end=result.end, read=result.read,
            rejected_by_reason=result.rejected_by_reason, quarantine_key=result.quarantine_key,
        )  # fmt: skip
        totals["read"] += result.read
        totals["written"] += result.written
        totals["rejected"] += result.rejected
        totals["partitions"].append({"name": partition.name, "records": partition.records})
    log.info(
        "extracted %d day(s): %d rows read, %d written, %d quarantined",
        len(totals["partitions"]), totals["read"], totals["written"], totals["rejected"],
    )  # fmt: skip
    return totals


def extract_snapshots(config: PipelineConfig, interval: Mapping[str, str]) -> dict:
    """Full snapshots of items and users, each with a content hash; a snapshot equal to the last
    one imported is not kept (the earlier copy is), so S3 holds one copy per distinct content."""
    from include.pipeline.extract import extract_snapshot
    from include.pipeline.s3_writer import delete_keys

    s3 = s3_client(config)
    book = ledger(config)
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


def _previous_snapshot(s3: Any, book: imp.Ledger, dataset_type: str) -> dict | None:
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
    partitions = imp.discover_partitions(s3, book, "INTERACTIONS", config.s3.key("interactions"))
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
    book: imp.Ledger,
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


# ------------------------------------------------------------------------------- train_deploy


def plan_training(config: PipelineConfig, resources: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """Decide whether this run trains, in which mode, against which champion."""
    params = context["params"]
    forced_reason = (params.get("force_reason") or "").strip() or None
    if params.get("force_deploy") and not forced_reason:
        raise ValueError("param force_deploy needs force_reason: say why the gate is being overridden")
    training_mode = params.get("training_mode") or config.solution.training_mode
    if training_mode == "UPDATE" and not config.solution.supports_update:
        raise ValueError(f"param training_mode UPDATE: recipe {config.solution.recipe} supports FULL only")
    hook = personalize_hook(config)
    now = datetime.now(UTC)
    solution_arn = resources["solution_arns"][config.solution.name]
    campaign = hook.find_campaign(config.campaign.name)
    champion_arn = hook.get_serving_solution_version(config.campaign.name)
    serving_created = _version_created(hook, champion_arn)
    if warning := serving_age_warning(
        serving_created, max_age_days=config.campaign.max_serving_age_days, now=now
    ):
        log.warning("SERVING MODEL AGE: %s", warning)
        notify.serving_model_too_old(config, warning)

    forced = bool(params.get("force_deploy"))
    decision = None
    dag_run = context["dag_run"]
    events = context.get("triggering_asset_events") or {}
    landed = [
        event.extra
        for asset_events in events.values()
        for event in asset_events
        if (event.extra or {}).get("interval_end")
    ]
    ends = [days.maybe_utc(extra["interval_end"]) for extra in landed]
    newest_import = _newest_import(hook, resources["dataset_arns"].values())
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) == "asset_triggered" and not forced:
        decision = catching_up(ends, cron=config.schedule.ingest, now=now)
    if decision is None:
        decision = cost_guard(
            newest_import=newest_import,
            serving_created=serving_created,
            latest_trained=_version_created(hook, hook.get_latest_active_solution_version(solution_arn)),
            forced=forced,
            training_mode=training_mode,
        )
    dataset_records = imp.read_dataset_record(
        hook.conn,
        s3_client(config),
        ledger(config),
        "INTERACTIONS",
        resources["dataset_arns"]["INTERACTIONS"],
    ).held_records
    if decision.train:
        check_data_shrink(config, dataset_records, champion_arn, forced=forced)
    plan = {
        "train": decision.train,
        "reason": decision.reason,
        "training_mode": training_mode,
        "solution_arn": solution_arn,
        "champion_arn": champion_arn,
        "campaign_arn": (campaign or {}).get("campaignArn"),
        "forced_reason": forced_reason if forced else None,
        "dry_run": bool(params.get("dry_run")),
        # What downstream consumers of the model asset need to know about the data behind it.
        "training_data": {
            "newest_import_finished": newest_import.isoformat() if newest_import else None,
            "triggering_intervals": [
                [extra.get("interval_start"), extra["interval_end"]] for extra in landed
            ],
            "triggering_records": sum(int(extra.get("records") or 0) for extra in landed),
            # What the interactions dataset holds (manifests of its ACTIVE import jobs): the
            # baseline the next training's shrink guard compares with.
            "dataset_records": dataset_records,
        },
    }
    log.info("%s: %s", "TRAINING" if decision.train else "NOT TRAINING", decision.reason)
    log.info("plan: %s", json.dumps(plan, sort_keys=True))
    return plan


def check_data_shrink(
    config: PipelineConfig, dataset_records: int, champion_arn: str | None, *, forced: bool = False
) -> None:
    """Refuse to train on a dataset that shrank by more than gate.max_data_shrink since the
    champion (else the newest recorded version) was trained: a lost or wiped import would
    otherwise train, pass a gate measured on the same small data, and deploy."""
    from airflow.sdk.exceptions import AirflowFailException

    history = read_history(s3_client(config), config.s3.bucket, history_key(config.s3.prefix))
    trained = [r for r in history if (r.get("training_data") or {}).get("dataset_records") is not None]
    baseline = next((r for r in reversed(trained) if r["solution_version_arn"] == champion_arn), None)
    baseline = baseline or (trained[-1] if trained else None)
    if baseline is None:
        log.info("shrink guard: no earlier training recorded its data; %d records now", dataset_records)
        return
    before = int(baseline["training_data"]["dataset_records"])
    limit = config.gate.max_data_shrink
    if before <= 0 or dataset_records >= before * (1 - limit):
        log.info(
            "shrink guard: %d records now, %d when %s was trained",
            dataset_records,
            before,
            baseline["solution_version_arn"],
        )
        return
    message = (
        f"the INTERACTIONS dataset holds {dataset_records} records now (manifests of its ACTIVE import jobs), "
        f"but {baseline['solution_version_arn']} was trained on {before}: it shrank by "
        f"{1 - dataset_records / before:.1%}, more than gate.max_data_shrink {limit:.1%}. Not training. See "
        f"`python -m include.pipeline.reconcile --config {config.name}`; re-import the missing days, or raise "
        "gate.max_data_shrink if the shrink is intended"
    )
    if forced:
        log.warning("SHRINK GUARD overridden by force_deploy: %s", message)
        return
    notify.data_shrink(config, message)
    raise AirflowFailException(message)


def _version_created(hook, solution_version_arn: str | None) -> datetime | None:
    if not solution_version_arn:
        return None
    version = hook.conn.describe_solution_version(solutionVersionArn=solution_version_arn)
    return days.maybe_utc(version["solutionVersion"]["creationDateTime"])


def _newest_import(hook, dataset_arns) -> datetime | None:
    newest = None
    for dataset_arn in dataset_arns:
        paginator = hook.conn.get_paginator("list_dataset_import_jobs")
        for page in paginator.paginate(datasetArn=dataset_arn):
            for job in page["datasetImportJobs"]:
                if job["status"] == "ACTIVE":
                    finished = days.maybe_utc(job.get("lastUpdatedDateTime") or job["creationDateTime"])
                    newest = finished if newest is None or finished > newest else newest
    return newest


def evaluate_challenger(
    config: PipelineConfig, plan: Mapping[str, Any], challenger_arn: str, params: Mapping[str, Any]
) -> GateDecision:
    hook = personalize_hook(config)
    challenger = hook.conn.get_solution_metrics(solutionVersionArn=challenger_arn)["metrics"]
    champion = None
    if plan.get("champion_arn"):
        champion = hook.conn.get_solution_metrics(solutionVersionArn=plan["champion_arn"])["metrics"]
    metric = params.get("gate_metric") or config.gate.metric
    thresholds = dict(config.gate.thresholds)
    if params.get("gate_threshold") is not None:
        thresholds[metric] = float(params["gate_threshold"])
    tolerance = (
        config.gate.tolerance if params.get("gate_tolerance") is None else float(params["gate_tolerance"])
    )
    decision = decide(
        challenger,
        champion,
        metric=metric,
        thresholds=thresholds,
        tolerance=tolerance,
        forced_reason=plan.get("forced_reason"),
    )
    log.info("challenger %s vs champion %s\n%s", challenger_arn, plan.get("champion_arn"), decision.table())
    log.info(decision.summary())
    return decision


def keep_champion(config: PipelineConfig, plan: Mapping[str, Any], decision: Mapping[str, Any]) -> str:
    champion = plan.get("champion_arn") or "nothing (no campaign yet)"
    if plan.get("dry_run"):
        message = (
            f"DRY RUN: the gate said {decision['verdict']}; campaign untouched, still serving {champion}"
        )
        log.info(message)
        return message
    message = f"CHALLENGER REJECTED, campaign keeps serving {champion}. {decision['summary']}"
    log.warning("%s\n%s", message, decision.get("table", ""))
    notify.gate_rejected(config, decision, champion)
    if config.gate.fail_on_reject:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(message + " (gate.fail_on_reject is true)")
    return message


def smoke_test(
    config: PipelineConfig, plan: Mapping[str, Any], campaign_arn: str, resources: Mapping[str, Any]
) -> dict:
    """GetRecommendations for a few real users, with and without each filter; roll back on failure."""
    users = top_users(config, config.smoke_test.users)
    if not users:
        raise SmokeTestFailed("the app database has no users with interactions to smoke-test with")
    runtime = runtime_client(config)
    filters = [(None, None, {})] + [
        (f.name, resources["filter_arns"][f.name], f.smoke_test_values) for f in config.filters
    ]
    results, failures = {}, []
    for user in users:
        for name, arn, values in filters:
            request: dict[str, Any] = {
                "campaignArn": campaign_arn,
                "userId": user,
                "numResults": config.smoke_test.num_results,
            }
            if arn:
                request["filterArn"] = arn
            if values:
                request["filterValues"] = values
            try:
                items = [i["itemId"] for i in runtime.get_recommendations(**request)["itemList"]]
            except ClientError as err:  # an error answer is a failed smoke test too: roll back
                failures.append(f"user {user} with {name or 'no filter'}: {err}")
                continue
            results[f"{user}|{name or 'no filter'}"] = items[:5]
            if not items:
                failures.append(f"user {user} with {name or 'no filter'}: no recommendations")
    if failures:
        message = "smoke test failed: " + "; ".join(failures)
        previous = plan.get("champion_arn")
        if previous:
            from personalize.hooks import CAMPAIGN

            hook = personalize_hook(config)
            log.error("%s; rolling campaign %s back to %s", message, campaign_arn, previous)
            hook.conn.update_campaign(campaignArn=campaign_arn, solutionVersionArn=previous)
            hook.wait_until_active(
                CAMPAIGN, campaign_arn, waiter_delay=max(1, int(config.tasks.poll_seconds))
            )
            message += f"; campaign rolled back to {previous}"
        else:
            message += "; no previous version to roll back to"
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(message)
    for key, items in results.items():
        log.info("smoke test %s -> %s", key, items)
    return {"users": users, "samples": results}


def top_users(config: PipelineConfig, count: int) -> list[str]:
    """The most active users in the app database: real users the model has seen."""
    from include.pipeline.extract import get_source_hook

    mapping = config.mappings["INTERACTIONS"]
    column = quote_identifier(next(f.column for f in mapping.fields if f.field == "USER_ID"))
    table = ".".join(quote_identifier(part) for part in mapping.table.split("."))
    sql = (
        f"SELECT {column} FROM {table} GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT {int(count)}"
    )
    return [str(row[0]) for row in get_source_hook(config.app_db_conn_id).get_records(sql)]


@dataclass(frozen=True)
class TrainingOutcome:
    asset_extra: dict | None  # None: nothing was trained, nothing recorded
    failure: str | None  # the run must fail with this message (after recording)


def finish_training(
    config: PipelineConfig,
    *,
    plan: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    challenger_arn: str | None,
    smoke_result: Mapping[str, Any] | None,
    run_id: str,
    dag_id: str,
) -> TrainingOutcome:
    """Record a trained version in the metrics history and say whether the run must fail.

    Runs after every path: deployed, rejected, dry run, or a deploy / smoke test that failed (the
    campaign was rolled back). A version that was trained but not evaluated is a failure.
    """
    if plan is None:
        # record_history is the run's only leaf, so its state is the run's: a skipped plan skips
        # it too, so no plan here means ensure_resources or plan_training failed.
        return TrainingOutcome(None, "ensure_resources or plan_training failed: nothing was trained")
    if not plan.get("train"):
        return TrainingOutcome(None, None)
    if decision is None or challenger_arn is None:
        return TrainingOutcome(None, "training or evaluation failed: nothing to record; see the failed task")
    deployed = smoke_result is not None
    should_deploy = decision["accepted"] and not plan.get("dry_run")
    extra = record_training(config, plan, decision, challenger_arn, deployed, run_id, dag_id)
    if should_deploy and not deployed:
        return TrainingOutcome(
            extra,
            f"{challenger_arn} passed the gate but was not deployed: deploy_campaign or smoke_test failed "
            f"(the campaign serves {plan.get('champion_arn') or 'nothing'}); recorded as not deployed",
        )
    if decision["verdict"] == "REJECTED" and config.gate.fail_on_reject and not plan.get("dry_run"):
        return TrainingOutcome(
            extra, f"challenger rejected and gate.fail_on_reject is true: {decision['summary']}"
        )
    return TrainingOutcome(extra, None)


def record_training(
    config: PipelineConfig,
    plan: Mapping[str, Any],
    decision: Mapping[str, Any],
    challenger_arn: str,
    deployed: bool,
    run_id: str,
    dag_id: str,
) -> dict:
    """Append the run to the metrics history, write its report, return what the asset carries."""
    s3 = s3_client(config)
    record = {
        "run_id": run_id,
        "dag_id": dag_id,
        "created_at": datetime.now(UTC).isoformat(),
        "solution_version_arn": challenger_arn,
        "training_mode": plan["training_mode"],
        "metrics": decision["challenger"],
        "decision": decision,
        "reason": decision["summary"],
        "champion_solution_version_arn": plan.get("champion_arn"),
        "champion_metrics": decision.get("champion"),
        "deployed": deployed,
        "dry_run": bool(plan.get("dry_run")),
        "campaign_name": config.campaign.name,
        "training_data": plan.get("training_data"),
    }
    key = history_key(config.s3.prefix)
    written = append_record(s3, config.s3.bucket, key, record)
    history = read_history(s3, config.s3.bucket, key)
    if written:  # a rerun of the same run must not alert twice
        notify.rejections_in_a_row(config, history)
    report_keys = {}
    try:
        from include.pipeline.report import write_report

        report_keys = write_report(s3, config.s3.bucket, config.s3.prefix, history, run_id)
        log.info("run report: s3://%s/%s", config.s3.bucket, report_keys.get("markdown"))
    except Exception:  # the report is a convenience; the history line is the record
        log.exception("could not write the run report; the metrics history has the run")
    return {
        "history": f"s3://{config.s3.bucket}/{key}",
        "report": f"s3://{config.s3.bucket}/{report_keys['markdown']}" if report_keys else None,
        "solution_version_arn": challenger_arn,
        "verdict": decision["verdict"],
        "deployed": deployed,
        "metrics": decision["challenger"],
        "training_data": plan.get("training_data"),
    }


# ---------------------------------------------------------------------------- batch_inference


def prepare_batch_inference(config: PipelineConfig, resources: Mapping[str, Any], run_id: str) -> dict:
    """Serving version, filter, and the users to score as JSON lines on S3."""
    import hashlib

    from include.pipeline.extract import get_source_hook
    from include.pipeline.s3_writer import MultipartObjectWriter

    hook = personalize_hook(config)
    version = hook.get_serving_solution_version(config.campaign.name)
    if not version:
        raise RuntimeError(
            f"campaign {config.campaign.name} serves no solution version yet: run {config.dag_ids['train_deploy']} first"
        )
    digest = hashlib.sha256(f"{config.name}\n{run_id}".encode()).hexdigest()[:12]
    folder = config.s3.key("batch", digest)
    input_key = f"{folder}/input/users.jsonl"
    source = config.mappings.get("USERS") or config.mappings["INTERACTIONS"]
    column = quote_identifier(next(f.column for f in source.fields if f.field == "USER_ID"))
    table = ".".join(quote_identifier(part) for part in source.table.split("."))
    sql = f"SELECT DISTINCT {column} FROM {table} ORDER BY {column}"
    s3 = s3_client(config)
    writer = MultipartObjectWriter(s3, config.s3.bucket, input_key)
    count = 0
    with closing(get_source_hook(config.app_db_conn_id).get_conn()) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(10_000):
            for (user_id,) in rows:
                writer.write(json.dumps({"userId": str(user_id)}) + "\n")
                count += 1
    writer.close()
    if count == 0:
        raise RuntimeError(f"no users found in {source.table}: nothing to score")
    filter_arn = (
        resources["filter_arns"][config.batch_inference.filter] if config.batch_inference.filter else None
    )
    log.info("%d users to score with %s -> s3://%s/%s", count, version, config.s3.bucket, input_key)
    return {
        "job_name": f"{config.name[:40]}-batch-{digest}",
        "solution_version_arn": version,
        "input_path": f"s3://{config.s3.bucket}/{input_key}",
        "output_path": f"s3://{config.s3.bucket}/{folder}/output/",
        "filter_arn": filter_arn,
        "users": count,
    }


def publish_batch_output(config: PipelineConfig, prepared: Mapping[str, Any], job_arn: str) -> dict:
    s3 = s3_client(config)
    output = prepared["output_path"]
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    if not keys:
        raise RuntimeError(f"batch inference job {job_arn} finished but wrote nothing under {output}")
    log.info("batch recommendations for %d users: %s (%s)", prepared["users"], output, ", ".join(keys))
    return {"output_path": output, "objects": keys, "job_arn": job_arn, "users": prepared["users"],
            "solution_version_arn": prepared["solution_version_arn"]}  # fmt: skip


# ---------------------------------------------------------------------------------- reconcile


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
