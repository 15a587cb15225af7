"""include/stack.py: what `make ui`, `make airflow` and the stack tier share (the tier runs it for real)."""

from __future__ import annotations

from airflow.sdk.module_loading import import_string

from include.stack import Stack
from include.stack_processes import HOST
from include.stack_setup import StackSettings


def test_the_stack_environment_keeps_everything_on_loopback_under_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")  # a developer's shell must not leak in
    monkeypatch.setenv("AWS_PROFILE", "real-account")
    stack = Stack(tmp_path, StackSettings(api_port=18080, s3_port=15000, personalize_port=18765))
    env = stack.env()
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__API__HOST"] == HOST == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AWS_PROFILE" not in env and env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:15000"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    # Airflow imports the connect args by name: the name must resolve to the lock wait.
    assert import_string(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"]) == {"timeout": 60}
    for name in ("api-server", "scheduler", "dag-processor", "triggerer", "s3", "personalize"):
        command = stack.command(name)
        if name in ("scheduler", "triggerer"):
            assert "--skip-serve-logs" in command  # no log server on 0.0.0.0
        if name in ("api-server", "s3", "personalize"):
            assert HOST in command


def test_a_second_shell_rebuilds_the_same_environment_from_the_state_file(tmp_path):
    stack = Stack(tmp_path, StackSettings(api_port=18081, db_url="postgresql+psycopg2://u@127.0.0.1:5432/x"))
    stack.settings.jwt_secret = "not-a-real-secret-but-long-enough-for-hmac-sha512-0123456789"
    stack.save()
    assert oct(stack.state_path.stat().st_mode & 0o777) == "0o600"
    again = Stack.load(tmp_path)
    assert again.env()["AIRFLOW__API_AUTH__JWT_SECRET"] == stack.settings.jwt_secret
    assert again.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == stack.settings.db_url
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in again.env()


def fake_airflow(folder, script: str):
    binary = folder / "airflow"
    binary.write_text("#!/bin/sh\n" + script)
    binary.chmod(0o755)
    return folder


def test_make_airflow_reruns_a_command_sqlite_refused_as_locked(tmp_path, monkeypatch, capsys):
    attempts = tmp_path / "attempts"
    script = (
        f"echo x >> {attempts}\n"
        f'if [ $(wc -l < {attempts}) -lt 2 ]; then echo "sqlite3.OperationalError: database is locked" >&2; exit 1; fi\n'
        'echo "$@"\n'
    )
    monkeypatch.setattr("include.stack.BIN", fake_airflow(tmp_path, script))
    assert Stack(tmp_path / "stack").cli(["backfill", "create"]) == 0
    assert attempts.read_text().count("x") == 2
    assert "Running it again (2/5)" in capsys.readouterr().out


def test_make_airflow_does_not_rerun_other_failures(tmp_path, monkeypatch):
    attempts = tmp_path / "attempts"
    script = f'echo x >> {attempts}\necho "DAG not found" >&2\nexit 3\n'
    monkeypatch.setattr("include.stack.BIN", fake_airflow(tmp_path, script))
    assert Stack(tmp_path / "stack").cli(["dags", "unpause", "nope"]) == 3
    assert attempts.read_text().count("x") == 1
