"""Run report for one training run: a Markdown page and two PNG plots, written to S3 next to the
metrics history (``<prefix>/history/reports/<run id>/``).

Input is the metrics history as plain records (history.py writes them, one per training run):
``{run_id, solution_version_arn, metrics: {name: value}, decision, reason, created_at}``, where
``decision`` is a verdict string (ACCEPTED | REJECTED | FORCED) or a GateDecision.as_dict(). The
report shows the run's challenger against the champion (the model the campaign served before the
run), the gate decision, and every version's metrics and catalogue coverage over time.

Numbers are printed exactly as recorded (4 decimals, as GetSolutionMetrics gives them), so the
report can be checked against GetSolutionMetrics; report.json carries the same numbers for tools.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from personalize_contract.metrics import METRIC_NAMES

from include.pipeline.history import history_key
from include.pipeline.online_metrics import online_metrics_markdown
from include.pipeline.report_replay import replay_markdown

log = logging.getLogger(__name__)

DEPLOYED_VERDICTS = frozenset({"ACCEPTED", "FORCED"})
# Replay mode (replay_tasks.py): a version waiting for its window, or one that could not be scored.
VERDICTS = frozenset({*DEPLOYED_VERDICTS, "REJECTED", "PENDING", "SUPERSEDED"})
# Ranking metrics share one axis (0..1); coverage has its own plot.
RANKING_METRICS = tuple(name for name in METRIC_NAMES if name != "coverage")
FILES = {
    "markdown": ("report.md", "text/markdown; charset=utf-8"),
    "json": ("report.json", "application/json"),
    "metrics_history_png": ("metrics_history.png", "image/png"),
    "coverage_png": ("coverage.png", "image/png"),
}
# Optional record keys shown as they are (history.py's records carry them).
DETAIL_KEYS = ("dag_id", "training_mode", "campaign_name")
COLOURS = {"ACCEPTED": "#2e7d32", "FORCED": "#ef6c00", "REJECTED": "#c62828"}
NOT_SERVED = "#9e9e9e"


class ReportError(ValueError):
    pass


@dataclass(frozen=True)
class Run:
    """One history record, checked and normalised."""

    index: int
    run_id: str
    solution_version_arn: str
    metrics: dict[str, float]
    verdict: str
    reason: str
    created_at: str
    champion_arn: str | None
    champion_metrics: dict[str, float] | None
    deployed: bool
    details: dict[str, str]
    # The popularity baseline's metrics, when the solution's gate has a baseline (issue 15).
    baseline_metrics: dict[str, float] | None = None
    # The replay gate's decision (replay_gate.ReplayDecision.as_dict()) or a PENDING one; None offline.
    replay: dict | None = None

    @property
    def version_label(self) -> str:
        """The solution version's id (last part of its ARN), short enough for an axis label."""
        return self.solution_version_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Report:
    run: Run
    markdown: str
    summary: dict[str, Any]
    metrics_history_png: bytes
    coverage_png: bytes


def parse_records(records: Sequence[Mapping[str, Any]]) -> list[Run]:
    """Validate history records (oldest first) and work out each run's champion."""
    runs: list[Run] = []
    serving: Run | None = None
    for index, record in enumerate(records):
        where = f"history record {index + 1}"
        if not isinstance(record, Mapping):
            raise ReportError(f"{where} is a {type(record).__name__}, not an object")
        run_id = record.get("run_id")
        arn = record.get("solution_version_arn")
        if not run_id or not isinstance(run_id, str):
            raise ReportError(f"{where} has no run_id")
        where = f"history record {index + 1} (run {run_id})"
        if not arn or not isinstance(arn, str):
            raise ReportError(f"{where} has no solution_version_arn")
        metrics = _metrics(record.get("metrics"), f"{where} metrics")
        decision = record.get("decision")
        verdict = decision.get("verdict") if isinstance(decision, Mapping) else decision
        if not isinstance(verdict, str) or verdict.upper() not in VERDICTS:
            raise ReportError(f"{where} decision must be one of {sorted(VERDICTS)}, got {decision!r}")
        reason = record.get("reason")
        if reason is None and isinstance(decision, Mapping):
            reason = decision.get("summary")
        # The champion is what served before this run: recorded explicitly, or the last deployed run.
        champion_metrics = record.get("champion_metrics")
        if champion_metrics is None and isinstance(decision, Mapping):
            champion_metrics = decision.get("champion")
        champion_arn = record.get("champion_solution_version_arn")
        if champion_metrics is None and serving is not None:
            champion_metrics = serving.metrics
        if champion_arn is None and serving is not None:
            champion_arn = serving.solution_version_arn
        run = Run(
            index=index,
            run_id=run_id,
            solution_version_arn=arn,
            metrics=metrics,
            verdict=verdict.upper(),
            reason=str(reason or ""),
            created_at=str(record.get("created_at") or ""),
            champion_arn=champion_arn,
            champion_metrics=None
            if champion_metrics is None
            else _metrics(champion_metrics, f"{where} champion metrics"),
            # An accepted version may still not be served (a dry run, a failed smoke test rolled back).
            deployed=record["deployed"]
            if isinstance(record.get("deployed"), bool)
            else verdict.upper() in DEPLOYED_VERDICTS,
            details={k: str(record[k]) for k in DETAIL_KEYS if record.get(k) not in (None, "")},
            baseline_metrics=None
            if record.get("baseline_metrics") is None
            else _metrics(record["baseline_metrics"], f"{where} baseline metrics"),
            replay=dict(decision) if isinstance(decision, Mapping) and decision.get("window") else None,
        )
        runs.append(run)
        if run.deployed:
            serving = run
    return runs


