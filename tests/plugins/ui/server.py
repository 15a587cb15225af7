"""The real `airflow api-server` with this repo's plugin, on loopback, and screenshots of the Personalize view.

Used by tests/plugins/ui/test_api_server.py (the app is mounted and refuses requests
without a login through the real server) and, as a script, to make the README's screenshots:

    PYTHONPATH=$PWD:$PWD/plugins .venv/bin/python -m tests.plugins.ui.server --screenshots docs

The script starts moto's S3 server and the local Personalize service in-process, trains one real
solution version and deploys it to the demo config's first campaign, writes a year of weekly
training runs for each of the demo's three solutions (`--solutions 1`: the first alone),
ingest ledger records and a reconcile table with the pipeline's own writers, then starts the API
server (SQLite, simple auth manager, everyone admin, a temporary AIRFLOW_HOME) and points headless
Chromium at the Airflow UI pages that show the view (nav entry, and the DAG tab).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
VIEWER = "ui-viewer"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: Path, *, all_admins: bool = True, **extra: str) -> dict[str, str]:
    """This process's environment without its Airflow settings, plus a loopback API server's.

    `all_admins` is the README's local setup: the simple auth manager's middleware makes every
    request an admin's (so nothing is refused). Without it, one user `ui-viewer` (role viewer) with
    a random password (`login()` reads it) is the only login.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__") and k != "AIRFLOW_HOME"}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO_ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=str(all_admins),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__HOST="127.0.0.1",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
    )
    if not all_admins:
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({VIEWER: secrets.token_urlsafe(16)}))
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{VIEWER}:viewer"
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
    env.update(extra)
    return env


