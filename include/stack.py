"""The whole pipeline under real Airflow on this machine, loopback only: `make ui`, `make airflow`, tests.

One folder (default ./.stack/, git-ignored) holds everything: the Airflow home (metadata DB when it
is SQLite, task logs), each component's log under logs/, the app DB, the local Personalize state,
and stack.json (ports, per-stack secrets, process ids) from which a second shell rebuilds the same
environment. Processes, all bound to 127.0.0.1:

    s3            moto's S3 server (in memory: empty again after every start)
    personalize   python -m include.local_personalize serve
    api-server    airflow api-server --host 127.0.0.1 (UI, REST API, execution API for tasks)
    scheduler     airflow scheduler --skip-serve-logs (LocalExecutor; the UI reads task logs from disk)
    dag-processor airflow dag-processor
    triggerer     airflow triggerer --skip-serve-logs

`airflow standalone` would also start log servers on 0.0.0.0, hence the components one by one.

    python -m include.stack up [--port 8080]      start (or report) the stack, return when the UI answers
    python -m include.stack down                  stop every process the stack started
    python -m include.stack airflow ARGS...       any Airflow CLI command against the stack
    python -m include.stack env                   the stack's environment as shell exports
    python -m include.stack data-days             first and last day of the app DB's events (backfill bounds)

The real-stack test tier (tests/stack) drives the same class with a PostgreSQL metadata DB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

from include import stack_celery
from include.stack_processes import HOST, alive, free_port, port_open
from include.stack_setup import Shop, StackSettings, airflow_env, new_fernet_key, setup_airflow

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO_ROOT / ".stack"
BIN = Path(sys.executable).parent


SERVICES = ("s3", "personalize")
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STATE_FILE = "stack.json"
# SQLite metadata DB (its lock wait: stack_setup.SQLITE_CONNECT_ARGS): a transaction that read
# before another process wrote cannot write at all (WAL refuses to upgrade a stale snapshot:
# "database is locked" at once); SQLite rolled it back whole, so `make airflow` runs the command again.
SQLITE_LOCKED = "database is locked"
CLI_ATTEMPTS = 5


class Stack:
    def __init__(self, root: Path = DEFAULT_ROOT, settings: StackSettings | None = None):
        self.root = Path(root).resolve()
        self.settings = settings or StackSettings()
        self.processes: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------------ state and paths

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def app_db(self) -> Path:
        return self.root / "app.db"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.settings.api_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{HOST}:{self.settings.s3_port}"

    @property
    def personalize_url(self) -> str:
        return f"http://{HOST}:{self.settings.personalize_port}"

    @property
    def db_url(self) -> str:
        return self.settings.db_url or f"sqlite:///{self.airflow_home / 'airflow.db'}"

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(asdict(self.settings), indent=2), encoding="utf-8")
        self.state_path.chmod(0o600)  # holds the stack's JWT and Fernet secrets

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Stack:
        path = Path(root) / STATE_FILE
        if not path.exists():
            raise SystemExit(f"stack: no stack in {root} (start one with `make ui`)")
        data = json.loads(path.read_text(encoding="utf-8"))
        data["shop"] = Shop(**data.get("shop", {}))
        return cls(root, StackSettings(**data))

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # ----------------------------------------------------------------------------- environment

    def env(self) -> dict[str, str]:
        """Everything an Airflow process of this stack reads, on top of a clean copy of os.environ."""
        return airflow_env(
            self.settings,
            repo_root=REPO_ROOT,
            airflow_home=self.airflow_home,
            db_url=self.db_url,
            base_url=self.base_url,
            s3_url=self.s3_url,
        )

    @property
    def services(self) -> tuple[str, ...]:
        """The non-Airflow processes: local S3 and Personalize, and Redis for the CeleryExecutor."""
        return SERVICES + (("redis",) if self.settings.executor == "celery" else ())

    @property
    def components(self) -> tuple[str, ...]:
        """Airflow's processes: the four components, and the Celery workers for the CeleryExecutor."""
        if self.settings.executor != "celery":
            return AIRFLOW_COMPONENTS
        return AIRFLOW_COMPONENTS + stack_celery.worker_names(self.settings.celery_workers)

    def command(self, name: str) -> list[str]:
        airflow = str(BIN / "airflow")
        if name == "redis":
            return stack_celery.redis_command(self.settings.redis_port, HOST)
        if name in stack_celery.worker_names(self.settings.celery_workers):
            return stack_celery.worker_command(airflow, name, self.settings.worker_concurrency)
        return {
            "s3": [str(BIN / "moto_server"), "-H", HOST, "-p", str(self.settings.s3_port)],
            "personalize": [
                sys.executable, "-m", "include.local_personalize", "serve", "--host", HOST,
                "--port", str(self.settings.personalize_port), "--state-dir", str(self.root / "personalize"),
                "--transition-delay", str(self.settings.personalize_delay),
            ],
            "api-server": [airflow, "api-server", "--host", HOST, "--port", str(self.settings.api_port), "--workers", "1"],
            "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        }[name]  # fmt: skip

    # ------------------------------------------------------------------------------- processes

    def start(self, name: str) -> int:
        """Start one process in its own session (so a group signal reaches its children), log appended."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            env = self.env()
            if name in stack_celery.worker_names(self.settings.celery_workers):
                env.update(stack_celery.worker_env(name))
            process = subprocess.Popen(
                self.command(name),
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        self.settings.pids[name] = process.pid
        self.save()
        return process.pid

    def signal(self, name: str, sig: int = signal.SIGTERM) -> None:
        pid = self.settings.pids.get(name)
        if pid and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def stop(self, name: str, timeout: float = 30) -> None:
        pid = self.settings.pids.get(name)
        if not pid:
            return
        self.signal(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            self.signal(name, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # children left behind by the group leader
        self.settings.pids.pop(name, None)
        self.processes.pop(name, None)
        self.save()

    def kill(self, name: str) -> None:
        """kill -9 the process group, as a crash would (the test tier does this to the triggerer)."""
        pid = self.settings.pids.get(name)
        self.signal(name, signal.SIGKILL)
        process = self.processes.pop(name, None)
        if process is not None:
            process.wait(timeout=30)
        while pid and alive(pid):
            time.sleep(0.1)

    def running(self) -> dict[str, int]:
        return {name: pid for name, pid in self.settings.pids.items() if alive(pid)}

    def down(self) -> None:
        for name in reversed(self.services + self.components):
            self.stop(name)

    # ------------------------------------------------------------------------------ start up

    def up(self, *, wait_seconds: float = 300) -> None:
        """Start everything; return when the API server answers and lists every DAG."""
        if self.running():
            raise SystemExit(
                f"stack: already running in {self.root}: {self.running()} (`make ui-stop` first)"
            )
        settings = self.settings
        settings.pids = {}
        settings.s3_port = free_port()
        settings.personalize_port = free_port()
        settings.redis_port = free_port() if settings.executor == "celery" else 0
        settings.jwt_secret = settings.jwt_secret or secrets.token_urlsafe(48)
        settings.api_secret_key = settings.api_secret_key or secrets.token_urlsafe(32)
        settings.fernet_key = settings.fernet_key or new_fernet_key()
        if port_open(settings.api_port):
            raise SystemExit(f"stack: port {settings.api_port} is taken; choose another (make ui PORT=...)")
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.save()
        say(f"state in {self.root}/ (logs in {self.logs}/)")
        # moto keeps S3 in memory: a restarted stack starts from an empty bucket, so Personalize
        # starts empty too (its resources would point at objects that are gone).
        import shutil

        shutil.rmtree(self.root / "personalize", ignore_errors=True)
        for name in self.services:
            self.start(name)
        self.wait_for(
            lambda: (
                port_open(settings.s3_port)
                and port_open(settings.personalize_port)
                and (not settings.redis_port or port_open(settings.redis_port))
            ),
            60,
            "local services",
        )
        self.seed_app_db()
        self.run_airflow("db", "migrate", quiet=True)
        self.run_python_setup()
        self.create_buckets()
        for name in self.components:
            self.start(name)
        self.wait_for(self.api_healthy, wait_seconds, "the API server")
        self.wait_for(self.dags_parsed, wait_seconds, "the DAG processor to parse the DAGs")
        say(f"local S3 at {self.s3_url}, local Personalize at {self.personalize_url}")
        say(f"Airflow UI and REST API at {self.base_url} (loopback only)")

    def wait_for(self, ready, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SystemExit(
                        f"stack: {name} exited with {process.returncode}; see {self.log_path(name)}"
                    )
            time.sleep(0.5)
        raise SystemExit(f"stack: {what} not ready after {seconds:.0f} s; see {self.logs}/")

    def api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def dags_parsed(self) -> bool:
        """Every DAG of every config is in the API (so the UI lists it and REST calls find it)."""
        expected = {dag_id for config in self.configs() for dag_id in config.dag_ids.values()}
        request = urllib.request.Request(
            f"{self.base_url}/api/v2/dags?limit=1000", headers={"Authorization": f"Bearer {self.token()}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                listed = {dag["dag_id"] for dag in json.loads(response.read())["dags"]}
        except (urllib.error.URLError, OSError):
            return False
        return expected <= listed

    def seed_app_db(self) -> None:
        from include.demo_data import generate

        shop = self.settings.shop
        summary = generate(
            self.app_db, users=shop.users, items=shop.items, days=shop.days, seed=shop.seed, if_empty=True
        )
        if summary["skipped"]:
            say(f"app DB {self.app_db} already has {summary['events']} events; kept")
        else:
            say(
                f"app DB {self.app_db}: {summary['users']} users, {summary['items']} items, {summary['events']} events"
            )

    def run_airflow(self, *args: str, quiet: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env(), cwd=REPO_ROOT, capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise SystemExit(f"stack: airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        if not quiet:
            print(result.stdout, end="")
        return result

    def cli(self, args: list[str]) -> int:
        """Run `airflow ARGS` for a person (output streamed); again when SQLite refused a stale write."""
        for attempt in range(1, CLI_ATTEMPTS + 1):
            process = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env(),
                cwd=REPO_ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            locked = False
            for line in process.stderr:
                sys.stderr.write(line)
                locked = locked or SQLITE_LOCKED in line
            if process.wait() == 0 or not (locked and self.db_url.startswith("sqlite")):
                return process.returncode
            say(
                f"SQLite was busy ({SQLITE_LOCKED}); nothing was written. Running it again ({attempt + 1}/{CLI_ATTEMPTS})"
            )
            time.sleep(attempt)
        return process.returncode

    def run_python_setup(self) -> None:
        """Pool and connections in the metadata DB, in one process with the stack's environment."""
        spec = {"aws": self.aws_connection_extra(), "app_db": str(self.app_db)}
        subprocess.run(
            [sys.executable, "-m", "include.stack", "_setup-airflow", json.dumps(spec)],
            env=self.env(),
            cwd=REPO_ROOT,
            check=True,
        )

    def aws_connection_extra(self) -> dict:
        from include.local_personalize.connection import aws_connection_extra

        return aws_connection_extra(self.personalize_url, self.s3_url)

    def configs(self):
        from include.pipeline.config import load_configs

        return load_configs(self.settings.config_dir)

    def create_buckets(self) -> None:
        s3 = self.s3_client()
        for bucket in sorted({config.s3.bucket for config in self.configs()}):
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)

    def s3_client(self):
        return self._local_client("s3", self.s3_url)

    def personalize_client(self):
        return self._local_client("personalize", self.personalize_url)

    @staticmethod
    def _local_client(service: str, endpoint_url: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    # -------------------------------------------------------------------------------- REST API

    def token(self) -> str:
        """An admin JWT: the simple auth manager with all-admins hands one out without credentials."""
        with urllib.request.urlopen(f"{self.base_url}/auth/token", timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def data_days(self) -> tuple[str, str]:
        """The first and the last day with events in the app DB: the bounds of a full backfill."""
        with contextlib.closing(sqlite3.connect(self.app_db)) as connection:
            first, last = connection.execute(
                "SELECT MIN(occurred_at), MAX(occurred_at) FROM events"
            ).fetchone()
        if first is None:
            raise SystemExit(f"stack: {self.app_db} has no events")
        return str(first)[:10], str(last)[:10]


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["airflow"]:  # everything after is Airflow's, flags included
        stack = Stack.load(Path(os.environ.get("STACK_DIR", DEFAULT_ROOT)))
        return stack.cli(argv[1:])
    if argv[:1] == ["_setup-airflow"]:
        setup_airflow(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m include.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("STACK_DIR", DEFAULT_ROOT)))
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the stack; return when the UI answers")
    up.add_argument("--port", type=int, default=8080, help="API server / UI port (default 8080)")
    up.add_argument(
        "--db-url",
        default=os.environ.get("STACK_DB_URL") or None,
        help="metadata DB, e.g. postgresql+psycopg2://USER@127.0.0.1:5432/DB (default: SQLite in the stack folder)",
    )
    up.add_argument(
        "--executor",
        choices=sorted(stack_celery.EXECUTORS),
        default="local",
        help="local: LocalExecutor (default); celery: Redis and two Celery workers on loopback",
    )
    commands.add_parser("down", help="stop every process of the stack")
    commands.add_parser("env", help="print the stack's environment as shell exports")
    commands.add_parser("data-days", help="first and last day of the app DB's events")
    commands.add_parser("status", help="which processes run")
    args = parser.parse_args(argv)
    if args.command == "up":
        stack = Stack.load(args.dir) if (args.dir / STATE_FILE).exists() else Stack(args.dir)
        stack.settings.api_port = args.port
        stack.settings.db_url = args.db_url
        stack.settings.executor = args.executor
        try:
            stack.up()
        except BaseException:
            stack.down()
            raise
        print(
            f"\nOpen {stack.base_url} (the DAGs are paused). Token: curl -s {stack.base_url}/auth/token\n"
            'CLI: make airflow ARGS="dags list"    Stop: make ui-stop'
        )
    elif args.command == "down":
        if (args.dir / STATE_FILE).exists():
            stack = Stack.load(args.dir)
            stack.down()
            say("stopped")
    elif args.command == "env":
        import shlex

        for key, value in sorted(Stack.load(args.dir).env().items()):
            if key.startswith(("AIRFLOW", "AWS_", "PYTHONPATH", "PERSONALIZE_", "S3_")):
                print(f"export {key}={shlex.quote(value)}")
    elif args.command == "data-days":
        print(*Stack.load(args.dir).data_days())
    elif args.command == "status":
        stack = Stack.load(args.dir)
        for name in stack.services + stack.components:
            pid = stack.settings.pids.get(name)
            print(f"{name:14} {'running, pid ' + str(pid) if pid and alive(pid) else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
