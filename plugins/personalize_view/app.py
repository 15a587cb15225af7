"""The Personalize view: a FastAPI app the Airflow API server mounts at ``/personalize``.

Pages (HTML, server-rendered, shown in the Airflow UI in an iframe):
- ``/personalize/``: every pipeline the user may read: what serves, how old, the last gate
  decision, the last ingest, alerts;
- ``/personalize/pipelines/{name}`` (and ``/personalize/dags/{dag_id}``, the tab on each of a
  pipeline's DAGs): gate metric and catalogue coverage of every version, the gate decisions, the
  per-day data table;
- ``/personalize/pipelines/{name}/reports/{run_id}``: one run's report as the pipeline wrote it.

Every route needs an Airflow login (the UI's cookie or a bearer token), checked with the API
server's own dependency (`get_user`); a pipeline is shown only to users who may read its DAG runs.
Nothing from connections is shown: the pages name buckets, prefixes and Personalize resources.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from personalize_view import charts
from personalize_view.data import (
    CACHE_TTL_SECONDS,
    Snapshot,
    SnapshotCache,
    pipelines_of,
    read_object,
    reconcile_rows,
    report_key,
    s3_for,
)

if TYPE_CHECKING:
    from include.pipeline.config import PipelineConfig

URL_PREFIX = "/personalize"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def report_files() -> dict[str, str]:
    """File name -> content type of a run's report folder (report.py's FILES); Markdown as plain text
    so a browser shows it instead of downloading it. Imported late: report.py loads matplotlib."""
    from include.pipeline.report import FILES

    return {
        name: "text/plain; charset=utf-8" if name.endswith(".md") else content_type
        for name, content_type in FILES.values()
    }


VERDICT_CLASSES = {"ACCEPTED": "accepted", "FORCED": "forced", "REJECTED": "rejected"}
# Replay mode's PENDING (waiting for its window) and SUPERSEDED lines get no colour of their own.


async def current_user(request: Request):
    """The Airflow user of the request: bearer token or the UI's JWT cookie, else 401/403.

    The API server's own `get_user`, imported late: its module needs the auth manager, which only
    the API server initialises, and every Airflow component imports this plugin.
    """
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials) if credentials else None
    return await get_user(request, None, bearer)


User = Annotated[Any, Depends(current_user)]


def may_read(user: Any, config: PipelineConfig) -> bool:
    """Whether the user may read the runs of every DAG of the pipeline (what the page shows)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    return all(
        manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
        )
        for dag_id in config.dag_ids.values()
    )


class Configs:
    """The pipeline configs, re-read at most every TTL (they change with a deploy, not per request)."""

    def __init__(self, ttl: float = CACHE_TTL_SECONDS):
        self.ttl = ttl
        self._loaded: tuple[float, list, str | None] | None = None
        self._lock = threading.Lock()

    def get(self, refresh: bool = False) -> tuple[list[PipelineConfig], str | None]:
        from include.pipeline.config import ConfigError, load_configs

        with self._lock:
            if self._loaded is None or refresh or time.monotonic() - self._loaded[0] >= self.ttl:
                try:
                    # The view shows each pipeline's first solution (several: issue 15, left to do).
                    configs = [c.for_solution(c.solutions[0].name) for c in load_configs()]
                    error = None
                except (ConfigError, OSError) as err:
                    configs, error = [], str(err)
                self._loaded = (time.monotonic(), configs, error)
            return self._loaded[1], self._loaded[2]


