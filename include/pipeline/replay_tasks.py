"""What a solution's task group does when its gate has `evaluation: replay` (docs/DESIGN.md,
"Replay evaluation"). Every function works on one solution (`config.for_solution(name)`): its own
metrics history, its own replay folder on S3, its own batch inference jobs.

A run does one of three things per replay solution (replay_plan.plan): trains a challenger and
leaves it PENDING; scores the oldest pending challenger whose window the dataset now holds (batch
inference jobs for it, the champion and, with `gate.baseline`, the baseline version recorded with
it: same users, same window), decides and deploys; or waits. The first version (no champion yet)
and a forced run go through the offline gate as the offline solutions do. solution_tasks.plan_training
calls plan_replay; replay_dag.py wires the rest; replay_record.py writes the outcome.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from include.pipeline import days, replay, replay_plan, replay_stats
from include.pipeline.clients import personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.history import read_history, solution_history_key
from include.pipeline.replay_gate import BASELINE, CHALLENGER, CHAMPION, decide_replay

log = logging.getLogger(__name__)

# The branch a solution's group takes after planning (the step's "next").
TRAIN, SCORE = "train", "score"


def plan_replay(
    config: PipelineConfig,
    name: str,
    plan: Mapping[str, Any],
    data_end: date | None,
    run_id: str,
    *,
    hook: Any,
    forced: bool,
    baseline_solution_arn: str | None = None,
) -> dict:
    """The solution's plan (plan_training's entry) plus what replay does this run: {action, reason,
    next, window, challenger_arn, champion_arn, baseline_arn ...}.

    The history's lines of this very run are left out, so a cleared and rerun run plans what its
    first try planned (and adopts its batch jobs) instead of seeing its own work as done.
    """
    everything = read_history(s3_client(config), config.s3.bucket, solution_history_key(config, name))
    history = [r for r in everything if r.get("run_id") != run_id]
    own = next((r for r in everything if r.get("run_id") == run_id and r.get("replay_of")), None)
    decided = replay_plan.plan(history, data_end)
    pending = decided.pending or {}
    result = {
        "action": decided.action,
        "reason": decided.reason,
        "data_end": data_end.isoformat() if data_end else None,
        "window": decided.window.as_list() if decided.window else None,
        "challenger_arn": pending.get("solution_version_arn"),
        "pending_run_id": pending.get("run_id"),
        # What the pending version was trained on: the shrink guard's baseline once it serves.
        "pending_training_data": pending.get("training_data"),
        # The first try's champion on a rerun (the campaign may serve the challenger by now).
        "champion_arn": own["champion_solution_version_arn"] if own else plan.get("champion_arn"),
        "baseline_arn": None,
    }
    if own is not None:
        log.info(
            "%s: a rerun of %s scores against its first try's champion %s",
            name,
            run_id,
            result["champion_arn"],
        )
    elif decided.action == replay_plan.SCORE and plan.get("champion_arn"):
        champion = plan["champion_arn"]
        record = next((r for r in reversed(history) if r["solution_version_arn"] == champion), None)
        unfair = (
            "the champion is the pending challenger itself"
            if champion == result["challenger_arn"]
            else replay_plan.champion_saw_window(record, _created(hook, champion), decided.window)
        )
        if unfair:
            result.update(action="supersede", reason=f"{result['challenger_arn']} is not scored: {unfair}")
    if result["action"] == replay_plan.SCORE and baseline_solution_arn:
        result["baseline_arn"] = _baseline_for(hook, pending, baseline_solution_arn, decided.window)
    result["next"] = next_step(result["action"], trains=plan["train"], forced=forced)
    log.info("%s: REPLAY %s: %s", name, result["action"].upper(), result["reason"])
    return result


def next_step(action: str, *, trains: bool, forced: bool) -> str | None:
    """The group's branch: train (the cost guard lets it and no challenger waits), score, or nothing."""
    if forced:
        return TRAIN if trains else None  # a person decides: the offline path
    if action == replay_plan.SCORE:
        return SCORE
    return TRAIN if action == replay_plan.TRAIN and trains else None


def _created(hook: Any, arn: str) -> datetime | None:
    described = hook.conn.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
    return days.maybe_utc(described["creationDateTime"])


