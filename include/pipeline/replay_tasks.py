"""What train_deploy's tasks do when `gate.evaluation: replay` (docs/DESIGN.md, "Replay evaluation").

A run does one of three things (replay_plan.plan): trains a challenger and leaves it PENDING;
scores the oldest pending challenger whose window the dataset now holds (batch inference jobs for
it and the champion, same users, same window), decides and deploys; or waits. The first version
(no campaign yet) and a forced run go through the offline gate as before. The DAG file wires these.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from include.pipeline import days, notify, replay, replay_plan, replay_stats
from include.pipeline import imports as imp
from include.pipeline.clients import ledger, personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.gate import decide
from include.pipeline.history import append_record, history_key, read_history
from include.pipeline.replay_gate import CHALLENGER, CHAMPION, decide_replay

log = logging.getLogger(__name__)


def plan_replay(
    config: PipelineConfig, plan: Mapping[str, Any], resources: Mapping[str, Any], run_id: str
) -> dict:
    """plan_training's plan plus what replay does this run: {action, reason, window, pending ...}.

    The history's lines of this very run are left out, so a cleared and rerun run plans what its
    first try planned (and adopts its batch jobs) instead of seeing its own work as done.
    """
    hook = personalize_hook(config)
    held = imp.read_dataset_record(
        hook.conn,
        s3_client(config),
        ledger(config),
        "INTERACTIONS",
        resources["dataset_arns"]["INTERACTIONS"],
    ).held
    data_end = replay_plan.data_end(held)
    everything = read_history(s3_client(config), config.s3.bucket, history_key(config.s3.prefix))
    history = [r for r in everything if r.get("run_id") != run_id]
    own = next((r for r in everything if r.get("run_id") == run_id and r.get("replay_of")), None)
    decided = replay_plan.plan(history, data_end)
    result = {
        "action": decided.action,
        "reason": decided.reason,
        "data_end": data_end.isoformat() if data_end else None,
        "window": decided.window.as_list() if decided.window else None,
        "challenger_arn": (decided.pending or {}).get("solution_version_arn"),
        "pending_run_id": (decided.pending or {}).get("run_id"),
        # What the pending version was trained on: the shrink guard's baseline once it serves.
        "pending_training_data": (decided.pending or {}).get("training_data"),
        # The first try's champion on a rerun (the campaign may serve the challenger by now).
        "champion_arn": own["champion_solution_version_arn"] if own else plan.get("champion_arn"),
    }
    if own is not None:
        log.info(
            "a rerun of %s: scoring against the champion of its first try, %s", run_id, result["champion_arn"]
        )
    elif decided.action == replay_plan.SCORE and plan.get("champion_arn"):
        champion = plan["champion_arn"]
        record = next((r for r in reversed(history) if r["solution_version_arn"] == champion), None)
        created = days.maybe_utc(
            hook.conn.describe_solution_version(solutionVersionArn=champion)["solutionVersion"][
                "creationDateTime"
            ]
        )
        unfair = (
            "the champion is the pending challenger itself"
            if champion == result["challenger_arn"]
            else replay_plan.champion_saw_window(record, created, decided.window)
        )
        if unfair:
            result.update(action="supersede", reason=f"{result['challenger_arn']} is not scored: {unfair}")
    log.info("REPLAY %s: %s", result["action"].upper(), result["reason"])
    return result


def next_task(plan: Mapping[str, Any], replay_step: Mapping[str, Any], forced: bool) -> list[str]:
    """The branch after planning: train, score the pending challenger, or nothing."""
    if forced:
        return ["train"] if plan["train"] else []
    if replay_step["action"] == replay_plan.SCORE:
        return ["replay_inputs"]
    if replay_step["action"] == replay_plan.TRAIN and plan["train"]:
        return ["train"]
    return []


def evaluate_trained(
    config: PipelineConfig,
    plan: Mapping[str, Any],
    replay_step: Mapping[str, Any],
    challenger_arn: str,
    params,
) -> tuple[dict, str]:
    """A freshly trained version: PENDING for replay when a champion serves, else the offline gate."""
    hook = personalize_hook(config)
    offline = hook.conn.get_solution_metrics(solutionVersionArn=challenger_arn)["metrics"]
    if plan.get("champion_arn") and not plan.get("forced_reason"):
        window = replay_plan.Window.after(
            datetime.fromisoformat(replay_step["data_end"]).date(), config.gate.holdout_days
        )
        decision = {
            "evaluation": "replay",
            "verdict": replay_plan.PENDING,
            "accepted": False,
            "challenger": offline,
            "champion": None,
            "window": window.as_list(),
            "summary": (
                f"PENDING replay: trained on days before {window.start}; scored against the champion on "
                f"[{window.start}, {window.end}) once the dataset holds those days"
            ),
        }
        log.info(decision["summary"])
        return decision, "keep_champion" if plan.get("dry_run") else "hold_challenger"
    # "auto" needs an interval, which a first version (no champion) or a forced run has no use for.
    tolerance = 0.0 if isinstance(config.gate.tolerance, str) else config.gate.tolerance
    champion = None
    if plan.get("champion_arn"):
        champion = hook.conn.get_solution_metrics(solutionVersionArn=plan["champion_arn"])["metrics"]
    gate = decide(
        offline,
        champion,
        metric=params.get("gate_metric") or config.gate.metric,
        thresholds=dict(config.gate.thresholds),
        tolerance=tolerance,
        forced_reason=plan.get("forced_reason"),
    )
    log.info("offline gate (first version or forced run)\n%s", gate.table())
    verdict = "deploy_campaign" if gate.accepted and not plan.get("dry_run") else "keep_champion"
    return gate.as_dict(), verdict


def prepare_inputs(
    config: PipelineConfig, plan: Mapping[str, Any], replay_step: Mapping[str, Any]
) -> list[dict]:
    """Held-out users of the window, their batch input on S3, one batch job per model to score."""
    from airflow.sdk.exceptions import AirflowFailException

    if not config.role_arn:
        raise AirflowFailException(
            "gate.evaluation replay runs batch inference jobs: set role_arn in the config"
        )
    window = replay_plan.Window.from_list(replay_step["window"])
    s3 = s3_client(config)
    held = build_held_out(config, s3, window)
    folder = config.s3.key(replay_plan.folder(window))
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
    models = {CHALLENGER: replay_step["challenger_arn"]}
    if replay_step.get("champion_arn"):
        models[CHAMPION] = replay_step["champion_arn"]
    jobs = []
    for role, arn in models.items():
        name = replay_plan.job_name(config.name, arn, window)
        jobs.append(
            {
                "job_name": name,
                "solution_version_arn": arn,
                "input_path": f"s3://{config.s3.bucket}/{input_key}",
                "output_path": f"s3://{config.s3.bucket}/{folder}/{name}/",
                "num_results": replay.num_results(held),
            }
        )
        log.info("replay %s %s: batch job %s", role, arn, name)
    log.info(
        "held out %d of %d eligible users, %d window events in [%s, %s)",
        len(held.users), held.eligible_users, held.window_events, window.start, window.end,
    )  # fmt: skip
    return jobs


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
    plan: Mapping[str, Any],
    replay_step: Mapping[str, Any],
    jobs: list[dict],
    params: Mapping[str, Any],
) -> tuple[dict, str, str | None]:
    """Score each batch output, bootstrap, decide. Returns (decision, next task, ARN to deploy)."""
    window = replay_plan.Window.from_list(replay_step["window"])
    s3 = s3_client(config)
    folder = config.s3.key(replay_plan.folder(window))
    stored = json.loads(s3.get_object(Bucket=config.s3.bucket, Key=f"{folder}/held_out.json")["Body"].read())
    held = replay.HeldOut(
        users=tuple(stored["users"]),
        relevant={u: frozenset(v) for u, v in stored["relevant"].items()},
        seen={u: frozenset(v) for u, v in stored["seen"].items()},
        catalog_size=stored["catalog_size"],
        eligible_users=stored["eligible_users"],
        window_events=stored["window_events"],
    )
    roles = {replay_step["challenger_arn"]: CHALLENGER, replay_step.get("champion_arn"): CHAMPION}
    hook = personalize_hook(config)
    scores, offline = {}, {}
    for job in jobs:
        role = roles[job["solution_version_arn"]]
        lists, errors = replay.read_batch_output(_output_lines(config, s3, job["output_path"]))
        if errors:
            log.warning("replay %s: %d users not scored, e.g. %s", role, len(errors), errors[:3])
        scores[role] = replay.score_users(lists, held)
        offline[role] = hook.conn.get_solution_metrics(solutionVersionArn=job["solution_version_arn"])[
            "metrics"
        ]
    result = replay_stats.bootstrap(
        scores,
        reference=CHAMPION if CHAMPION in scores else CHALLENGER,
        resamples=config.gate.replay_resamples,
        seed=window.seed,
    )
    metric = params.get("gate_metric") or config.gate.metric
    tolerance = (
        config.gate.tolerance if params.get("gate_tolerance") is None else float(params["gate_tolerance"])
    )
    decision = decide_replay(
        result,
        metric=metric,
        thresholds=dict(config.gate.thresholds),
        tolerance=tolerance,
        window=window.as_list(),
        offline=offline,
    )
    log.info(
        "replay of %s vs %s\n%s",
        replay_step["challenger_arn"],
        replay_step.get("champion_arn"),
        decision.table(),
    )
    log.info(decision.summary())
    if not decision.accepted or plan.get("dry_run"):
        return decision.as_dict(), "keep_champion", None
    if config.gate.replay_deploy == "retrain":
        return decision.as_dict(), "retrain", None
    return decision.as_dict(), "use_as_trained", replay_step["challenger_arn"]


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


def record(
    config: PipelineConfig,
    *,
    plan: Mapping[str, Any] | None,
    replay_step: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    trained_arn: str | None,
    retrained_arn: str | None,
    deployed: bool,
    run_id: str,
    dag_id: str,
) -> dict | None:
    """The run's line in the metrics history and its report; None when the run did nothing.

    Lines: a trained version (PENDING, or the offline gate's decision for a first version or a
    forced run); a replay decision (`replay_of` names the pending version it resolves); or a
    pending version that cannot be scored fairly (SUPERSEDED). `replay.data_end` is the day the
    line's version's training data ends, which the next replay checks the champion against.
    """
    if plan is None or replay_step is None:
        return None
    scored = replay_step["action"] in (replay_plan.SCORE, "supersede")
    if replay_step["action"] == "supersede":
        decision = {"verdict": "SUPERSEDED", "summary": replay_step["reason"], "challenger": {}}
    if decision is None or (not scored and trained_arn is None):
        return None
    offline = decision.get("offline") or {}
    if scored:
        evaluated = replay_step["challenger_arn"]
        arn = retrained_arn or evaluated
        data_end = replay_step["data_end"] if retrained_arn else replay_step["window"][0]
        metrics, champion_metrics = offline.get(CHALLENGER) or {}, offline.get(CHAMPION)
    else:
        arn, data_end = trained_arn, replay_step["data_end"]
        metrics, champion_metrics = decision.get("challenger") or {}, decision.get("champion")
    line = {
        "run_id": run_id,
        "dag_id": dag_id,
        "created_at": datetime.now(UTC).isoformat(),
        "solution_version_arn": arn,
        "training_mode": "FULL" if retrained_arn else plan.get("training_mode"),
        "metrics": metrics,
        "decision": dict(decision),
        "reason": decision["summary"],
        "champion_solution_version_arn": replay_step.get("champion_arn")
        if scored
        else plan.get("champion_arn"),
        "champion_metrics": champion_metrics,
        "deployed": deployed,
        "dry_run": bool(plan.get("dry_run")),
        "campaign_name": config.campaign.name,
        "training_data": replay_step.get("pending_training_data")
        if scored and not retrained_arn
        else plan.get("training_data"),
        "replay": {"window": decision.get("window") or replay_step.get("window"), "data_end": data_end},
    }
    if scored:
        line["replay_of"] = replay_step["challenger_arn"]
        line["pending_run_id"] = replay_step.get("pending_run_id")
        if retrained_arn:
            line["retrained_from"] = replay_step["challenger_arn"]
    s3 = s3_client(config)
    key = history_key(config.s3.prefix)
    written = append_record(s3, config.s3.bucket, key, line)
    history = read_history(s3, config.s3.bucket, key)
    if written:
        notify.rejections_in_a_row(config, history)
    report = None
    try:
        from include.pipeline.report import write_report

        report = write_report(s3, config.s3.bucket, config.s3.prefix, history, run_id)["markdown"]
    except Exception:  # the report is a convenience; the history line is the record
        log.exception("could not write the run report; the metrics history has the run")
    return {
        "history": f"s3://{config.s3.bucket}/{key}",
        "report": f"s3://{config.s3.bucket}/{report}" if report else None,
        "solution_version_arn": arn,
        "verdict": decision["verdict"],
        "deployed": deployed,
        "metrics": metrics,
        "training_data": line["training_data"],
    }


def failure(
    config: PipelineConfig,
    *,
    plan: Mapping[str, Any] | None,
    replay_step: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    trained_arn: str | None,
    retrained_arn: str | None,
    deployed: bool,
) -> str | None:
    """Why the run must fail (after recording what was done), from what its tasks returned."""
    if plan is None or replay_step is None:
        return "ensure_resources or plan_training failed: nothing was trained or scored"
    action = replay_step["action"]
    if action == replay_plan.SCORE and decision is None:
        return f"scoring {replay_step['challenger_arn']} failed (replay_inputs, replay_batch_jobs or replay_decide)"
    trains = action == replay_plan.TRAIN and plan.get("train")
    if trains and (trained_arn is None or decision is None):
        return "training or evaluation failed: nothing to record; see the failed task"
    if decision is None or plan.get("dry_run"):
        return None
    if decision.get("accepted") and decision.get("verdict") != replay_plan.PENDING and not deployed:
        what = retrained_arn or replay_step.get("challenger_arn") or trained_arn
        return (
            f"{what} passed the gate but was not deployed: retrain, deploy_campaign or smoke_test failed "
            f"(the campaign serves {plan.get('champion_arn') or 'nothing'})"
        )
    if decision.get("verdict") == "REJECTED" and config.gate.fail_on_reject:
        return f"challenger rejected and gate.fail_on_reject is true: {decision['summary']}"
    return None
