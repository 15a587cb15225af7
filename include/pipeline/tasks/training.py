"""train_deploy pieces: the shrink guard, the gate against the champion and the rollback (every
solution uses them), and the one-solution plan, keep_champion and smoke test the replay gate's wiring
(replay_dag.py) runs. Offline, each solution runs include/pipeline/solution_tasks.py (plan, evaluate,
smoke test) and solution_record.py (record, keep the champion, finish)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from include.pipeline import days, notify
from include.pipeline import imports as imp
from include.pipeline.clients import ledger, personalize_hook, runtime_client, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.extract_sql import most_active
from include.pipeline.gate import GateDecision, decide
from include.pipeline.history import history_key, read_history
from include.pipeline.schedule import (
    catching_up,
    cost_guard,
    serving_age_warning,
)

log = logging.getLogger(__name__)


class SmokeTestFailed(RuntimeError):
    pass


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
    serving_created = version_created(hook, champion_arn)
    if warning := serving_age_warning(
        serving_created, max_age_days=config.campaign.max_serving_age_days, now=now
    ):
        log.warning("SERVING MODEL AGE: %s", warning)
        notify.serving_model_too_old(config, warning)

    forced = bool(params.get("force_deploy"))
    decision = None
    dag_run = context["dag_run"]
    landed = landed_intervals(context)
    ends = [days.maybe_utc(extra["interval_end"]) for extra in landed]
    newest_import = newest_import_finished(hook, resources["dataset_arns"].values())
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) == "asset_triggered" and not forced:
        decision = catching_up(ends, cron=config.schedule.ingest, now=now)
    if decision is None:
        decision = cost_guard(
            newest_import=newest_import,
            serving_created=serving_created,
            latest_trained=version_created(hook, hook.get_latest_active_solution_version(solution_arn)),
            forced=forced,
            training_mode=training_mode,
        )
    data = training_data(config, hook, resources, landed, newest_import)
    if decision.train:
        check_data_shrink(config, data["dataset_records"], champion_arn, forced=forced)
    plan = {
        "train": decision.train,
        "reason": decision.reason,
        "training_mode": training_mode,
        "solution_arn": solution_arn,
        "champion_arn": champion_arn,
        "campaign_arn": (campaign or {}).get("campaignArn"),
        "forced_reason": forced_reason if forced else None,
        "dry_run": bool(params.get("dry_run")),
        "training_data": data,
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


def training_data(
    config: PipelineConfig,
    hook,
    resources: Mapping[str, Any],
    landed: list[dict],
    newest_import: datetime | None,
) -> dict:
    """What downstream consumers of the model asset need to know about the data behind it."""
    dataset_records = imp.read_dataset_record(
        hook.conn,
        s3_client(config),
        ledger(config),
        "INTERACTIONS",
        resources["dataset_arns"]["INTERACTIONS"],
    ).held_records
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


def smoke_test(
    config: PipelineConfig, plan: Mapping[str, Any], campaign_arn: str, resources: Mapping[str, Any]
) -> dict:
    """GetRecommendations for a few real users, with and without each filter; roll back on failure."""
    users = most_active(config, "USER_ID", config.smoke_test.users)
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
        roll_back_and_fail(config, plan, campaign_arn, "smoke test failed: " + "; ".join(failures))
    for key, items in results.items():
        log.info("smoke test %s -> %s", key, items)
    return {"users": users, "samples": results}
