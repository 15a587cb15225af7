"""What the Personalize view's pages show, computed from a snapshot (personalize_view.data): the
overview's rows, each solution's section of the pipeline page (charts, decisions), what decided a
gate, report paths, and the templates' filters. No I/O: the routes (app.py) read, this shapes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from personalize_view import charts
from personalize_view.data import Snapshot, SolutionView, reconcile_rows

VERDICT_CLASSES = {"ACCEPTED": "accepted", "FORCED": "forced", "REJECTED": "rejected"}
# Replay mode's PENDING (waiting for its window) and SUPERSEDED lines get no colour of their own.


# ------------------------------------------------------------------------------- view models


def overview_row(snapshot: Snapshot, now: datetime) -> dict:
    """A pipeline: its solutions' rows, the last ingest and the alerts (the solutions' and the data's)."""
    return {
        "snapshot": snapshot,
        "config": snapshot.config,
        "solutions": [_solution_row(view, now, snapshot.config) for view in snapshot.solutions],
        "ingest": snapshot.ingest,
        "alerts": snapshot.alerts(now),
        "errors": snapshot.all_errors(),
    }


def _solution_row(view: SolutionView, now: datetime, config: Any) -> dict:
    """One solution as the overview and the pipeline page's "Now" table show it."""
    from include.pipeline.batch_schedule import solution_crons

    campaign = view.entry.campaign
    age = view.champion_age_days(now)
    champion = view.champion_run
    last = view.last_run
    metric = view.entry.gate.metric
    evaluation, rule = decision_rule(last, view.record(last)) if last else (None, None)
    return {
        "view": view,
        "entry": view.entry,
        "metric": metric,
        "serving": view.serving,
        # When its batch job runs (its own batch.schedule, else the pipeline's); None: manual only.
        "batch_cron": solution_crons(config).get(view.name),
        "champion_id": view.champion_id,
        "champion_run": champion,
        # The champion's gate metric and coverage as its own training recorded them.
        "champion_metrics": None
        if champion is None
        else {n: champion.metrics.get(n) for n in dict.fromkeys([metric, "coverage"])},
        "serving_since": view.serving_since(),
        "age_days": age,
        "too_old": campaign is not None and age is not None and age > campaign.max_serving_age_days,
        "last_run": last,
        "last_record": view.record(last) if last else None,
        "evaluation": evaluation,
        "rule": rule,
    }


def _epoch(value: str) -> float | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def pipeline_context(snapshot: Snapshot, now: datetime) -> dict:
    overview = overview_row(snapshot, now)
    return {
        "snapshot": snapshot,
        "config": snapshot.config,
        "overview": overview,
        "sections": [
            _solution_section(snapshot.config.name, view, row)
            for view, row in zip(snapshot.solutions, overview["solutions"], strict=True)
        ],
        "reconcile": snapshot.reconcile,
        "reconcile_rows": list(reversed(reconcile_rows(snapshot.reconcile))),
    }


def _solution_section(pipeline: str, view: SolutionView, row: dict) -> dict:
    """One solution's charts and decisions. The first solution's element ids are the plain ones
    (`gate-metric`, `coverage`, `gate-decisions`), as before several solutions; the others' end in
    `-<solution>` (names are letters, digits, `-` and `_`: valid in ids)."""
    gate = view.entry.gate
    metric = gate.metric
    suffix = "" if view.history_solution is None else f"-{view.name}"
    runs = view.runs
    epochs = [_epoch(r.created_at) for r in runs]
    time_axis = bool(runs) and all(e is not None for e in epochs)
    xs = epochs if time_axis else [float(r.index + 1) for r in runs]

    def point(run, x, value) -> charts.Point:
        deployed = "deployed" if run.deployed else "not deployed"
        return charts.Point(
            x=x,
            y=value,
            title=f"run {run.run_id}: version {run.version_label}, {metric} {num(value)}, {run.verdict}, {deployed}",
            css=f"point {VERDICT_CLASSES.get(run.verdict, '')} {'deployed' if run.deployed else 'not-deployed'}",
            attrs={"run-id": run.run_id, "version": run.version_label},
        )

    gate_points = [
        point(r, x, r.metrics[metric])
        for r, x in zip(runs, xs, strict=True)
        if _finite(r.metrics.get(metric))
    ]
    champion = [(r.champion_metrics or {}).get(metric) for r in runs]
    lines = [
        charts.Line("champion: the serving version's value at each run", "champion", xs, champion, step=True)
    ]
    threshold = gate.thresholds.get(metric)
    if threshold is not None and xs:
        lines.append(
            charts.Line(
                f"baseline: the gate's minimum {metric} {threshold:g}",
                "baseline",
                [xs[0], xs[-1]],
                [threshold] * 2,
            )
        )
    gate_chart = charts.chart(
        chart_id=f"gate-metric{suffix}",
        title=f"{metric} of every solution version of {pipeline} / {view.name}",
        desc=(
            f"One point per trained solution version ({len(gate_points)}), over time: filled = deployed, "
            "hollow = not deployed; green accepted, orange forced, red rejected. The step line is the "
            "champion (the version serving before each run); the dashed line is the gate's minimum."
        ),
        y_label=metric,
        points=gate_points,
        lines=lines,
        time_axis=time_axis,
    )
    coverage_points = [
        point(r, x, r.metrics["coverage"])
        for r, x in zip(runs, xs, strict=True)
        if _finite(r.metrics.get("coverage"))
    ]
    coverage_chart = charts.chart(
        chart_id=f"coverage{suffix}",
        title=f"Catalogue coverage of every solution version of {pipeline} / {view.name}",
        desc=(
            "Share of the catalogue each version recommends (GetSolutionMetrics coverage), one point per "
            "version, filled = deployed, hollow = not deployed."
        ),
        y_label="coverage",
        points=coverage_points,
        lines=[
            charts.Line(
                "coverage over versions",
                "trend",
                [p.x for p in coverage_points],
                [p.y for p in coverage_points],
            )
        ],
        time_axis=time_axis,
    )
    return {
        "view": view,
        "row": row,
        "gate": gate,
        "metric": metric,
        "suffix": suffix,
        "gate_chart": gate_chart,
        "coverage_chart": coverage_chart,
        "champion_metric_rows": []
        if row["champion_run"] is None
        else sorted(row["champion_run"].metrics.items()),
        "decisions": [(r, view.record(r)) for r in reversed(runs)],
    }