def login(url: str, env: dict[str, str]) -> str:
    """A JWT for `ui-viewer` from POST /auth/token, as a REST client gets one."""
    password = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())[VIEWER]
    response = httpx.post(f"{url}/auth/token", json={"username": VIEWER, "password": password}, timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def run_airflow(env: dict[str, str], *args: str, timeout: float = 600) -> None:
    subprocess.run([AIRFLOW, *args], env=env, check=True, timeout=timeout, capture_output=True)


@contextlib.contextmanager
def api_server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`airflow api-server` on a free loopback port until the block ends; yields its base URL."""
    port = free_port()
    env = {**env, "AIRFLOW__API__PORT": str(port)}
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers too
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"api-server exited with {process.returncode}; see {log_path}")
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"api-server did not answer within 240 s; see {log_path}")
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def admin_token(url: str) -> str:
    """With SIMPLE_AUTH_MANAGER_ALL_ADMINS, GET /auth/token hands out an admin JWT."""
    response = httpx.get(f"{url}/auth/token", timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def screenshot(url: str, path: Path, *, width: int = 1400, height: int = 1000, dark: bool = False) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("chromium is missing: apt-get install -y chromium chromium-driver")
    flags = [*CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--screenshot={path}"]
    if dark:
        flags.append("--force-dark-mode")
    with tempfile.TemporaryDirectory(prefix="pp-chromium-") as profile:
        subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", url],
            check=True,
            timeout=120,
            capture_output=True,
        )


# ------------------------------------------------------------------------------ demo world


def build_world(work: Path, *, runs: int = 53, every_days: int = 7, solutions: int = 1) -> dict[str, str]:
    """Local S3 and Personalize with a deployed version and `runs` training runs `every_days` apart
    (default: weekly over a year), the last ingest and 14 days of reconcile rows; env for Airflow.
    `solutions` 3: the demo config's three solutions (the first's campaign serves the trained version;
    the second's campaign does not exist; the third is batch only), each with `runs` runs."""
    os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", "1")
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    from datetime import UTC, datetime, timedelta

    import boto3
    from moto.server import ThreadedMotoServer

    from include.local_personalize.server import start_in_thread

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL_S3"] = s3_url
    service = start_in_thread(work / "personalize-state", transition_delay=0.01)
    from tests.plugins.conftest import build_trained, connection_uri

    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = connection_uri(service.url, s3_url)
    trained = build_trained("aws_default", s3_url)
    hook = trained["hook"]
    from personalize.kinds import CAMPAIGN

    from include.pipeline.config import CONFIG_DIR, load_config
    from tests.plugins.ui.world import (
        daily_runs,
        record,
        record_ingest,
        write_config,
        write_demo_config,
        write_reconcile,
    )

    config_dir = work / "config"
    config_dir.mkdir()
    os.environ["PERSONALIZE_PIPELINE_CONFIG_DIR"] = str(config_dir)
    first = trained["solution_arn"].rsplit("/", 1)[-1]
    if solutions == 1:
        config = write_config(config_dir, **{"solution.name": first})
    else:
        config = write_demo_config(
            config_dir,
            bucket=load_config(CONFIG_DIR / "demo_retail.yaml").s3.bucket,
            first=first,
            campaigns={},
        )
    boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket=config.s3.bucket)
    campaign = hook.conn.create_campaign(
        name=config.solutions[0].campaign.name, solutionVersionArn=trained["version_arn"], minProvisionedTPS=1
    )["campaignArn"]
    hook.wait_until_active(CAMPAIGN, campaign, waiter_delay=1)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # The newest version is the one the campaign serves.
    start = today - timedelta(days=(runs - 1) * every_days)
    for run in daily_runs(config, start, runs, every=every_days, last_version=trained["version_arn"]):
        record(config, run)
    for entry in config.solutions[1:]:
        for run in daily_runs(config, start, runs, every=every_days, solution=entry.name):
            record(config, run, solution=entry.name)
    s3 = boto3.client("s3", endpoint_url=s3_url)
    days = [(today - timedelta(days=n)).date().isoformat() for n in range(14, 0, -1)]
    record_ingest(s3, config, days[-1:], read=2310, rejected=5)
    rows = [{"day": day, "app_db": 2300, "imported": 2296, "quarantined": 4, "ok": True} for day in days[:-1]]
    # The newest day lost rows on the way: the reconcile table shows it.
    rows.append({"day": days[-1], "app_db": 2310, "imported": 2150, "quarantined": 5, "ok": False})
    write_reconcile(s3, config, rows)
    return {
        "AIRFLOW_CONN_AWS_DEFAULT": os.environ["AIRFLOW_CONN_AWS_DEFAULT"],
        "PERSONALIZE_PIPELINE_CONFIG_DIR": str(config_dir),
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AIRFLOW_CONN_DEMO_APP_DB": '{"conn_type": "sqlite", "host": "/nonexistent/app.db"}',
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--dark", action="store_true", help="also *_dark.png with the browser in dark mode")
    parser.add_argument(
        "--solutions", type=int, choices=(1, 3), default=3, help="3: the demo's three solutions"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pp-ui-stack-"))
    extra = build_world(work, solutions=args.solutions)
    home = work / "airflow-home"
    home.mkdir()
    env = airflow_env(home, **extra)
    run_airflow(env, "db", "migrate")
    run_airflow(env, "dags", "reserialize")
    args.screenshots.mkdir(parents=True, exist_ok=True)
    with api_server(env, work / "api-server.log") as url:
        print("api-server", url, "log", work / "api-server.log")
        pages = {
            "personalize_overview.png": (f"{url}/plugin/personalize", 760 if args.solutions == 1 else 1000),
            "personalize_pipeline.png": (
                f"{url}/dags/demo_retail_train_deploy/plugin/personalize-dag",
                2700 if args.solutions == 1 else 5200,
            ),
        }
        for name, (page, height) in pages.items():
            screenshot(page, args.screenshots / name, height=height)
            print("wrote", args.screenshots / name)
            if args.dark:
                dark = args.screenshots / name.replace(".png", "_dark.png")
                screenshot(page, dark, height=height, dark=True)
                print("wrote", dark)


if __name__ == "__main__":
    main()
