"""What the real stack (include/stack.py) is set up with: its settings, saved as stack.json for a second
shell (ports, per-stack secrets, process ids, the demo shop), the environment every Airflow process of
it reads, and Airflow's pool and connections, which `python -m include.stack _setup-airflow` writes
inside the stack's environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from include import stack_celery
from include.stack_processes import HOST

# SQLite metadata DB: scheduler, API server, DAG processor, triggerer and CLI commands write at once;
# a writer waits up to a minute for the lock (sqlite3's default is 5 s). Airflow imports it by name.
SQLITE_CONNECT_ARGS = {"timeout": 60}


@dataclass
class Shop:
    """The demo shop seeded into an empty app DB (include/demo_data.py)."""

    users: int = 1000
    items: int = 500
    days: int = 60
    seed: int = 42


@dataclass
class StackSettings:
    """What a second shell needs to reach the same stack; saved as stack.json."""

    api_port: int = 8080
    s3_port: int = 0
    personalize_port: int = 0
    # None: SQLite in the Airflow home. The test tier uses a fresh PostgreSQL database per run.
    db_url: str | None = None
    # None: the shipped configs (include/config/).
    config_dir: str | None = None
    # Seconds between the local Personalize service's status steps.
    personalize_delay: float = 0.2
    parallelism: int = 4
    # "local" (LocalExecutor) or "celery": Redis on redis_port and celery_workers workers
    # (include/stack_celery.py), each running worker_concurrency tasks at once.
    executor: str = "local"
    redis_port: int = 0
    celery_workers: int = 2
    worker_concurrency: int = 2
    shop: Shop = field(default_factory=Shop)
    jwt_secret: str = ""
    api_secret_key: str = ""
    fernet_key: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)


def airflow_env(
    settings: StackSettings, *, repo_root: Path, airflow_home: Path, db_url: str, base_url: str, s3_url: str
) -> dict[str, str]:
    """Everything an Airflow process of the stack reads, on top of a clean copy of os.environ."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AWS_")) and key != "AIRFLOW_HOME"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "PYTHONPATH": f"{repo_root}{os.pathsep}{repo_root / 'plugins'}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo_root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo_root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(settings.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": settings.fernet_key,
            # Local only: every visitor is admin, and GET /auth/token hands out a token. The
            # API server listens on loopback, so only this machine can reach it.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(settings.api_port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__SECRET_KEY": settings.api_secret_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": settings.jwt_secret,
            # Tasks report to the execution API at this URL (not the default port 8080).
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            # Fake credentials: both local servers accept any signature; never a real key here.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            # The local Personalize service's import and batch jobs read and write S3 here.
            "AWS_ENDPOINT_URL_S3": s3_url,
            # moto refuses multipart parts under 5 MiB unless told otherwise.
            "S3_UPLOAD_PART_MIN_SIZE": "1",
        }
    )
    env.update(
        stack_celery.executor_env(settings.executor, redis_port=settings.redis_port, host=HOST, db_url=db_url)
    )
    if db_url.startswith("sqlite"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "include.stack_setup.SQLITE_CONNECT_ARGS"
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "include.stack_setup.SQLITE_CONNECT_ARGS"
    if settings.config_dir:
        from include.pipeline.config import CONFIG_DIR_ENV

        env[CONFIG_DIR_ENV] = settings.config_dir
    env.update(settings.extra_env)
    return env


def new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def setup_airflow(spec: dict) -> None:
    """Runs inside the stack's environment: the import pool and both connections, replaced if present."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    from include.pipeline.config import load_configs
    from include.pipeline.setup import ensure_import_pool

    configs = load_configs()
    for pool in sorted({config.tasks.import_pool for config in configs}):
        ensure_import_pool(pool)
    wanted = {}
    for config in configs:
        wanted[config.aws_conn_id] = Connection(
            conn_id=config.aws_conn_id, conn_type="aws", extra=json.dumps(spec["aws"])
        )
        wanted[config.app_db_conn_id] = Connection(
            conn_id=config.app_db_conn_id, conn_type="sqlite", host=spec["app_db"]
        )
    with create_session() as session:
        session.execute(delete(Connection).where(Connection.conn_id.in_(list(wanted))))
        session.add_all(wanted.values())
