"""Static checks of docker-compose.yaml and the Dockerfile (no Docker engine runs here).

Every service's command must exist (an Airflow CLI command, a module of this repo with the flags it
is given, or an executable of the image), published ports must be the ports the programs listen on,
connection env vars must be the connection ids the pipeline configs use and point at the compose
services, every AIRFLOW__SECTION__KEY must be a real Airflow option, and health checks must cover
what others wait for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
# Profile `celery` (tests/test_docker_compose_celery.py): the broker and the workers that run tasks.
CELERY_WORKERS = ("airflow-worker-1", "airflow-worker-2")
RUN_DAG_CODE = (*AIRFLOW_SERVICES, *CELERY_WORKERS)
ONE_SHOT = ("airflow-init", "app-db-seed", "local-aws-init")
EXPECTED_SERVICES = {
    "postgres",
    "app-db",
    "s3",
    "local-personalize",
    "airflow-cli",
    "redis",
    *RUN_DAG_CODE,
    *ONE_SHOT,
}
CONTAINER_AIRFLOW_HOME = "/opt/airflow"
# The programs' listening ports, as they are configured in the commands (checked below).
LISTEN_PORTS = {"airflow-apiserver": 8080, "s3": 5000, "local-personalize": 8765, "app-db": 5432}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults (as on a machine without a .env); $$ is a literal $."""
    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}", lambda m: m.group(2), value)
    assert not re.search(r"(?<!\$)\$\{", value), f"variable without a default in {value!r}"
    return value.replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [interpolate(str(v)) for v in value]


def argv(service: dict) -> list[str]:
    return as_list(service.get("entrypoint")) + as_list(service.get("command"))


def environment(service: dict) -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in (service.get("environment") or {}).items()}


def test_compose_parses_and_has_the_expected_services(compose, services):
    assert set(services) == EXPECTED_SERVICES
    assert set(compose["volumes"]) >= {"postgres-db-volume", "app-db-volume", "personalize-state"}


def test_dockerfile_builds_on_the_airflow_version_we_pin():
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M).group(
        1
    )
    text = DOCKERFILE.read_text()
    assert re.search(rf"^FROM apache/airflow:{re.escape(pinned)}-python3\.11 AS production$", text, re.M)
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in copied.split():
            assert (REPO_ROOT / name).is_file(), f"Dockerfile copies {name}, which is not in the repo"
    assert "-r /opt/personalize-pipeline/requirements.txt" in text
    assert "-c /opt/personalize-pipeline/constraints.txt" in text
    # The production target holds the runtime only; the local stand-ins come in the `local` target.
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    production, local = re.split(r"^FROM production AS local$", code, flags=re.M)
    assert "requirements-local.txt" not in production and "requirements-local.txt" in local


def test_production_requirements_leave_out_the_local_stand_ins():
    """moto, implicit and scipy serve the local service and demo only; production never installs them."""
    production = (REPO_ROOT / "requirements.txt").read_text()
    local = (REPO_ROOT / "requirements-local.txt").read_text()
    for name in ("moto", "implicit", "scipy", "threadpoolctl", "regex"):
        assert not re.search(rf"^{name}\b", production, re.M), f"{name} is in the production requirements"
        assert re.search(rf"^{name}\b", local, re.M), f"{name} is missing from requirements-local.txt"
    assert "-r requirements.txt" in local
    assert "-r requirements-local.txt" in (REPO_ROOT / "requirements-dev.txt").read_text()


def test_compose_runs_the_image_with_the_local_stand_ins(compose):
    assert compose["x-airflow-common"]["build"]["target"] == "local"


def test_services_built_from_the_dockerfile_share_one_image_tag(services):
    pinned = re.search(r"^FROM apache/airflow:(\S+)-python", DOCKERFILE.read_text(), re.M).group(1)
    built = {name: s for name, s in services.items() if "build" in s}
    assert set(built) >= {*AIRFLOW_SERVICES, "s3", "local-personalize", "app-db-seed"}
    assert {s["image"] for s in built.values()} == {f"personalize-pipeline-airflow:{pinned}"}


def test_airflow_services_run_real_airflow_cli_commands(services):
    from airflow.cli import cli_config

    commands = {c.name for c in cli_config.core_commands}
    for name in AIRFLOW_SERVICES:
        command = argv(services[name])
        assert command and command[0] in commands, f"{name}: {command} is not an airflow command"
    assert argv(services["airflow-apiserver"]) == ["api-server"]
    assert argv(services["airflow-dag-processor"]) == ["dag-processor"]


