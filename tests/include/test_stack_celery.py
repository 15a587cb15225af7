"""include/stack_celery.py: the stack's CeleryExecutor variant (tests/stack/test_h_celery.py runs it)."""

from __future__ import annotations

import os
import subprocess

import pytest

from include.stack import REPO_ROOT, Stack
from include.stack_celery import WORKER_NAME_ENV, worker_hostname
from include.stack_processes import HOST
from include.stack_setup import StackSettings


def celery_stack(tmp_path) -> Stack:
    settings = StackSettings(
        api_port=18080,
        db_url="postgresql+psycopg2://postgres@127.0.0.1:5432/x",
        executor="celery",
        redis_port=16379,
        celery_workers=2,
    )
    return Stack(tmp_path, settings)


def test_celery_stack_adds_a_loopback_redis_and_two_workers_of_distinct_names(tmp_path):
    stack = celery_stack(tmp_path)
    env = stack.env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://{HOST}:16379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + stack.settings.db_url
    assert stack.services[-1] == "redis" and stack.command("redis")[1:5] == [
        "--bind",
        HOST,
        "--port",
        "16379",
    ]
    workers = [name for name in stack.components if name.startswith("celery-worker")]
    assert len(workers) == 2
    hostnames = set()
    for name in workers:
        command = stack.command(name)
        assert (
            command[1:3] == ["celery", "worker"] and "--skip-serve-logs" in command
        )  # no 0.0.0.0 log server
        hostnames.add(command[command.index("--celery-hostname") + 1])
    assert len(hostnames) == 2
    # The local default has neither.
    local = Stack(tmp_path, StackSettings(api_port=18080))
    assert "redis" not in local.services and not any("celery" in n for n in local.components)
    assert local.env()["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_an_unknown_executor_is_refused_naming_the_choices(tmp_path):
    stack = Stack(tmp_path, StackSettings(executor="kubernetes"))
    with pytest.raises(SystemExit, match=r"executor must be one of \['celery', 'local'\]"):
        stack.env()


def test_worker_hostname_is_the_workers_own_name(monkeypatch):
    monkeypatch.setenv(WORKER_NAME_ENV, "celery-worker-2")
    assert worker_hostname() == "celery-worker-2"
    monkeypatch.delenv(WORKER_NAME_ENV)
    assert worker_hostname()


def test_the_worker_command_is_what_airflows_celery_cli_accepts(tmp_path):
    stack = celery_stack(tmp_path)
    command = stack.command("celery-worker-1")
    env = {**stack.env(), "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [command[0], "celery", "worker", "--help"], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in (t for t in command[3:] if t.startswith("--")):
        assert flag in result.stdout, f"airflow celery worker has no {flag}"
