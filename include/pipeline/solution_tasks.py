"""train_deploy per solution: plan, evaluate (gate + baseline), deploy its own way, smoke test, record.

Each solution of a config runs in its own task group, so one solution's failure or rejection never
blocks or rolls back another; `finish_run` fails the run at the end, naming every solution that
failed. Per-solution code reads `config.for_solution(name)`: that entry's `solution`, `campaign`,
`gate` and `batch_inference`, as a one-solution config has them.

The champion of a campaign-served solution is the version its campaign serves; a batch-only
solution has no campaign, so its champion is its newest deployed version in its metrics history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from include.pipeline import days, notify
from include.pipeline.baseline import apply_baseline
from include.pipeline.clients import personalize_hook, runtime_client, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.extract_sql import most_active
from include.pipeline.history import read_history, solution_history_key
from include.pipeline.schedule import catching_up, cost_guard, serving_age_warning
from include.pipeline.serving import Filter, recommended_items, smoke_requests

log = logging.getLogger(__name__)


def history_champion(config: PipelineConfig, name: str) -> str | None:
    """A batch-only solution's champion: its newest deployed version in its metrics history."""
    records = read_history(s3_client(config), config.s3.bucket, solution_history_key(config, name))
    deployed = [r for r in records if r.get("deployed")]
    return deployed[-1]["solution_version_arn"] if deployed else None


def champion_of(config: PipelineConfig, name: str, hook: Any = None) -> str | None:
    entry = config.solution_named(name)
    if entry.campaign is not None:
        return (hook or personalize_hook(config)).get_serving_solution_version(entry.campaign.name)
    return history_champion(config, name)