def run_help(arguments: list[str]) -> str:
    result = subprocess.run(
        arguments,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ".:plugins"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", ["app-db-seed", "local-personalize"])
def test_python_modules_exist_and_accept_their_flags(services, name):
    command = argv(services[name])
    assert command[:2] == ["python", "-m"], command
    module, rest = command[2], command[3:]
    assert (REPO_ROOT / Path(*module.split("."))).with_suffix(".py").is_file() or (
        REPO_ROOT / Path(*module.split(".")) / "__main__.py"
    ).is_file(), f"{name}: module {module} is not in the repo"
    subcommands = []
    for token in rest:
        if token.startswith("-"):
            break
        subcommands.append(token)
    help_text = run_help([sys.executable, "-m", module, *subcommands, "--help"])
    for flag in (t for t in rest if t.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), (
            f"{name}: {module} has no {flag}"
        )


def test_seed_command_parses_with_the_generators_own_parser(services):
    from include.demo_data import build_parser

    args = build_parser().parse_args(argv(services["app-db-seed"])[3:])
    assert (args.users, args.items, args.days, args.seed, args.if_empty) == (1000, 500, 60, 42, True)


def test_moto_server_is_installed_and_takes_host_and_port(services):
    command = argv(services["s3"])
    assert command == ["moto_server", "-H", "0.0.0.0", "-p", str(LISTEN_PORTS["s3"])]
    executable = VENV_BIN / "moto_server"
    assert executable.is_file(), "moto_server is not installed (moto[server] in requirements.txt)"
    help_text = run_help([str(executable), "--help"])
    assert "-H HOST" in help_text and "-p PORT" in help_text


def test_every_published_port_binds_to_loopback_by_default(services):
    # No login on Airflow, no signature check on the local Personalize, a known app DB password:
    # nothing may be reachable from the network unless BIND_ADDRESS says so.
    published = {
        name: [interpolate(str(p)) for p in service.get("ports", [])] for name, service in services.items()
    }
    assert any(published.values())
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:") and port.count(":") == 2, f"{name} publishes {port!r}"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (
                f"{name}: {port!r} ignores BIND_ADDRESS"
            )


def test_programs_listen_on_the_ports_compose_publishes(services):
    from airflow.configuration import conf

    personalize = argv(services["local-personalize"])
    assert personalize[personalize.index("--port") + 1] == str(LISTEN_PORTS["local-personalize"])
    assert personalize[personalize.index("--host") + 1] == "0.0.0.0"
    assert conf.getint("api", "port") == LISTEN_PORTS["airflow-apiserver"]
    for name, port in LISTEN_PORTS.items():
        published = [interpolate(p) for p in services[name].get("ports", [])]
        assert any(p.rsplit(":", 1)[-1] == str(port) for p in published), f"{name} does not publish {port}"
    # The scheduler health check talks to the scheduler's health server.
    assert str(conf.getint("scheduler", "scheduler_health_check_server_port")) in str(
        services["airflow-scheduler"]["healthcheck"]["test"]
    )


def test_every_airflow_config_env_var_is_a_real_option(services):
    from airflow.configuration import conf

    description = conf.configuration_description
    seen = 0
    for name, service in services.items():
        for key in environment(service):
            match = re.fullmatch(r"AIRFLOW__([A-Z_]+?)__([A-Z0-9_]+)", key)
            if match:
                section, option = match.group(1).lower(), match.group(2).lower()
                assert option in description.get(section, {}).get("options", {}), (
                    f"{name}: {key} is no option"
                )
                seen += 1
    assert seen > 20


def connection_ids_used_by_configs() -> set[str]:
    from include.pipeline.config import load_configs

    configs = load_configs()
    assert configs, "no pipeline config in include/config"
    return {conn for c in configs for conn in (c.aws_conn_id, c.app_db_conn_id)}


def test_connections_the_configs_use_are_preset_for_every_airflow_component(services):
    wanted = {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in connection_ids_used_by_configs()}
    for name in (*RUN_DAG_CODE, "airflow-cli"):
        present = {k for k in environment(services[name]) if k.startswith("AIRFLOW_CONN_")}
        assert present == wanted, f"{name}: {sorted(present)} != {sorted(wanted)}"


def host_and_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname, parsed.port


def test_aws_connection_points_every_service_at_the_local_servers(services):
    from airflow.models.connection import Connection
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    env = environment(services["airflow-scheduler"])
    raw = env["AIRFLOW_CONN_AWS_DEFAULT"]
    json.loads(raw)  # a JSON error here would otherwise surface as an Airflow URI parse error
    wrapper = AwsConnectionWrapper(conn=Connection.from_json(raw, conn_id="aws_default"))
    assert wrapper.conn_type == "aws" and wrapper.region_name == "us-east-1"
    expected = {
        "s3": ("s3", LISTEN_PORTS["s3"]),
        "personalize": ("local-personalize", LISTEN_PORTS["local-personalize"]),
        "personalize-runtime": ("local-personalize", LISTEN_PORTS["local-personalize"]),
        "personalize-events": ("local-personalize", LISTEN_PORTS["local-personalize"]),
    }
    for service_name, target in expected.items():
        endpoint = wrapper.get_service_endpoint_url(service_name)
        assert endpoint and host_and_port(endpoint) == target, f"{service_name}: {endpoint}"
        assert target[0] in services
    # The local service reads and writes S3 itself (import and batch jobs): same moto server.
    for name in ("local-personalize", "local-aws-init"):
        assert host_and_port(environment(services[name])["AWS_ENDPOINT_URL_S3"]) == expected["s3"]


