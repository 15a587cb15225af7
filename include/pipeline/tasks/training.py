"""train_deploy pieces every solution shares: the shrink guard, the gate against the champion, the
rollback of a failed smoke test, and the data a training saw. Each solution runs
include/pipeline/solution_tasks.py (plan, evaluate, smoke test) and solution_record.py (record, keep
the champion, finish); a replay solution replay_tasks.py and replay_record.py."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from include.pipeline import days, notify
from include.pipeline import imports as imp
from include.pipeline.clients import ledger, personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.gate import GateDecision, decide
from include.pipeline.history import read_history, solution_history_key

log = logging.getLogger(__name__)


class SmokeTestFailed(RuntimeError):
    pass


def check_data_shrink(
    config: PipelineConfig, name: str, dataset_records: int, champion_arn: str | None, *, forced: bool = False
) -> None:
    """Refuse to train solution `name` on a dataset that shrank by more than its gate.max_data_shrink
    since its champion (else its newest recorded version) was trained: a lost or wiped import would
    otherwise train, pass a gate measured on the same small data, and deploy.

    `config` is the whole pipeline's, not a for_solution view: a view's only solution is `name`, so
    its history key would be the first solution's path whatever `name` is."""
    from airflow.sdk.exceptions import AirflowFailException

    key = solution_history_key(config, name)
    config = config.for_solution(name)  # its gate and its alert
    history = read_history(s3_client(config), config.s3.bucket, key)
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
        f"{name}: the INTERACTIONS dataset holds {dataset_records} records now (manifests of its ACTIVE import jobs), "
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


def version_created(hook, solution_version_arn: str | None) -> datetime | None:
    if not solution_version_arn:
        return None
    version = hook.conn.describe_solution_version(solutionVersionArn=solution_version_arn)
    return days.maybe_utc(version["solutionVersion"]["creationDateTime"])


def newest_import_finished(hook, dataset_arns) -> datetime | None:
    """When the newest ACTIVE import job of the datasets finished (None: no import yet)."""
    finished = [
        days.maybe_utc(job.get("lastUpdatedDateTime") or job["creationDateTime"])
        for arn in dataset_arns
        for page in hook.conn.get_paginator("list_dataset_import_jobs").paginate(datasetArn=arn)
        for job in page["datasetImportJobs"]
        if job["status"] == "ACTIVE"
    ]
    return max(finished, default=None)


def landed_intervals(context: Mapping[str, Any]) -> list[dict]:
    """The extras of the asset events that triggered the run and name an interval (ingest's)."""
    events = context.get("triggering_asset_events") or {}
    return [e.extra for evs in events.values() for e in evs if (e.extra or {}).get("interval_end")]


def interactions_record(config: PipelineConfig, hook, resources: Mapping[str, Any]) -> imp.DatasetRecord:
    """What the interactions dataset holds, read from the manifests of its ACTIVE import jobs."""
    return imp.read_dataset_record(
        hook.conn,
        s3_client(config),
        ledger(config),
        "INTERACTIONS",
        resources["dataset_arns"]["INTERACTIONS"],
    )


def training_data(record: imp.DatasetRecord, landed: list[dict], newest_import: datetime | None) -> dict:
    """What downstream consumers of the model asset need to know about the data behind it."""
    dataset_records = record.held_records
    return {
        "newest_import_finished": newest_import.isoformat() if newest_import else None,
        "triggering_intervals": [[extra.get("interval_start"), extra["interval_end"]] for extra in landed],
        "triggering_records": sum(int(extra.get("records") or 0) for extra in landed),
        # What the interactions dataset holds (manifests of its ACTIVE import jobs): the baseline
        # the next training's shrink guard compares with.
        "dataset_records": dataset_records,
    }


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
    if tolerance == "auto":  # a replay gate's first version or forced run: no interval to be tolerant within
        tolerance = 0.0
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


def roll_back_and_fail(config: PipelineConfig, plan: Mapping[str, Any], campaign_arn: str, message: str):
    """A failed smoke test: the campaign goes back to the version it served before, and the task
    fails without retries (a retry would smoke-test the same version again)."""
    previous = plan.get("champion_arn")
    if previous:
        from personalize.kinds import CAMPAIGN

        hook = personalize_hook(config)
        log.error("%s; rolling campaign %s back to %s", message, campaign_arn, previous)
        hook.conn.update_campaign(campaignArn=campaign_arn, solutionVersionArn=previous)
        hook.wait_until_active(CAMPAIGN, campaign_arn, waiter_delay=max(1, int(config.tasks.poll_seconds)))
        message += f"; campaign rolled back to {previous}"
    else:
        message += "; no previous version to roll back to"
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message)
