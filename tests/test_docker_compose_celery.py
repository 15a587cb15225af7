"""Static checks of docker-compose.yaml's `celery` profile: Redis and two Celery workers beside the
LocalExecutor default, as Airflow's official compose runs them (no Docker engine runs here)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.test_docker_compose import AIRFLOW_SERVICES, CELERY_WORKERS, COMPOSE_FILE, argv, environment

PROFILE = "celery"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def profiles(service: dict) -> list[str]:
    return list(service.get("profiles", []))


def test_the_profile_holds_redis_and_the_workers_and_nothing_else(services):
    in_profile = {name for name, service in services.items() if PROFILE in profiles(service)}
    assert in_profile == {"redis", *CELERY_WORKERS}
    # The default (no profile) is the LocalExecutor set: nothing of it waits for Redis.
    for name, service in services.items():
        if name not in in_profile:
            assert "redis" not in (service.get("depends_on") or {}), f"{name} needs the celery profile"


def test_executor_defaults_to_local_and_is_switched_by_one_variable(services):
    for name in AIRFLOW_SERVICES:
        raw = services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"]
        assert raw == "${AIRFLOW_EXECUTOR:-LocalExecutor}", name
        assert environment(services[name])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    for name in CELERY_WORKERS:
        assert environment(services[name])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_workers_run_the_celery_providers_worker_command_on_their_own_hosts(services):
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor

    groups = {group.name: group for group in CeleryExecutor.get_cli_commands()}
    worker_commands = {command.name for command in groups["celery"].subcommands}
    hostnames = set()
    for name in CELERY_WORKERS:
        command = argv(services[name])
        assert command[:2] == ["celery", "worker"] and command[1] in worker_commands, command
        hostnames.add(services[name]["hostname"])
        assert "celery@$${HOSTNAME}" in str(services[name]["healthcheck"]["test"])
    assert len(hostnames) == len(CELERY_WORKERS), "workers share a host name: task instances would too"


def test_broker_and_result_backend_point_at_the_compose_services(services):
    for name in (*AIRFLOW_SERVICES, *CELERY_WORKERS):
        env = environment(services[name])
        broker = urlparse(env["AIRFLOW__CELERY__BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379), name
        # Task states live in Airflow's own metadata DB, with the same credentials.
        backend = make_url(env["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
        metadata = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert (backend.host, backend.username, backend.password, backend.database) == (
            metadata.host,
            metadata.username,
            metadata.password,
            metadata.database,
        ), name
    redis = services["redis"]
    assert "6379" in [str(p) for p in redis.get("expose", [])]
    assert "ports" not in redis, "Redis has no password: it must not be published"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_workers_start_after_the_broker_and_the_metadata_db(services):
    for name in CELERY_WORKERS:
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
