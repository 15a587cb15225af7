"""Helpers for running the pipeline DAGs end to end with dag.test() against local servers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from include.local_personalize.connection import aws_connection as local_aws_connection
from tests.demo_config import one_solution

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = REPO_ROOT / "dags" / "personalize_pipelines.py"
DEMO_CONFIG = REPO_ROOT / "include" / "config" / "demo_retail.yaml"


def aws_connection(personalize_url: str, s3_url: str) -> str:
    """The Airflow AWS connection (as an AIRFLOW_CONN_* JSON value) pointing at the local servers."""
    return json.dumps(local_aws_connection(personalize_url, s3_url))


def app_db_connection(url: str) -> str:
    """An Airflow connection for the app DB: a SQLite file path or a postgresql:// URL."""
    if url.startswith("postgresql://"):
        from urllib.parse import urlparse

        parts = urlparse(url)
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": parts.hostname,
                "port": parts.port or 5432,
                "login": parts.username,
                "password": parts.password,
                "schema": parts.path.lstrip("/"),
            }
        )
    return json.dumps({"conn_type": "sqlite", "host": str(url).removeprefix("sqlite:///")})


def write_config(
    directory: Path, *, name: str, bucket: str, app_conn_id: str, solutions: list | None = None, **overrides
) -> Path:
    """A copy of the demo config's first solution (shorthand form) renamed for a test, with fast
    polling and the given overrides.

    `solutions` replaces the demo's solution(s) by that list (names used as given)."""
    data = one_solution(yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8")))
    group = name.replace("_", "-")
    data.update(name=name, dataset_group=group, app_db_conn_id=app_conn_id, tags=["test"])
    data["s3"] = {"bucket": bucket, "prefix": name}
    data["solution"]["name"] = f"{group}-up"
    data["campaign"]["name"] = f"{group}-home"
    data["filters"][0]["name"] = f"{group}-no-purchased"
    data["batch_inference"]["filter"] = f"{group}-no-purchased"
    data["event_tracker"] = f"{group}-tracker"
    if solutions is not None:
        for key in ("solution", "campaign", "batch_inference", "solutions"):
            data.pop(key, None)
        data["solutions"] = solutions
    data["tasks"] = {
        "retries": 1,
        "retry_delay_seconds": 1,
        "poll_seconds": 1,
        "wait_timeout_minutes": 10,
        "deferrable": True,
    }
    for dotted, value in overrides.items():
        target = data
        *path, last = dotted.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_dags(config_path: Path, monkeypatch) -> dict:
    """Build the three DAGs for one config file the way the DAG file does (same code path).

    The config folder stays set for the test (dag.test() parses the DAG folder again) and is
    restored afterwards, so later tests see the real include/config.
    """
    from include.pipeline.config import CONFIG_DIR_ENV, load_config

    monkeypatch.setenv(CONFIG_DIR_ENV, str(config_path.parent))
    spec = importlib.util.spec_from_file_location("personalize_pipelines_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = load_config(config_path)
    dags = {"config": config, "ingest": module.build_ingest(config)}
    if config.domain is None:  # a domain config has recommenders instead (load_lifecycle_dags)
        dags["train_deploy"] = module.build_train_deploy(config)
        dags["batch_inference"] = module.build_batch_inference(config)
    return dags


def ensure_pool(name: str = "personalize_import_jobs", slots: int = 5) -> None:
    from include.pipeline.setup import ensure_import_pool, ensure_training_pool

    ensure_import_pool(name, slots)
    ensure_training_pool()


def task_states(dag_run) -> dict[str, str]:
    return {
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
        for ti in dag_run.get_task_instances()
    }


LIFECYCLE_DAG_FILE = REPO_ROOT / "dags" / "personalize_lifecycle.py"


def load_lifecycle_dags(config_path: Path, monkeypatch) -> dict:
    """The lifecycle DAGs (erase_users, export) for one config file, built as their DAG file does."""
    from include.pipeline.config import CONFIG_DIR_ENV, load_config

    monkeypatch.setenv(CONFIG_DIR_ENV, str(config_path.parent))
    spec = importlib.util.spec_from_file_location("personalize_lifecycle_under_test", LIFECYCLE_DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = load_config(config_path)
    dags = {"erase_users": module.build_erase_users(config)}
    if config.export is not None:
        dags["export"] = module.build_export(config)
    if config.domain is not None:
        dags["recommenders"] = module.build_recommenders(config)
        if config.recommender_schedule is not None:
            dags["recommenders_stop"] = module.build_recommender_schedule(config, "stop")
            dags["recommenders_start"] = module.build_recommender_schedule(config, "start")
    return dags


def in_group(config, task_id: str, solution: int | str = 0) -> str:
    """The id of a task in a solution's task group of train_deploy (by index or name)."""
    name = config.solutions[solution].name if isinstance(solution, int) else solution
    return f"{name}.{task_id}"
