"""Shared test fixtures: an isolated Airflow home, fake AWS credentials and real local servers.

Environment is set at import time, before anything imports Airflow or boto3, because both read it
once. Nothing here talks to AWS: every endpoint is on loopback.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"

_airflow_home = Path(tempfile.mkdtemp(prefix="pp-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_airflow_home)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_airflow_home / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
# Fake credentials: the local servers accept any SigV4 signature; a real key must never be used here.
for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
# moto rejects multipart parts under 5 MiB unless told otherwise; must be set before moto is imported.
os.environ["S3_UPLOAD_PART_MIN_SIZE"] = "1"

# Test tiers, applied here from what a test uses (its fixtures, its folder) so no test file carries
# them: `fast` needs no server, no subprocess server and no DAG run (`make test-fast`); `server`
# talks to a real local server (moto S3, the local Personalize service, PostgreSQL); `dag` runs
# DAGs or Airflow's metadata DB (servers too, often). Each test is in exactly one tier. A new
# fixture that starts a server belongs in SERVER_FIXTURES.
SERVER_FIXTURES = frozenset(
    {
        "s3_endpoint",  # moto's S3 server (and everything built on it: s3_client, s3_bucket, ...)
        "personalize_endpoint",  # the local Personalize service in a thread
        "postgres_app_db",
        "fresh_s3_endpoint",  # moto_server in its own process (tests/test_docker_compose.py)
        "slow",  # a slow local Personalize service (tests/include/local_personalize/test_jobs.py)
        "launch",  # the service's CLI in its own process (tests/include/local_personalize/test_restart.py)
        "throttled",  # a throttling HTTP endpoint (tests/plugins/test_personalize_throttling.py)
        "world",  # picks a server fixture at run time (tests/plugins/conftest.py)
    }
)
DAG_FIXTURES = frozenset({"airflow_db"})
SLOW_FOLDERS = ("stack",)  # tests/stack: the real Airflow stack, its own tier


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres" in params.values() and "app_db" in fixtures:
            item.add_marker(pytest.mark.postgres)
        slow_folder = Path(str(item.fspath)).relative_to(REPO_ROOT / "tests").parts[0] in SLOW_FOLDERS
        if fixtures & DAG_FIXTURES:  # DAG runs use servers too; the tiers stay disjoint
            item.add_marker(pytest.mark.dag)
        elif fixtures & SERVER_FIXTURES or item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.server)
        if not (slow_folder or item.get_closest_marker("server") or item.get_closest_marker("dag")):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def _fast_tests_start_no_server(request, monkeypatch):
    """Keeps the tiers honest: a `fast` test that starts a server in-process fails, naming the cause
    (give its fixture a place in SERVER_FIXTURES)."""
    if request.node.get_closest_marker("fast") is None:
        return

    def refuse(sock, *args):
        raise AssertionError(f"{request.node.nodeid} is marked fast but listens on a socket")

    monkeypatch.setattr(socket.socket, "listen", refuse)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """moto's S3 in server mode on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client, request) -> str:
    """A fresh, empty bucket per test, so tests never see each other's objects."""
    name = "pp-test-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + f"-{os.getpid()}"
    name = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in name)[:63].strip("-")
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata DB (SQLite in the temp AIRFLOW_HOME), migrated once per session."""
    from airflow.utils import db

    db.resetdb(skip_init=False)
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture(scope="session")
def personalize_endpoint(s3_endpoint, tmp_path_factory) -> str:
    """The local Personalize service (control plane, runtime, events on one URL) for the session.

    Also points boto3's per-service endpoint variables at it and at moto's S3, so clients created
    without endpoint_url (and the service's own import / batch jobs) stay on loopback.
    """
    from include.local_personalize.server import start_in_thread

    names = (
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_PERSONALIZE",
        "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME",
        "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS",
    )
    previous = {name: os.environ.get(name) for name in names}
    os.environ["AWS_ENDPOINT_URL_S3"] = s3_endpoint
    server = start_in_thread(tmp_path_factory.mktemp("personalize-state"), transition_delay=0.01)
    for name in names[1:]:
        os.environ[name] = server.url
    yield server.url
    server.stop()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