def plan_training(config: PipelineConfig, resources: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """Per solution (and the baseline): train or not, in which mode, against which champion."""
    from include.pipeline.tasks.training import (
        check_data_shrink,
        interactions_record,
        landed_intervals,
        newest_import_finished,
        training_data,
        version_created,
    )

    params = context["params"]
    forced_reason = (params.get("force_reason") or "").strip() or None
    forced = bool(params.get("force_deploy"))
    if forced and not forced_reason:
        raise ValueError("param force_deploy needs force_reason: say why the gate is being overridden")
    hook = personalize_hook(config)
    now = datetime.now(UTC)
    landed = landed_intervals(context)
    newest_import = newest_import_finished(hook, resources["dataset_arns"].values())
    run_type = getattr(context["dag_run"], "run_type", None)
    catch_up = None
    if getattr(run_type, "value", run_type) == "asset_triggered" and not forced:
        catch_up = catching_up(
            [days.maybe_utc(x["interval_end"]) for x in landed], cron=config.schedule.ingest, now=now
        )
    held = interactions_record(config, hook, resources)
    data = training_data(held, landed, newest_import)
    plans = {}
    for entry in config.solutions:
        view = config.for_solution(entry.name)
        mode = params.get("training_mode") or entry.training_mode
        if mode == "UPDATE" and not entry.supports_update:
            log.info(
                "%s: recipe %s trains FULL only; the run's UPDATE applies to the others",
                entry.name,
                entry.recipe,
            )
            mode = "FULL"
        solution_arn = resources["solution_arns"][entry.name]
        champion = champion_of(config, entry.name, hook)
        serving_created = version_created(hook, champion)
        if entry.campaign and (
            warning := serving_age_warning(
                serving_created, max_age_days=entry.campaign.max_serving_age_days, now=now
            )
        ):
            log.warning("SERVING MODEL AGE: %s (solution %s)", warning, entry.name)
            notify.serving_model_too_old(view, warning)
        decision = catch_up or cost_guard(
            newest_import=newest_import,
            serving_created=serving_created,
            latest_trained=version_created(hook, hook.get_latest_active_solution_version(solution_arn)),
            forced=forced,
            training_mode=mode,
        )
        if decision.train:
            check_data_shrink(config, entry.name, data["dataset_records"], champion, forced=forced)
        campaign = hook.find_campaign(entry.campaign.name) if entry.campaign else None
        plans[entry.name] = {
            "solution": entry.name,
            "train": decision.train,
            "reason": decision.reason,
            "training_mode": mode,
            "solution_arn": solution_arn,
            "champion_arn": champion,
            "campaign_arn": (campaign or {}).get("campaignArn"),
            "forced_reason": forced_reason if forced else None,
            "dry_run": bool(params.get("dry_run")),
            "training_data": data,
        }
        if entry.gate.evaluation == "replay":
            _plan_replay(config, entry.name, plans[entry.name], held.held, resources, hook, context, forced)
        log.info("%s: %s: %s", entry.name, "TRAINING" if decision.train else "NOT TRAINING", decision.reason)
    plan = {"solutions": plans, "baseline": None}
    if config.baseline_solution:
        baseline_arn = resources["solution_arns"][config.baseline_solution]
        gated = [n for n, p in plans.items() if p["train"] and config.solution_named(n).gate.baseline]
        latest = hook.get_latest_active_solution_version(baseline_arn)
        # Cheap, and retrained only when the data changed since its newest version.
        fresh = cost_guard(
            newest_import=newest_import,
            serving_created=None,
            latest_trained=version_created(hook, latest),
            forced=False,
            training_mode="FULL",
        )
        plan["baseline"] = {
            "solution_arn": baseline_arn,
            "train": bool(gated) and fresh.train,
            "reason": fresh.reason,
            "latest_arn": latest,
        }
        log.info(
            "baseline %s: %s",
            config.baseline_solution,
            "TRAINING" if plan["baseline"]["train"] else fresh.reason,
        )
    log.info("plan: %s", json.dumps(plan, sort_keys=True))
    return plan


def _plan_replay(config, name, plan: dict, partitions, resources, hook, context, forced: bool) -> None:
    """Adds the replay step to a replay solution's plan; `train` becomes whether this run trains it
    (not while a challenger waits or is scored), which also decides whether the baseline trains."""
    from include.pipeline import replay_plan
    from include.pipeline.replay_tasks import TRAIN, plan_replay

    baseline = config.baseline_solution if config.solution_named(name).gate.baseline else None
    plan["replay"] = plan_replay(
        config,
        name,
        plan,
        replay_plan.data_end(partitions),
        context["run_id"],
        hook=hook,
        forced=forced,
        baseline_solution_arn=resources["solution_arns"][baseline] if baseline else None,
    )
    if plan["train"] and plan["replay"]["next"] != TRAIN:
        plan.update(train=False, reason=plan["replay"]["reason"])


def evaluate(
    config: PipelineConfig,
    name: str,
    plan: Mapping[str, Any],
    challenger_arn: str,
    params: Mapping[str, Any],
    baseline_arn: str | None,
) -> dict:
    """The gate (thresholds, champion rule) and, when the solution's gate asks, the baseline's lift."""
    from include.pipeline.tasks.training import evaluate_challenger

    view = config.for_solution(name)
    # The form presets gate_metric to the top-level gate's metric: that preset leaves each solution
    # its own gate metric; any other choice overrides every solution's.
    if params.get("gate_metric") == config.gate.metric:
        params = {**params, "gate_metric": None}
    decision = evaluate_challenger(view, plan, challenger_arn, params)
    gate = view.gate
    if gate.baseline is None:
        return decision.as_dict()
    baseline = None
    if baseline_arn:
        baseline = personalize_hook(config).conn.get_solution_metrics(solutionVersionArn=baseline_arn)[
            "metrics"
        ]
    result = apply_baseline(decision, baseline, min_lift=gate.min_lift, baseline_arn=baseline_arn)
    log.info("%s vs the popularity baseline %s:\n%s", name, baseline_arn, result["table"])
    log.info(result["summary"])
    return result


def smoke_test(
    config: PipelineConfig,
    name: str,
    plan: Mapping[str, Any],
    campaign_arn: str,
    resources: Mapping[str, Any],
) -> dict:
    """The recipe's own requests (by user, by item, or ranking a list); roll the campaign back on failure."""
    from include.pipeline.tasks.training import SmokeTestFailed, roll_back_and_fail

    view = config.for_solution(name)
    entry = view.solutions[0]
    users = most_active(view, "USER_ID", view.smoke_test.users)
    items = most_active(view, "ITEM_ID", max(view.smoke_test.users, view.smoke_test.num_results))
    if not users or not items:
        raise SmokeTestFailed("the app database has no interactions to smoke-test with")
    # Filters on interactions need a user; related-item requests are tried without them.
    filters = [Filter(f.name, resources["filter_arns"][f.name], f.smoke_test_values) for f in view.filters]
    requests = smoke_requests(
        entry.recipe,
        campaign_arn,
        users=users,
        items=items[: view.smoke_test.num_results]
        if entry.recipe_type == "PERSONALIZED_RANKING"
        else items[: view.smoke_test.users],
        num_results=view.smoke_test.num_results,
        filters=filters if entry.recipe_type != "RELATED_ITEMS" else (),
    )
    runtime = runtime_client(view)
    samples, failures = {}, []
    for request in requests:
        try:
            got = recommended_items(getattr(runtime, request.operation)(**request.kwargs))
        except ClientError as err:  # an error answer is a failed smoke test too: roll back
            failures.append(f"{request.label}: {err}")
            continue
        samples[request.label] = got[:5]
        if not got:
            failures.append(f"{request.label}: no recommendations")
    if failures:
        roll_back_and_fail(config, plan, campaign_arn, f"smoke test of {name} failed: " + "; ".join(failures))
    for label, got in samples.items():
        log.info("smoke test %s %s -> %s", name, label, got)
    return {"requests": len(requests), "samples": samples}
