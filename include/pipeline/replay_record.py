"""The end of a replay solution's task group: its line in its own metrics history, its report, and
its outcome for `finish` (solution_record.finish_run), as record_solution is for an offline solution.

Never raises: one solution's trouble does not touch another's record; `finish` fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.pipeline import replay_plan
from include.pipeline.clients import s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.replay_gate import BASELINE, CHALLENGER, CHAMPION
from include.pipeline.replay_tasks import SCORE, TRAIN
from include.pipeline.solution_record import append_line, online_totals_of

log = logging.getLogger(__name__)


def history_line(
    config: PipelineConfig,
    name: str,
    *,
    plan: Mapping[str, Any],
    decision: Mapping[str, Any] | None,
    trained_arn: str | None,
    retrained_arn: str | None,
    deployed: bool,
    run_id: str,
    dag_id: str,
) -> dict | None:
    """The run's line, or None when the run did nothing to record.

    Lines: a trained version (PENDING, or the offline gate's decision for a first version or a
    forced run); a replay decision (`replay_of` names the pending version it resolves); or a
    pending version that cannot be scored fairly (SUPERSEDED). `replay.data_end` is the day the
    line's version's training data ends, which the next replay checks the champion against.
    """
    step = plan["replay"]
    scored = step["next"] == SCORE or step["action"] == "supersede"
    if step["action"] == "supersede":
        decision = {"verdict": "SUPERSEDED", "summary": step["reason"], "challenger": {}}
    if decision is None or (not scored and trained_arn is None):
        return None
    entry = config.solution_named(name)
    offline = decision.get("offline") or {}
    if scored:
        arn = retrained_arn or step["challenger_arn"]
        data_end = step["data_end"] if retrained_arn else step["window"][0]
        metrics = offline.get(CHALLENGER) or {}
        champion_metrics, baseline_metrics = offline.get(CHAMPION), offline.get(BASELINE)
        champion_arn = step.get("champion_arn")
    else:
        arn, data_end = trained_arn, step["data_end"]
        metrics, champion_metrics = decision.get("challenger") or {}, decision.get("champion")
        baseline_metrics = decision.get("baseline") if decision.get("evaluation") != "replay" else None
        champion_arn = plan.get("champion_arn")
    line = {
        "run_id": run_id,
        "dag_id": dag_id,
        "solution": name,
        "recipe": entry.recipe,
        "created_at": datetime.now(UTC).isoformat(),
        "solution_version_arn": arn,
        "training_mode": "FULL" if retrained_arn else plan.get("training_mode"),
        "metrics": metrics,
        "decision": dict(decision),
        "reason": decision["summary"],
        "champion_solution_version_arn": champion_arn,
        "champion_metrics": champion_metrics,
        "baseline_solution_version_arn": decision.get("baseline_arn"),
        "baseline_metrics": baseline_metrics,
        "deployed": deployed,
        "dry_run": bool(plan.get("dry_run")),
        "campaign_name": entry.campaign.name if entry.campaign else None,
        "training_data": step.get("pending_training_data")
        if scored and not retrained_arn
        else plan.get("training_data"),
        "replay": {"window": decision.get("window") or step.get("window"), "data_end": data_end},
    }
    if scored:
        line["replay_of"] = step["challenger_arn"]
        line["pending_run_id"] = step.get("pending_run_id")
        if retrained_arn:
            line["retrained_from"] = step["challenger_arn"]
    return line


def failure(
    config: PipelineConfig,
    name: str,
    *,
    plan: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    trained_arn: str | None,
    retrained_arn: str | None,
    deployed: bool,
) -> str | None:
    """Why the solution's branch failed (after recording what was done), from what its tasks returned."""
    if plan is None:
        return "not planned (ensure_resources or plan_training failed)"
    step = plan["replay"]
    if step["next"] == SCORE and decision is None:
        return f"scoring {step['challenger_arn']} failed (replay_inputs, replay_batch_jobs or replay_decide)"
    if step["next"] == TRAIN and (trained_arn is None or decision is None):
        return "training or evaluation failed: nothing to record; see the group's failed task"
    if decision is None or plan.get("dry_run"):
        return None
    if decision.get("accepted") and decision.get("verdict") != replay_plan.PENDING and not deployed:
        what = retrained_arn or step.get("challenger_arn") or trained_arn
        return (
            f"{what} passed the gate but was not deployed: retrain, deploy_campaign, smoke_test or accept_batch "
            f"failed (the champion stays {plan.get('champion_arn') or 'nothing'})"
        )
    if decision.get("verdict") == "REJECTED" and config.solution_named(name).gate.fail_on_reject:
        return f"rejected and gate.fail_on_reject is true: {decision['summary']}"
    return None


def record_replay(
    config: PipelineConfig,
    name: str,
    *,
    plan: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    trained_arn: str | None,
    retrained_arn: str | None,
    deployed: bool,
    run_id: str,
    dag_id: str,
) -> dict:
    """`{"solution", "failure", "record", "report"}`, the shape solution_record.finish_run reads."""
    outcome: dict[str, Any] = {"solution": name, "failure": None, "record": None, "report": None}
    done = dict(decision=decision, trained_arn=trained_arn, retrained_arn=retrained_arn, deployed=deployed)
    outcome["failure"] = failure(config, name, plan=plan, **done)
    if plan is None:
        return outcome
    line = history_line(config, name, plan=plan, **done, run_id=run_id, dag_id=dag_id)
    if line is None:
        return outcome
    s3 = s3_client(config)
    line["online_totals"] = online_totals_of(config.for_solution(name), s3)
    outcome.update(append_line(config, name, line, run_id, s3))
    return outcome