def create_app(cache: SnapshotCache | None = None, configs: Configs | None = None) -> FastAPI:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    app = FastAPI(title="Personalize view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cache = cache or SnapshotCache()
    app.state.configs = configs or Configs()
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["num"] = _num
    env.filters["ago"] = _ago
    env.filters["ts"] = _timestamp
    env.globals["verdict_class"] = lambda verdict: VERDICT_CLASSES.get(verdict, "")
    env.globals["gate_findings"] = gate_findings

    def render(request: Request, template: str, **context: Any) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        context.update(
            app_root=root + "/",
            airflow_root=root.removesuffix(URL_PREFIX) + "/",
            now=datetime.now(UTC),
            ttl=int(app.state.cache.ttl),
            quote=lambda value: quote(str(value), safe=""),
        )
        return HTMLResponse(env.get_template(template).render(**context))

    def config_named(user: Any, name: str) -> PipelineConfig:
        configs, _ = app.state.configs.get()
        config = next((c for c in configs if c.name == name), None)
        # The same answer for "absent" and "not yours": a name is not disclosed to those who may not read it.
        if config is None or not may_read(user, config):
            raise HTTPException(404, f"no pipeline {name!r} you may read")
        return config

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, user: User, refresh: Annotated[bool, Query()] = False):
        configs, config_error = app.state.configs.get(refresh)
        readable = [c for c in configs if may_read(user, c)]
        snapshots = [app.state.cache.get(c, refresh) for c in readable]
        now = datetime.now(UTC)
        return render(
            request,
            "overview.html",
            rows=[_overview_row(s, now) for s in snapshots],
            config_error=config_error,
            hidden=len(configs) - len(readable),
            oldest=min((s.fetched_at for s in snapshots), default=None),
        )

    @app.get("/pipelines/{name}", response_class=HTMLResponse)
    def pipeline(request: Request, name: str, user: User, refresh: Annotated[bool, Query()] = False):
        config = config_named(user, name)
        return _pipeline_page(request, config, refresh)

    @app.get("/dags/{dag_id}", response_class=HTMLResponse)
    def dag_tab(request: Request, dag_id: str, user: User, refresh: Annotated[bool, Query()] = False):
        configs, _ = app.state.configs.get()
        config = pipelines_of(configs, dag_id)
        if config is None or not may_read(user, config):
            return render(request, "not_a_pipeline.html", dag_id=dag_id)
        return _pipeline_page(request, config, refresh)

    def _pipeline_page(request: Request, config: PipelineConfig, refresh: bool) -> HTMLResponse:
        snapshot = app.state.cache.get(config, refresh)
        now = datetime.now(UTC)
        return render(request, "pipeline.html", **_pipeline_context(snapshot, now))

    @app.get("/pipelines/{name}/reports/{run_id}", response_class=HTMLResponse)
    def report(request: Request, name: str, run_id: str, user: User):
        config = config_named(user, name)
        snapshot = app.state.cache.get(config)
        run = next((r for r in snapshot.runs if r.run_id == run_id), None)
        if run is None:
            raise HTTPException(404, f"run {run_id!r} is not in {name}'s metrics history")
        body = read_object(s3_for(config), config.s3.bucket, report_key(config, run_id, "report.md"))
        return render(
            request,
            "report.html",
            config=config,
            run=run,
            record=snapshot.record(run),
            markdown=None if body is None else body.decode("utf-8", "replace"),
            files=report_files(),
            metric_rows=_metric_rows(run),
        )

    @app.get("/pipelines/{name}/reports/{run_id}/{filename}")
    def report_file(name: str, run_id: str, filename: str, user: User):
        files = report_files()
        if filename not in files:
            raise HTTPException(404, f"a report has no file {filename!r}")
        config = config_named(user, name)
        body = read_object(s3_for(config), config.s3.bucket, report_key(config, run_id, filename))
        if body is None:
            raise HTTPException(404, f"run {run_id!r} has no {filename} on S3")
        return Response(body, media_type=files[filename])

    return app


# ------------------------------------------------------------------------------- view models


def _overview_row(snapshot: Snapshot, now: datetime) -> dict:
    config = snapshot.config
    serving = snapshot.serving
    age = serving.age_days(now) if serving else None
    last = snapshot.last_run
    return {
        "snapshot": snapshot,
        "config": config,
        "serving": serving,
        "serving_since": snapshot.serving_since(),
        "age_days": age,
        "too_old": age is not None and age > config.campaign.max_serving_age_days,
        "last_run": last,
        "last_record": snapshot.record(last) if last else None,
        "ingest": snapshot.ingest,
        "alerts": snapshot.alerts(now),
    }


def _epoch(value: str) -> float | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _pipeline_context(snapshot: Snapshot, now: datetime) -> dict:
    config = snapshot.config
    metric = config.gate.metric
    runs = snapshot.runs
    epochs = [_epoch(r.created_at) for r in runs]
    time_axis = bool(runs) and all(e is not None for e in epochs)
    xs = epochs if time_axis else [float(r.index + 1) for r in runs]

    def point(run, x, value) -> charts.Point:
        deployed = "deployed" if run.deployed else "not deployed"
        return charts.Point(
            x=x,
            y=value,
            title=f"run {run.run_id}: version {run.version_label}, {metric} {_num(value)}, {run.verdict}, {deployed}",
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
    threshold = config.gate.thresholds.get(metric)
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
        chart_id="gate-metric",
        title=f"{metric} of every solution version of {config.name}",
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
        chart_id="coverage",
        title=f"Catalogue coverage of every solution version of {config.name}",
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
    serving_run = next(
        (
            r
            for r in reversed(runs)
            if snapshot.serving and r.deployed and r.solution_version_arn == snapshot.serving.version_arn
        ),
        None,
    )
    return {
        "snapshot": snapshot,
        "config": config,
        "metric": metric,
        "overview": _overview_row(snapshot, now),
        "gate_chart": gate_chart,
        "coverage_chart": coverage_chart,
        "serving_coverage": None if serving_run is None else serving_run.metrics.get("coverage"),
        "decisions": [(r, snapshot.record(r)) for r in reversed(runs)],
        "reconcile": snapshot.reconcile,
        "reconcile_rows": list(reversed(reconcile_rows(snapshot.reconcile))),
    }


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


def _metric_rows(run) -> list[tuple[str, float | None, float | None]]:
    names = list(dict.fromkeys([*run.metrics, *(run.champion_metrics or {})]))
    return [(n, run.metrics.get(n), (run.champion_metrics or {}).get(n)) for n in names]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


# ---------------------------------------------------------------------------------- filters


def _num(value: Any) -> str:
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


def _ago(moment: datetime | str | None, now: datetime | None = None) -> str:
    moment = _as_utc(moment)
    if isinstance(moment, str):
        return moment
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit} ago" if unit == "d" else f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _timestamp(moment: datetime | str | None) -> str:
    moment = _as_utc(moment)
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
