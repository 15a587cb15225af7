"""The stack's CeleryExecutor variant (`python -m include.stack up --executor celery`).

A Redis of its own on a free loopback port (no persistence: the queue is only in flight) and
`airflow celery worker` processes, each with its own Celery host name and the same name reported
as the hostname of every task instance it runs, so the UI and the tests see which worker ran what.
Workers skip Airflow's log server (it binds 0.0.0.0); the API server reads task logs from the log
folder every process of this one-machine stack shares.
"""

from __future__ import annotations

import os
import shutil
import socket

EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
# The env var a worker's processes read their host name from (WORKER_HOSTNAME_CALLABLE).
WORKER_NAME_ENV = "PERSONALIZE_STACK_WORKER"
WORKER_HOSTNAME_CALLABLE = "include.stack_celery.worker_hostname"


def worker_hostname() -> str:
    """`[core] hostname_callable` of the stack's workers: the worker's own name, else the FQDN."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def worker_names(count: int) -> tuple[str, ...]:
    return tuple(f"celery-worker-{n}" for n in range(1, count + 1))


def redis_command(port: int, host: str) -> list[str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("stack: --executor celery needs redis-server (Debian: apt-get install redis-server)")
    return [executable, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]


def worker_command(airflow: str, name: str, concurrency: int) -> list[str]:
    return [
        airflow, "celery", "worker", "--celery-hostname", f"{name}@%h",
        "--concurrency", str(concurrency), "--skip-serve-logs",
    ]  # fmt: skip


def executor_env(executor: str, *, redis_port: int, host: str, db_url: str) -> dict[str, str]:
    """What every Airflow process of the stack reads to use `executor` (`local` or `celery`)."""
    if executor not in EXECUTORS:
        raise SystemExit(f"stack: executor must be one of {sorted(EXECUTORS)}, got {executor!r}")
    env = {"AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor]}
    if executor == "celery":
        env["AIRFLOW__CELERY__BROKER_URL"] = f"redis://{host}:{redis_port}/0"
        # Task states in the metadata DB itself (Celery's SQLAlchemy backend).
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + db_url
    return env


def worker_env(name: str) -> dict[str, str]:
    return {WORKER_NAME_ENV: name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": WORKER_HOSTNAME_CALLABLE}