def _baseline_for(
    hook: Any, pending: Mapping, baseline_solution_arn: str, window: replay_plan.Window
) -> str | None:
    """The baseline version to score beside the pending challenger: the one recorded with it (trained
    on the same days), else the newest one created before the window began (it cannot have seen it)."""
    recorded = pending.get("baseline_solution_version_arn")
    if recorded:
        return recorded
    latest = hook.get_latest_active_solution_version(baseline_solution_arn)
    created = _created(hook, latest) if latest else None
    if created is not None and created.date() <= window.start:
        return latest
    log.warning("no baseline version trained before the window %s: the baseline rule fails", window.as_list())
    return None


def pending_decision(
    config: PipelineConfig, name: str, plan: Mapping[str, Any], challenger_arn: str, baseline_arn: str | None
) -> dict | None:
    """A freshly trained version waits PENDING for its replay window when a champion serves; None when
    the offline gate decides instead (no champion yet: nothing to compare with; a forced run)."""
    if not plan.get("champion_arn") or plan.get("forced_reason"):
        return None
    gate = config.for_solution(name).gate
    offline = personalize_hook(config).conn.get_solution_metrics(solutionVersionArn=challenger_arn)["metrics"]
    window = replay_plan.Window.after(
        datetime.fromisoformat(plan["replay"]["data_end"]).date(), gate.holdout_days
    )
    decision = {
        "evaluation": "replay",
        "verdict": replay_plan.PENDING,
        "accepted": False,
        "challenger": offline,
        "champion": None,
        "window": window.as_list(),
        # Trained on the same days as the challenger: what its replay scores it against.
        "baseline_arn": baseline_arn if gate.baseline else None,
        "summary": (
            f"PENDING replay: trained on days before {window.start}; scored against the champion on "
            f"[{window.start}, {window.end}) once the dataset holds those days"
        ),
    }
    log.info("%s: %s", name, decision["summary"])
    return decision


def prepare_inputs(config: PipelineConfig, name: str, plan: Mapping[str, Any]) -> list[dict]:
    """Held-out users of the window, their batch input on S3, one batch job per model to score."""
    from airflow.sdk.exceptions import AirflowFailException

    if not config.role_arn:
        raise AirflowFailException(
            f"solution {name}: gate.evaluation replay runs batch inference jobs: set role_arn in the config"
        )
    step = plan["replay"]
    window = replay_plan.Window.from_list(step["window"])
    view = config.for_solution(name)
    s3 = s3_client(config)
    held = build_held_out(view, s3, window)
    folder = config.s3.key(replay_plan.folder(name, window))
    input_key = f"{folder}/input/users.jsonl"
    s3.put_object(Bucket=config.s3.bucket, Key=input_key, Body=replay.batch_input(held.users).encode())
    s3.put_object(
        Bucket=config.s3.bucket,
        Key=f"{folder}/held_out.json",
        Body=json.dumps(
            {
                "users": list(held.users),
                "relevant": {u: sorted(v) for u, v in held.relevant.items()},
                "seen": {u: sorted(v) for u, v in held.seen.items()},
                "catalog_size": held.catalog_size,
                "eligible_users": held.eligible_users,
                "window_events": held.window_events,
            }
        ).encode(),
    )
    jobs = []
    for role, arn in models(step).items():
        job = replay_plan.job_name(name, role, arn, window)
        jobs.append(
            {
                "job_name": job,
                "solution_version_arn": arn,
                "input_path": f"s3://{config.s3.bucket}/{input_key}",
                "output_path": f"s3://{config.s3.bucket}/{folder}/{job}/",
                "num_results": replay.num_results(held),
            }
        )
        log.info("%s: replay %s %s: batch job %s", name, role, arn, job)
    log.info(
        "%s: held out %d of %d eligible users, %d window events in [%s, %s)",
        name, len(held.users), held.eligible_users, held.window_events, window.start, window.end,
    )  # fmt: skip
    return jobs


def models(step: Mapping[str, Any]) -> dict[str, str]:
    """role -> solution version scored: the challenger, the champion and the baseline when there is one."""
    found = {
        CHALLENGER: step["challenger_arn"],
        CHAMPION: step.get("champion_arn"),
        BASELINE: step.get("baseline_arn"),
    }
    return {role: arn for role, arn in found.items() if arn}


def build_held_out(config: PipelineConfig, s3, window: replay_plan.Window) -> replay.HeldOut:
    window_days = {days.partition_name(d) for d in window.days()}
    partitions = _partitions(config, s3)
    missing = sorted(window_days - set(partitions))
    if missing:
        raise replay.ReplayError(f"the replay window's days are not in S3: {missing}")
    history = [p for p in partitions if p < days.partition_name(window.start)]
    return replay.held_out(
        _rows(config, s3, [partitions[p] for p in sorted(window_days)]),
        _rows(config, s3, [partitions[p] for p in history]),
        sample_size=config.gate.replay_users,
        seed=window.seed,
    )


