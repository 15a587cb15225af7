"""The real-stack tier: the pipeline under a real scheduler, triggerer, DAG processor and API server.

One stack per session (include/stack.py, the code `make ui` runs): components as subprocesses on
127.0.0.1, LocalExecutor, a fresh PostgreSQL metadata database on 127.0.0.1:5432 (dropped at the
end), moto's S3 and the local Personalize service, the demo config on a small demo shop. Tests
drive it only as users do: the REST API (`stack.api`, `stack.trigger`, ...) and the CLI (`stack.cli`).

Fixtures for later tests: `stack` (base_url, token, api/cli, trigger and wait helpers, the S3 and
Personalize endpoints and clients, the config) and `browser` (headless Debian chromium through
chromium-driver, `browser.screenshot(name)` -> tests/stack/artifacts/NAME.png).

Run with `make test-stack` or `pytest -m stack tests/stack` (`.ci/run` does, after the unit suite).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from include.stack import REPO_ROOT, Stack
from include.stack_processes import free_port
from include.stack_setup import Shop, StackSettings

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
TERMINAL_RUN_STATES = {"success", "failed"}
# The demo shop: every day of the last 8 has over 1000 events (Personalize's import minimum), so each
# scheduled ingest run imports its day and publishes the asset.
SHOP = Shop(users=1500, items=300, days=8, seed=7)
# Scheduled intervals test (a) runs: catch-up from this many days before today.
SCHEDULED_DAYS = 3
# Generous deadlines (2 busy cores): polls end as soon as the condition holds.
RUN_DEADLINE = 900

TIER: dict = {}


def pytest_terminal_summary(terminalreporter):
    if TIER:
        terminalreporter.write_sep("=", "real-stack tier")
        for key, value in TIER.items():
            terminalreporter.write_line(f"{key}: {value}")


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def tier_config(folder: Path) -> Path:
    """The shipped demo config, catching up SCHEDULED_DAYS intervals, polling fast, deferring early."""
    source = REPO_ROOT / "include" / "config" / "demo_retail.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["schedule"].update(start_date=(today() - timedelta(days=SCHEDULED_DAYS)).isoformat(), catchup=True)
    # defer_after_seconds 1 against a service taking 1 s per status step: most waits defer, so the
    # tier goes through many deferrals (and the deferral race, were it still possible).
    data["tasks"].update(
        retries=1, retry_delay_seconds=5, poll_seconds=2, defer_after_seconds=1, wait_timeout_minutes=20
    )
    # The tier checks Airflow's mechanics, not model quality: a few days of a small shop are too few
    # for the demo's quality floor, and the asset-triggered training must deploy even when the run
    # train_deploy's own schedule made at unpause already deployed a model on the first day's data.
    data["gate"].update(thresholds={data["gate"]["metric"]: 0.0}, tolerance=1.0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


class PostgresDatabase:
    """A fresh database on the CI PostgreSQL, dropped afterwards."""

    def __init__(self, prefix: str = "pp_stack"):
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.name}"

    def _admin(self, sql: str) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(sql))
        engine.dispose()

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class StackClient:
    """What a test needs of the running stack, through the REST API and the CLI only."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.base_url = stack.base_url
        self.s3_endpoint = stack.s3_url
        self.personalize_endpoint = stack.personalize_url
        (self.config,) = stack.configs()
        self._token = None

    # ---------------------------------------------------------------------------------- REST

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.stack.token()
        return self._token

    def api(self, method: str, path: str, *, expect: int | tuple[int, ...] | None = 200, **kwargs):
        import httpx

        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        response = httpx.request(
            method,
            f"{self.base_url}/api/v2/{path.lstrip('/')}",
            headers=headers,
            timeout=60,
            **kwargs,
        )
        wanted = (expect,) if isinstance(expect, int) else expect
        if wanted and response.status_code not in wanted:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
        return response

    def dag_ids(self) -> dict[str, str]:
        return dict(self.config.dag_ids)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, *, expect=200):
        """POST a manual run (no logical date, as the UI form does); the response."""
        return self.api(
            "POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}, expect=expect
        )

    def dag_runs(self, dag_id: str, **filters) -> list[dict]:
        params = {"limit": 100, "order_by": "run_after", **filters}
        return self.api("GET", f"dags/{dag_id}/dagRuns", params=params).json()["dag_runs"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        response = self.api("GET", path, expect=None)
        return response.json().get("value") if response.status_code == 200 else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        data = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()
        return {
            ti["task_id"] + ("" if ti["map_index"] < 0 else f"[{ti['map_index']}]"): ti
            for ti in data["task_instances"]
        }

    def wait_run(self, dag_id: str, run_id: str, deadline: float = RUN_DEADLINE) -> dict:
        def finished():
            run = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}").json()
            return run if run["state"] in TERMINAL_RUN_STATES else None

        return self.wait_for(finished, deadline, f"{dag_id} run {run_id} to finish")

    def wait_for(self, condition, deadline: float, what: str, interval: float = 2):
        """Poll until condition() returns something truthy; fail naming what never happened."""
        stop = time.monotonic() + deadline
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > stop:
                raise AssertionError(
                    f"gave up waiting {deadline:.0f} s for {what}; logs in {self.stack.logs}"
                )
            time.sleep(interval)

    # ----------------------------------------------------------------------------------- CLI

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`airflow ARGS` against the stack, as `make airflow ARGS=...` runs it."""
        return self.stack.run_airflow(*args, quiet=True, check=check)

    # ------------------------------------------------------------------------- local services

    def s3_client(self):
        return self.stack.s3_client()

    def personalize_client(self):
        return self.stack.personalize_client()

    def s3_keys(self) -> set[str]:
        s3 = self.s3_client()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.config.s3.bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def personalize_jobs(self) -> set[str]:
        """Every dataset import job and solution version the local service holds."""
        personalize = self.personalize_client()
        jobs = {j["datasetImportJobArn"] for j in personalize.list_dataset_import_jobs()["datasetImportJobs"]}
        versions = {v["solutionVersionArn"] for v in personalize.list_solution_versions()["solutionVersions"]}
        return jobs | versions

    # ------------------------------------------------------------------------------- evidence

    def deferrals(self) -> int:
        """How many times tasks deferred: one 'Deferring until' line in a task log per deferral."""
        logs = self.stack.airflow_home / "logs"
        return sum(
            path.read_text(encoding="utf-8", errors="replace").count("Deferring until")
            for path in logs.rglob("*.log")
        )

    def state_mismatch_lines(self) -> list[str]:
        text = self.stack.log_path("scheduler").read_text(encoding="utf-8", errors="replace")
        return [
            line
            for line in text.splitlines()
            if re.search(r"state mismatch|finished with state success, but", line)
        ]


@pytest.fixture(scope="session")
def stack():
    started = time.monotonic()
    # Under artifacts/ (git-ignored), not pytest's tmp: component and task logs stay for a post-mortem.
    root = ARTIFACTS / "stack"
    shutil.rmtree(root, ignore_errors=True)
    database = PostgresDatabase()
    database.create()
    settings = StackSettings(
        api_port=free_port(),
        db_url=database.url,
        config_dir=str(tier_config(root / "config")),
        personalize_delay=1.0,
        shop=SHOP,
    )
    running = Stack(root / "state", settings)
    try:
        running.up()
        client = StackClient(running)
        for dag_id in client.dag_ids().values():
            client.wait_for(
                lambda dag_id=dag_id: client.api("GET", f"dags/{dag_id}", expect=None).status_code == 200,
                300,
                f"the DAG processor to parse {dag_id}",
            )
        yield client
        TIER["deferrals gone through"] = client.deferrals()
        TIER["state-mismatch lines in the scheduler log"] = len(client.state_mismatch_lines())
    finally:
        running.down()
        TIER["wall time (start to stop)"] = f"{time.monotonic() - started:.0f} s"
        TIER["logs"] = f"{running.logs}/ and {running.airflow_home / 'logs'}/"
        database.drop()


class Browser:
    def __init__(self, driver, base_url: str):
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture(scope="session")
def browser(stack):
    """Headless Debian chromium through chromium-driver (no download: both paths are given)."""
    from selenium import webdriver

    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.implicitly_wait(0)
    try:
        yield Browser(driver, stack.base_url)
    finally:
        driver.quit()


def json_dumps(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
