"""The end of each solution's branch of train_deploy, and of the run: metrics history, report, verdict.

`record_solution` runs after every path of its solution's task group (deployed, rejected, dry run,
deploy or smoke test failed) and never raises: it returns what happened, so one solution's trouble
does not touch another's record. `finish_run` then fails the run naming each solution that failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.pipeline import notify
from include.pipeline.clients import s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.history import append_record, history_solution, read_history, solution_history_key

log = logging.getLogger(__name__)

OVERVIEW_KEY = "history/overview.png"


def append_line(config: PipelineConfig, name: str, line: dict, run_id: str, s3) -> dict:
    """Appends a solution's history line (once per run), alerts on repeated rejections and writes the
    run's report: `{"record", "report"}` for the solution's outcome."""
    view = config.for_solution(name)
    key = solution_history_key(config, name)
    if append_record(s3, config.s3.bucket, key, line):  # a rerun of the same run must not alert twice
        notify.rejections_in_a_row(view, read_history(s3, config.s3.bucket, key))
    done: dict[str, Any] = {"report": None}
    try:
        from include.pipeline.report import write_report

        history = read_history(s3, config.s3.bucket, key)
        keys = write_report(
            s3, config.s3.bucket, config.s3.prefix, history, run_id, history_solution(config, name)
        )
        done["report"] = f"s3://{config.s3.bucket}/{keys['markdown']}"
    except Exception:  # the report is a convenience; the history line is the record
        log.exception("could not write the run report of %s; the metrics history has the run", name)
    done["record"] = {k: line[k] for k in ("solution_version_arn", "deployed", "metrics", "training_data")}
    done["record"]["verdict"] = line["decision"]["verdict"]
    return done


def record_solution(
    config: PipelineConfig,
    name: str,
    *,
    plan: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    challenger_arn: str | None,
    deployed: bool,
    run_id: str,
    dag_id: str,
) -> dict:
    """`{"solution", "failure", "record"}`: failure is None when the solution's branch went as planned."""
    outcome: dict[str, Any] = {"solution": name, "failure": None, "record": None}
    if plan is None:
        outcome["failure"] = "not planned (ensure_resources or plan_training failed)"
        return outcome
    if not plan.get("train"):
        return outcome
    if decision is None or challenger_arn is None:
        outcome["failure"] = "training or evaluation failed: nothing to record; see the group's failed task"
        return outcome
    view = config.for_solution(name)
    entry = view.solutions[0]
    s3 = s3_client(config)
    record = {
        "run_id": run_id,
        "dag_id": dag_id,
        "solution": name,
        "recipe": entry.recipe,
        "created_at": datetime.now(UTC).isoformat(),
        "solution_version_arn": challenger_arn,
        "training_mode": plan["training_mode"],
        "metrics": decision["challenger"],
        "decision": decision,
        "reason": decision["summary"],
        "champion_solution_version_arn": plan.get("champion_arn"),
        "champion_metrics": decision.get("champion"),
        "baseline_solution_version_arn": decision.get("baseline_arn"),
        "baseline_metrics": decision.get("baseline"),
        "deployed": deployed,
        "dry_run": bool(plan.get("dry_run")),
        "campaign_name": entry.campaign.name if entry.campaign else None,
        "training_data": plan.get("training_data"),
        # The solution's campaign's running online totals now (metric attribution); None without.
        "online_totals": online_totals_of(view, s3),
    }
    outcome.update(append_line(config, name, record, run_id, s3))
    should_deploy = decision["accepted"] and not plan.get("dry_run")
    if should_deploy and not deployed:
        outcome["failure"] = (
            f"{challenger_arn} passed the gate but was not deployed (deploy or smoke test failed; the champion "
            f"stays {plan.get('champion_arn') or 'nothing'})"
        )
    elif decision["verdict"] == "REJECTED" and view.gate.fail_on_reject and not plan.get("dry_run"):
        outcome["failure"] = f"rejected and gate.fail_on_reject is true: {decision['summary']}"
    return outcome


def online_totals_of(view: PipelineConfig, s3: Any) -> dict[str, float] | None:
    """The totals are a convenience of the report: a failure to read them never loses the record."""
    from include.pipeline.tasks.metric_attribution import online_totals

    try:
        return online_totals(view, s3)
    except Exception:
        log.exception("could not read the online totals of %s; recorded without them", view.solutions[0].name)
        return None


def keep_champion(
    config: PipelineConfig, name: str, plan: Mapping[str, Any], decision: Mapping[str, Any]
) -> str:
    """A rejected (or dry-run) challenger: the champion stays, the rejection is told; never raises."""
    champion = plan.get("champion_arn") or "nothing yet"
    if plan.get("dry_run"):
        message = f"DRY RUN ({name}): the gate said {decision['verdict']}; champion untouched: {champion}"
    else:
        message = f"CHALLENGER OF {name} REJECTED, the champion stays {champion}. {decision['summary']}"
        notify.gate_rejected(config.for_solution(name), decision, champion)
    log.warning("%s\n%s", message, decision.get("table", ""))
    return message


def finish_run(config: PipelineConfig, outcomes: Mapping[str, Mapping[str, Any] | None]) -> dict:
    """Every solution's outcome; AirflowFailException naming each failed solution, after the overview."""
    try:
        write_overview(config)
    except Exception:
        log.exception("could not draw the overview of every solution's gate metric")
    failed = {
        name: (outcome or {}).get("failure") or "its record task failed"
        for name, outcome in outcomes.items()
        if outcome is None or outcome.get("failure")
    }
    for name, outcome in outcomes.items():
        log.info(
            "%s: %s", name, (outcome or {}).get("record") or (outcome or {}).get("failure") or "not trained"
        )
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{len(failed)} of {len(outcomes)} solution(s) failed: "
            + "; ".join(f"{name}: {why}" for name, why in sorted(failed.items()))
        )
    return {name: (outcome or {}).get("record") for name, outcome in outcomes.items()}


def write_overview(config: PipelineConfig) -> str:
    """One picture: every solution's gate metric per trained version over time (filled = deployed)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s3 = s3_client(config)
    figure = Figure(figsize=(8.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for entry in config.solutions:
        records = read_history(s3, config.s3.bucket, solution_history_key(config, entry.name))
        metric = entry.gate.metric
        points = [
            (datetime.fromisoformat(r["created_at"]), r["metrics"].get(metric), bool(r.get("deployed")))
            for r in records
            if "created_at" in r
        ]
        points = [p for p in points if p[1] is not None]
        if not points:
            continue
        line = axes.plot(
            [p[0] for p in points], [p[1] for p in points], marker="o", label=f"{entry.name} ({metric})"
        )[0]
        for when, value, deployed in points:
            axes.plot(
                [when], [value], marker="o", color=line.get_color(), fillstyle="full" if deployed else "none"
            )
    axes.set_title(f"{config.name}: each solution's gate metric per trained version (filled = deployed)")
    axes.set_ylabel("gate metric")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="best", fontsize="small")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    key = config.s3.key(OVERVIEW_KEY)
    s3.put_object(Bucket=config.s3.bucket, Key=key, Body=buffer.getvalue(), ContentType="image/png")
    log.info("overview of every solution: s3://%s/%s", config.s3.bucket, key)
    return key