def test_app_db_connection_and_seed_target_the_app_db_service(services):
    from airflow.models.connection import Connection

    app_db = environment(services["app-db"])
    conn = Connection.from_json(environment(services["airflow-scheduler"])["AIRFLOW_CONN_DEMO_APP_DB"])
    assert conn.conn_type == "postgres"
    assert (conn.host, conn.port) == ("app-db", LISTEN_PORTS["app-db"])
    assert (conn.login, conn.password, conn.schema) == (
        app_db["POSTGRES_USER"],
        app_db["POSTGRES_PASSWORD"],
        app_db["POSTGRES_DB"],
    )
    seed = argv(services["app-db-seed"])
    url = urlparse(seed[seed.index("--db") + 1])
    assert (url.scheme, url.hostname, url.port, url.username, url.password, url.path) == (
        "postgresql",
        conn.host,
        conn.port,
        conn.login,
        conn.password,
        f"/{conn.schema}",
    )


def test_health_checks_cover_every_long_running_service_and_every_wait(services):
    for name, service in services.items():
        one_shot = name in ONE_SHOT or "debug" in service.get("profiles", [])
        if not one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"
            else:
                assert rule["condition"] == "service_completed_successfully"
                assert dependency in ONE_SHOT, f"{name} waits for {dependency} to exit, but it never does"
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no" and "healthcheck" not in services[name]


def test_dependencies_have_no_cycle(services):
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert state.get(name) != "visiting", f"dependency cycle: {' -> '.join((*path, name))}"
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency, (*path, name))
        state[name] = "done"

    for name in services:
        visit(name, ())


def test_mounts_exist_and_make_the_project_importable(compose, services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, _target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists() or source == "./logs", f"{name}: {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
    for name in (*RUN_DAG_CODE, "app-db-seed", "local-personalize", "local-aws-init"):
        service = services[name]
        mounts = dict(v.split(":")[:2] for v in service["volumes"])
        python_path = environment(service)["PYTHONPATH"].split(":")
        include_target = mounts["./include"]
        assert include_target == f"{CONTAINER_AIRFLOW_HOME}/include"
        assert str(Path(include_target).parent) in python_path, f"{name}: include is not importable"
        if name != "app-db-seed":  # everything but the demo data generator reads Personalize's contract
            contract = (
                mounts.get("./plugins/personalize_contract") or f"{mounts['./plugins']}/personalize_contract"
            )
            assert str(Path(contract).parent) in python_path, (
                f"{name}: personalize_contract is not importable"
            )
        if name in RUN_DAG_CODE:
            assert mounts["./dags"] == f"{CONTAINER_AIRFLOW_HOME}/dags"  # the image's default dags_folder
            assert mounts["./plugins"] in python_path, (
                f"{name}: plugins/ (the provider layer) not on PYTHONPATH"
            )


def test_state_dir_of_the_local_service_is_a_persistent_volume(services):
    command = argv(services["local-personalize"])
    state_dir = command[command.index("--state-dir") + 1]
    mounts = dict(v.split(":")[:2] for v in services["local-personalize"]["volumes"])
    assert mounts.get("personalize-state") == state_dir
    assert f"mkdir -p {state_dir}" in DOCKERFILE.read_text()


@pytest.fixture
def fresh_s3_endpoint():
    """moto_server in a process of its own: in-process moto servers share one state, and the bucket
    init must meet an empty S3, as on a first start."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_bucket_init_creates_every_configured_bucket(services, fresh_s3_endpoint):
    import boto3

    from include.pipeline.config import load_configs

    command = argv(services["local-aws-init"])
    assert command[:2] == ["python", "-c"]
    env = {**os.environ, **environment(services["local-aws-init"])}
    env.update(AWS_ENDPOINT_URL_S3=fresh_s3_endpoint, PYTHONPATH=f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}")
    for attempt in range(2):  # twice: a restart must not fail on buckets that exist
        result = subprocess.run(
            [sys.executable, "-c", command[2]],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert ("created s3://" in result.stdout) == (attempt == 0)
    s3 = boto3.client("s3", endpoint_url=fresh_s3_endpoint, region_name="us-east-1")
    assert {c.s3.bucket for c in load_configs()} == {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.mark.parametrize("name", ["postgres", "app-db"])
def test_database_health_checks_ask_for_the_databases_own_user(services, name):
    env = environment(services[name])
    test = services[name]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert test[test.index("-U") + 1] == env["POSTGRES_USER"]
    if "-d" in test:
        assert test[test.index("-d") + 1] == env["POSTGRES_DB"]


def test_airflow_init_creates_the_import_pool_every_config_uses(services, airflow_db):
    from airflow.models.pool import Pool

    from include.pipeline.config import load_configs

    script = services["airflow-init"]["command"][1]
    snippets = re.findall(r"^/entrypoint python -c '(.+)'$", script, re.M)
    assert len(snippets) == 1, script
    pools = {c.tasks.import_pool for c in load_configs()}
    for name in pools:  # other tests may have created it already; this one must create it
        if Pool.get_pool(name) is not None:
            Pool.delete_pool(name)
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}"}
    result = subprocess.run(
        [sys.executable, "-c", snippets[0]],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in pools:
        pool = Pool.get_pool(name)
        assert pool is not None and pool.slots == 5 and pool.include_deferred