def report_path(pipeline: str, view: SolutionView, run_id: str) -> str:
    """A run's report page, relative to the app's root: the first solution keeps the shorter path."""
    where = f"pipelines/{quote(pipeline, safe='')}"
    if view.history_solution is not None:
        where += f"/solutions/{quote(view.name, safe='')}"
    return f"{where}/reports/{quote(run_id, safe='')}"


def history_uri(config: Any, view: SolutionView) -> str:
    """Where the solution's metrics history lives (include/pipeline/history.py history_key)."""
    from include.pipeline.history import history_key

    return f"s3://{config.s3.bucket}/{history_key(config.s3.prefix, view.history_solution)}"


def decision_rule(run, record: dict) -> tuple[str, str]:
    """(evaluation, what decided) of one history line: "offline" or "replay", and the rule as people read it.

    Offline (include/pipeline/gate.py, baseline.py): the failed rules, or every rule that passed.
    Replay (replay_gate.py): the decision's own `rule` text plus what failed; PENDING: the window it waits for.
    """
    decision = record.get("decision")
    if not isinstance(decision, dict):
        return "offline", run.reason
    findings = gate_findings(run, record)
    if run.verdict == "PENDING":
        window = decision.get("window") or ["?", "?"]
        return "replay", f"pending: waits for the data of {window[0]}..{window[1]} to be scored"
    if run.verdict == "SUPERSEDED":
        return "replay", f"superseded: {run.reason}"
    if decision.get("evaluation") == "replay":
        rule = str(decision.get("rule") or "")
        failures = decision.get("failures") or []
        return "replay", "; ".join([rule, *map(str, failures)]) if failures else rule
    if decision.get("failures"):
        return "offline", findings
    rules = []
    if decision.get("thresholds"):
        rules.append("minimums " + ", ".join(f"{k} {v:g}" for k, v in sorted(decision["thresholds"].items())))
    if decision.get("champion"):
        tolerance = decision.get("tolerance", 0)
        tolerance = f"{tolerance:g}" if isinstance(tolerance, int | float) else str(tolerance)
        rules.append(f"within tolerance {tolerance} of the champion")
    else:
        rules.append("no champion to compare with")
    if decision.get("lift") is not None:
        rules.append(f"lift {decision['lift']:.2f}x >= {decision.get('min_lift', 1):g}x over the baseline")
    text = "every rule passed: " + "; ".join(rules)
    if decision.get("forced_reason"):
        text += f"; forced: {decision['forced_reason']}"
    return "offline", text


def gate_findings(run, record: dict) -> str:
    """What the gate found, without the numbers the table's columns already show."""
    decision = record.get("decision")
    if not isinstance(decision, dict) or not isinstance(decision.get("failures"), list):
        return run.reason
    findings = "; ".join(str(f) for f in decision["failures"]) or "every rule passed"
    if decision.get("forced_reason"):
        findings += f"; forced: {decision['forced_reason']}"
    if record.get("dry_run"):
        findings += "; dry run"
    return findings


def metric_rows(run) -> list[tuple[str, float | None, float | None]]:
    names = list(dict.fromkeys([*run.metrics, *(run.champion_metrics or {})]))
    return [(n, run.metrics.get(n), (run.champion_metrics or {}).get(n)) for n in names]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


# ---------------------------------------------------------------------------------- filters


def num(value: Any) -> str:
    from include.pipeline.report import format_number

    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return format_number(float(value))


def _as_utc(moment: datetime | str | None) -> datetime | str:
    """An aware datetime, or the text to show as it is (empty: "-", unparseable: itself)."""
    if moment is None or moment == "":
        return "-"
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ago(moment: datetime | str | None, now: datetime | None = None) -> str:
    moment = _as_utc(moment)
    if isinstance(moment, str):
        return moment
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit} ago" if unit == "d" else f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def timestamp(moment: datetime | str | None) -> str:
    moment = _as_utc(moment)
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
