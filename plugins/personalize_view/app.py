"""The Personalize view: a FastAPI app the Airflow API server mounts at ``/personalize``.

Pages (HTML, server-rendered, shown in the Airflow UI in an iframe):
- ``/personalize/``: every pipeline the user may read, one row per solution: recipe, serving
  (campaign / batch), the champion and its metrics, how old, the last gate decision (offline or
  replay, and the rule that decided); per pipeline the last ingest and alerts;
- ``/personalize/pipelines/{name}`` (and ``/personalize/dags/{dag_id}``, the tab on each of a
  pipeline's DAGs): per solution (anchor ``#solution-<name>``) gate metric and catalogue coverage of
  every version and the gate decisions; the per-day data table;
- ``/personalize/pipelines/{name}/reports/{run_id}`` (the first solution's runs) and
  ``/personalize/pipelines/{name}/solutions/{solution}/reports/{run_id}``: one run's report as the
  pipeline wrote it.

Every route needs an Airflow login (the UI's cookie or a bearer token), checked with the API
server's own dependency (`get_user`); a pipeline is shown only to users who may read its DAG runs.
Nothing from connections is shown: the pages name buckets, prefixes and Personalize resources.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from personalize_view.data import (
    CACHE_TTL_SECONDS,
    Snapshot,
    SnapshotCache,
    SolutionView,
    pipelines_of,
    read_object,
    report_key,
    s3_for,
)
from personalize_view.page_models import (
    VERDICT_CLASSES,
    ago,
    decision_rule,
    gate_findings,
    history_uri,
    metric_rows,
    num,
    overview_row,
    pipeline_context,
    report_path,
    timestamp,
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
                    configs, error = load_configs(), None
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
    env.filters["num"] = num
    env.filters["ago"] = ago
    env.filters["ts"] = timestamp
    env.globals["verdict_class"] = lambda verdict: VERDICT_CLASSES.get(verdict, "")
    env.globals["gate_findings"] = gate_findings
    env.globals["decision_rule"] = decision_rule
    env.globals["report_path"] = report_path
    env.globals["history_uri"] = history_uri

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
            rows=[overview_row(s, now) for s in snapshots],
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
        return render(request, "pipeline.html", **pipeline_context(snapshot, now))

    def solution_named(snapshot: Snapshot, solution: str | None) -> SolutionView:
        view = snapshot.solution(solution)
        if view is None or (solution is not None and view.history_solution is None):
            # The first solution's runs have the shorter URL only: one address per report.
            raise HTTPException(404, f"{snapshot.name} has no solution {solution!r} with its own history")
        return view

    def report_page(
        request: Request, user: Any, name: str, run_id: str, solution: str | None
    ) -> HTMLResponse:
        config = config_named(user, name)
        view = solution_named(app.state.cache.get(config), solution)
        run = next((r for r in view.runs if r.run_id == run_id), None)
        if run is None:
            raise HTTPException(404, f"run {run_id!r} is not in {view.name}'s metrics history")
        key = report_key(config, run_id, "report.md", view.history_solution)
        body = read_object(s3_for(config), config.s3.bucket, key)
        return render(
            request,
            "report.html",
            config=config,
            solution=view,
            run=run,
            record=view.record(run),
            markdown=None if body is None else body.decode("utf-8", "replace"),
            files=report_files(),
            metric_rows=metric_rows(run),
        )

    def report_file_response(
        user: Any, name: str, run_id: str, filename: str, solution: str | None
    ) -> Response:
        files = report_files()
        if filename not in files:
            raise HTTPException(404, f"a report has no file {filename!r}")
        config = config_named(user, name)
        if solution is not None and not any(e.name == solution for e in config.solutions[1:]):
            raise HTTPException(404, f"{name} has no solution {solution!r} with its own history")
        key = report_key(config, run_id, filename, solution)
        body = read_object(s3_for(config), config.s3.bucket, key)
        if body is None:
            raise HTTPException(404, f"run {run_id!r} has no {filename} on S3")
        return Response(body, media_type=files[filename])

    @app.get("/pipelines/{name}/reports/{run_id}", response_class=HTMLResponse)
    def report(request: Request, name: str, run_id: str, user: User):
        return report_page(request, user, name, run_id, None)

    @app.get("/pipelines/{name}/solutions/{solution}/reports/{run_id}", response_class=HTMLResponse)
    def solution_report(request: Request, name: str, solution: str, run_id: str, user: User):
        return report_page(request, user, name, run_id, solution)

    @app.get("/pipelines/{name}/reports/{run_id}/{filename}")
    def report_file(name: str, run_id: str, filename: str, user: User):
        return report_file_response(user, name, run_id, filename, None)

    @app.get("/pipelines/{name}/solutions/{solution}/reports/{run_id}/{filename}")
    def solution_report_file(name: str, solution: str, run_id: str, filename: str, user: User):
        return report_file_response(user, name, run_id, filename, solution)

    return app
