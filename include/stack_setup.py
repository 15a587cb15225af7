"""What the real stack (include/stack.py) is set up with: its settings, saved as stack.json for a second
shell (ports, per-stack secrets, process ids, the demo shop), and Airflow's pool and connections, which
`python -m include.stack _setup-airflow` writes inside the stack's environment."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


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