def _partitions(config: PipelineConfig, s3) -> dict[str, list[str]]:
    """dt= partition -> its CSV keys under the interactions prefix."""
    found: dict[str, list[str]] = {}
    prefix = config.s3.key("interactions") + "/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.s3.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            partition = days.partition_in_key(item["Key"])
            if partition and item["Key"].endswith(".csv"):
                found.setdefault(partition, []).append(item["Key"])
    return found


def _rows(config: PipelineConfig, s3, key_lists) -> Iterator[tuple[str, str]]:
    """(user, item) of every event in the files, only the solution's event type when it has one."""
    event_type = config.solution.event_type
    for keys in key_lists:
        for key in sorted(keys):
            body = s3.get_object(Bucket=config.s3.bucket, Key=key)["Body"]
            for row in csv.DictReader(io.TextIOWrapper(body, encoding="utf-8")):
                if event_type is None or row.get("EVENT_TYPE") == event_type:
                    yield row["USER_ID"], row["ITEM_ID"]


def decide_pending(
    config: PipelineConfig,
    name: str,
    plan: Mapping[str, Any],
    jobs: list[dict],
    params: Mapping[str, Any],
) -> tuple[dict, str, str | None]:
    """Score each batch output, bootstrap, decide. Returns (decision, next task, ARN to deploy)."""
    step = plan["replay"]
    view = config.for_solution(name)
    gate = view.gate
    window = replay_plan.Window.from_list(step["window"])
    s3 = s3_client(config)
    folder = config.s3.key(replay_plan.folder(name, window))
    stored = json.loads(s3.get_object(Bucket=config.s3.bucket, Key=f"{folder}/held_out.json")["Body"].read())
    held = replay.HeldOut(
        users=tuple(stored["users"]),
        relevant={u: frozenset(v) for u, v in stored["relevant"].items()},
        seen={u: frozenset(v) for u, v in stored["seen"].items()},
        catalog_size=stored["catalog_size"],
        eligible_users=stored["eligible_users"],
        window_events=stored["window_events"],
    )
    roles = {arn: role for role, arn in models(step).items()}
    hook = personalize_hook(config)
    scores, offline = {}, {}
    for job in jobs:
        role = roles[job["solution_version_arn"]]
        lists, errors = replay.read_batch_output(_output_lines(config, s3, job["output_path"]))
        if errors:
            log.warning("%s: replay %s: %d users not scored, e.g. %s", name, role, len(errors), errors[:3])
        scores[role] = replay.score_users(lists, held)
        offline[role] = hook.conn.get_solution_metrics(solutionVersionArn=job["solution_version_arn"])[
            "metrics"
        ]
    result = replay_stats.bootstrap(
        scores,
        reference=CHAMPION if CHAMPION in scores else CHALLENGER,
        resamples=gate.replay_resamples,
        seed=window.seed,
    )
    # The form presets gate_metric to the top-level gate's: that preset leaves each solution its own.
    chosen = params.get("gate_metric")
    metric = chosen if chosen and chosen != config.gate.metric else gate.metric
    tolerance = gate.tolerance if params.get("gate_tolerance") is None else float(params["gate_tolerance"])
    decision = decide_replay(
        result,
        metric=metric,
        thresholds=dict(gate.thresholds),
        tolerance=tolerance,
        window=window.as_list(),
        min_lift=gate.min_lift if gate.baseline else None,
        offline=offline,
    )
    log.info(
        "%s: replay of %s vs champion %s, baseline %s\n%s",
        name, step["challenger_arn"], step.get("champion_arn"), step.get("baseline_arn"), decision.table(),
    )  # fmt: skip
    log.info("%s: %s", name, decision.summary())
    decided = {**decision.as_dict(), "baseline_arn": step.get("baseline_arn")}
    if not decision.accepted or plan.get("dry_run"):
        return decided, "keep_champion", None
    if gate.replay_deploy == "retrain":
        return decided, "retrain", None
    return decided, "use_as_trained", step["challenger_arn"]


def _output_lines(config: PipelineConfig, s3, output_path: str) -> Iterator[str]:
    bucket, _, prefix = output_path.removeprefix("s3://").partition("/")
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    )
    if not keys:
        raise replay.ReplayError(f"the batch inference job wrote nothing under {output_path}")
    for key in keys:
        yield from s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8").splitlines()