def _metrics(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ReportError(f"{where} must be an object of metric name -> number, got {value!r}")
    metrics = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ReportError(f"{where}: {name} is not a number: {number!r}")
        metrics[str(name)] = float(number)
    return metrics


def build_report(records: Sequence[Mapping[str, Any]], run_id: str | None = None) -> Report:
    """The report for `run_id` (default: the newest record) with the whole history plotted."""
    runs = parse_records(records)
    if not runs:
        raise ReportError("the metrics history is empty: nothing to report")
    if run_id is None:
        run = runs[-1]
    else:
        matches = [r for r in runs if r.run_id == run_id]
        if not matches:
            raise ReportError(f"run {run_id!r} is not in the metrics history ({len(runs)} records)")
        run = matches[-1]
    shown = runs[: run.index + 1]  # a report never shows runs that came after it
    summary = {
        "run_id": run.run_id,
        "solution_version_arn": run.solution_version_arn,
        "decision": run.verdict,
        "reason": run.reason,
        "created_at": run.created_at,
        "metrics": run.metrics,
        "champion_solution_version_arn": run.champion_arn,
        "champion_metrics": run.champion_metrics,
        "deployed": run.deployed,
        "replay": None if run.replay is None else run.replay.get("replay"),
        "history": [
            {
                "run_id": r.run_id,
                "solution_version_arn": r.solution_version_arn,
                "decision": r.verdict,
                "metrics": r.metrics,
            }
            for r in shown
        ],
    }
    # Online metrics (metric attribution) per deployed version, from the records up to this run.
    online = online_metrics_markdown(list(records)[: run.index + 1])
    return Report(
        run=run,
        markdown=_markdown(run, shown) + online,
        summary=summary,
        metrics_history_png=_metrics_history_png(shown, run),
        coverage_png=_coverage_png(shown, run),
    )


def format_number(value: float | None) -> str:
    """4 decimals (as Personalize shows metrics) unless that would change the number."""
    if value is None:
        return "-"
    text = f"{value:.4f}"
    return text if float(text) == value else repr(value)


def _ordered_names(*metric_maps: Mapping[str, float] | None) -> list[str]:
    present = set().union(*(m or {} for m in metric_maps))
    return [n for n in METRIC_NAMES if n in present] + sorted(present - set(METRIC_NAMES))


def _markdown(run: Run, shown: list[Run]) -> str:
    champion = run.champion_metrics
    lines = [
        f"# Training run report: {run.run_id}",
        "",
        f"- Challenger ({_challenger_origin(run)}): `{run.solution_version_arn}`",
        f"- Champion (served before this run): `{run.champion_arn}`"
        if run.champion_arn
        else "- Champion: none (no model was serving; this is the first deployment)",
        f"- Gate decision: **{run.verdict}**" + (f": {run.reason}" if run.reason else ""),
        f"- Deployed: {'yes' if run.deployed else 'no'}"
        + (f" (campaign {run.details['campaign_name']})" if "campaign_name" in run.details else ""),
    ]
    lines += [
        f"- {key.replace('_', ' ').capitalize()}: {run.details[key]}"
        for key in DETAIL_KEYS[:2]
        if key in run.details
    ]
    if run.created_at:
        lines.append(f"- Recorded at: {run.created_at}")
    baseline = run.baseline_metrics
    lines += [
        "",
        "## Metrics (GetSolutionMetrics)",
        "",
        "| metric | challenger | champion | change |"
        if baseline is None
        else "| metric | challenger | champion | change | popularity baseline | lift |",
        "|---|---:|---:|---:|" + ("" if baseline is None else "---:|---:|"),
    ]
    for name in _ordered_names(run.metrics, champion):
        mine = run.metrics.get(name)
        theirs = None if champion is None else champion.get(name)
        change = "-" if mine is None or theirs is None else f"{mine - theirs:+.4f}"
        row = f"| {name} | {format_number(mine)} | {format_number(theirs)} | {change} |"
        if baseline is not None:
            base = baseline.get(name)
            lift = "-" if mine is None or not base else f"{mine / base:.2f}x"
            row += f" {format_number(base)} | {lift} |"
        lines.append(row)
    if run.replay is not None:
        lines += ["", *replay_markdown(run.replay)]
    lines += [
        "",
        "## History",
        "",
        "![Ranking metrics across solution versions](metrics_history.png)",
        "",
        "![Catalogue coverage across solution versions](coverage.png)",
        "",
    ]
    history_names = [
        n for n in ("precision_at_25", "normalized_discounted_cumulative_gain_at_25", "coverage")
    ]
    lines.append("| # | run | solution version | decision | deployed | " + " | ".join(history_names) + " |")
    lines.append("|---:|---|---|---|---|" + "---:|" * len(history_names))
    for r in shown:
        cells = " | ".join(format_number(r.metrics.get(n)) for n in history_names)
        marker = " (this run)" if r is run else ""
        deployed = "yes" if r.deployed else "no"
        lines.append(
            f"| {r.index + 1} | {r.run_id}{marker} | `{r.version_label}` | {r.verdict} | {deployed} | {cells} |"
        )
    return "\n".join(lines) + "\n"


def _challenger_origin(run: Run) -> str:
    if run.replay is not None and run.replay.get("replay") is not None:
        return "trained by an earlier run, scored on the replay window by this one"
    return "this run's solution version"


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    # A bare Figure with the Agg canvas: no pyplot global state, safe in worker threads.
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _x_labels(axes, shown: list[Run], run: Run) -> None:
    axes.set_xticks(range(len(shown)))
    axes.set_xticklabels(
        [f"{r.index + 1}\n{r.version_label[:10]}" + ("\n(this run)" if r is run else "") for r in shown],
        fontsize=7,
    )
    axes.set_xlabel("training run / solution version")


def _metrics_history_png(shown: list[Run], run: Run) -> bytes:
    figure = _figure()
    axes = figure.add_subplot()
    xs = range(len(shown))
    names = [n for n in RANKING_METRICS if any(n in r.metrics for r in shown)]
    for name in names:
        ys = [r.metrics.get(name, float("nan")) for r in shown]
        (line,) = axes.plot(
            xs, ys, linewidth=1.5, label=name.replace("normalized_discounted_cumulative_gain", "ndcg")
        )
        # Versions never served (rejected, dry run, rolled back) get a hollow marker.
        for x, y, r in zip(xs, ys, shown, strict=True):
            axes.plot(
                x,
                y,
                marker="o",
                markersize=6,
                color=line.get_color(),
                markerfacecolor=line.get_color() if r.deployed else "white",
            )
    axes.axvline(run.index, color="grey", linestyle=":", linewidth=1)
    axes.set_ylabel("metric value")
    axes.set_ylim(bottom=0)
    axes.set_title(
        f"Offline metrics per solution version (filled = deployed, hollow = not deployed); {run.verdict}"
    )
    axes.title.set_fontsize(9)
    if names:
        axes.legend(fontsize=7, loc="best")
    _x_labels(axes, shown, run)
    axes.grid(alpha=0.3)
    return _png(figure)


def _coverage_png(shown: list[Run], run: Run) -> bytes:
    figure = _figure(8.0, 3.8)
    axes = figure.add_subplot()
    values = [r.metrics.get("coverage", 0.0) for r in shown]
    # Grey: accepted by the gate but never served (dry run, or rolled back after the smoke test).
    colours = [COLOURS[r.verdict] if r.deployed or r.verdict == "REJECTED" else NOT_SERVED for r in shown]
    bars = axes.bar(range(len(shown)), values, color=colours)
    axes.bar_label(bars, labels=[format_number(r.metrics.get("coverage")) for r in shown], fontsize=7)
    axes.set_ylim(0, max(1.0, *values) * 1.05)
    axes.set_ylabel("catalogue coverage")
    axes.set_title(
        "Share of the catalogue the model recommends "
        "(green deployed, orange forced, red rejected, grey accepted but not served)"
    )
    axes.title.set_fontsize(9)
    _x_labels(axes, shown, run)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def report_prefix(prefix: str, run_id: str, solution: str | None = None) -> str:
    """Folder of one run's report, next to the (solution's) metrics history; run ids made safe for keys and URLs."""
    safe_run = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_") or "run"
    return posixpath.join(posixpath.dirname(history_key(prefix, solution)), "reports", safe_run)


def write_report(
    s3: Any,
    bucket: str,
    prefix: str,
    records: Sequence[Mapping[str, Any]],
    run_id: str | None = None,
    solution: str | None = None,
) -> dict[str, str]:
    """Build the report for `run_id` (default: newest record), upload it, return {file kind: S3 key}.

    `s3` is a boto3 S3 client or an Airflow S3Hook. Rewriting a run's report overwrites the same keys.
    """
    client = s3.get_conn() if hasattr(s3, "get_conn") else s3
    report = build_report(records, run_id)
    folder = report_prefix(prefix, report.run.run_id, solution)
    bodies = {
        "markdown": report.markdown.encode("utf-8"),
        "json": json.dumps(report.summary, indent=2, sort_keys=True).encode("utf-8"),
        "metrics_history_png": report.metrics_history_png,
        "coverage_png": report.coverage_png,
    }
    keys = {}
    for kind, (filename, content_type) in FILES.items():
        key = f"{folder}/{filename}"
        client.put_object(Bucket=bucket, Key=key, Body=bodies[kind], ContentType=content_type)
        keys[kind] = key
    log.info("run report for %s: s3://%s/%s", report.run.run_id, bucket, keys["markdown"])
    return keys
