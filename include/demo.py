"""The README's main command (`make demo`): the whole pipeline on the embedded defaults, offline.

Starts moto's S3 and the local Personalize service on free loopback ports, seeds the SQLite demo
app database, then runs `demo_retail_ingest`, `demo_retail_train_deploy` and `demo_retail_batch_inference` with `dag.test()` in a
throwaway Airflow home, exactly the DAGs a scheduler would run. Everything lives under ./.demo/
(Airflow home, app DB, Personalize state, a copy of the run report); nothing reaches AWS.

    python -m include.demo [--users 1000 --items 500 --days 60 --seed 7] [--replay DAYS]

`--replay DAYS` runs the replay gate (`gate.evaluation: replay`, `holdout_days: DAYS`, tolerance
auto): a first version deploys on all but the last 2 x DAYS days, a challenger trains on all but the
last DAYS days and waits, then the last DAYS days are imported and it is scored against the champion
on them; the report shows both versions' replay metrics with their intervals.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / ".demo"
DEMO_CONFIG = REPO_ROOT / "include" / "config" / "demo_retail.yaml"
DAG_FILE = REPO_ROOT / "dags" / "personalize_pipelines.py"


def prepare_environment(demo_dir: Path) -> None:
    """Airflow and AWS settings, set before anything imports Airflow, boto3 or moto."""
    airflow_home = demo_dir / "airflow"
    shutil.rmtree(airflow_home, ignore_errors=True)
    airflow_home.mkdir(parents=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            # Fake credentials: both servers accept any signature; a real key must never be used here.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            # moto refuses multipart parts under 5 MiB unless told otherwise (read when moto is imported).
            "S3_UPLOAD_PART_MIN_SIZE": "1",
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)


def demo_config(demo_dir: Path, replay_days: int | None = None) -> Path:
    """The shipped demo config, polling every second (dag.test() runs the deferred waits inline)."""
    import yaml

    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["tasks"].update(retries=1, retry_delay_seconds=5, poll_seconds=1)
    if replay_days:
        # The first solution alone, on its own replay gate: three short train_deploy runs show it.
        first = data["solutions"][0]
        data["solutions"] = [first]
        gate = {k: v for k, v in first.get("gate", {}).items() if k not in ("baseline", "min_lift")}
        first["gate"] = {**gate, "evaluation": "replay", "tolerance": "auto", "holdout_days": replay_days}
    folder = demo_dir / "config"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / DEMO_CONFIG.name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--replay", type=int, metavar="DAYS", help="gate on a replay of the last DAYS days (docs/DESIGN.md)"
    )
    args = parser.parse_args(argv)
    if args.replay is not None and not 1 <= args.replay <= (args.days - 7) // 2:
        parser.error(f"--replay must be between 1 and {(args.days - 7) // 2} with --days {args.days}")
    started = time.perf_counter()
    DEMO_DIR.mkdir(exist_ok=True)
    prepare_environment(DEMO_DIR)
    config_path = demo_config(DEMO_DIR, args.replay)

    import logging
    import warnings

    # One line per request from moto's web server would bury the demo's own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from moto.server import ThreadedMotoServer

    from include.local_personalize.server import start_in_thread

    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3_server.start()
    host, port = s3_server.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL_S3"] = s3_url  # the local service's import and batch jobs read S3 here
    state_dir = DEMO_DIR / "personalize-state"
    shutil.rmtree(state_dir, ignore_errors=True)
    personalize = start_in_thread(state_dir)
    try:
        return run_pipeline(args, config_path, s3_url, personalize.url, started)
    finally:
        personalize.stop()
        s3_server.stop()


def run_pipeline(args, config_path: Path, s3_url: str, personalize_url: str, started: float) -> int:
    import boto3

    from include.demo_data import generate
    from include.local_personalize.connection import aws_connection
    from include.pipeline.config import CONFIG_DIR_ENV, load_config

    config = load_config(config_path)
    say(f"local S3 (moto) at {s3_url}; local Personalize at {personalize_url}; state in {DEMO_DIR}/")
    os.environ[f"AIRFLOW_CONN_{config.aws_conn_id.upper()}"] = json.dumps(
        aws_connection(personalize_url, s3_url)
    )
    app_db = DEMO_DIR / "app.db"
    os.environ[f"AIRFLOW_CONN_{config.app_db_conn_id.upper()}"] = json.dumps(
        {"conn_type": "sqlite", "host": str(app_db)}
    )
    os.environ[CONFIG_DIR_ENV] = str(config_path.parent)

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seeded = generate(app_db, users=args.users, items=args.items, days=args.days, seed=args.seed, end=end)
    say(
        f"seeded {app_db.name}: {seeded['users']} users, {seeded['items']} items, {seeded['events']} events "
        f"from {seeded['start'][:10]} to {seeded['end'][:10]}"
    )
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    s3.create_bucket(Bucket=config.s3.bucket)

    from airflow.utils import db

    db.resetdb(skip_init=False)
    from include.pipeline.setup import ensure_import_pool

    ensure_import_pool(config.tasks.import_pool)
    dags = load_dags(config)

    start = datetime.fromisoformat(seeded["start"])
    end = datetime.fromisoformat(seeded["end"])
    # Offline: one ingest of every day, one training. Replay: champion, challenger, then its window.
    holdout = timedelta(days=args.replay or 0)
    cuts = [start, end - 2 * holdout, end - holdout, end] if args.replay else [start, end]
    for begin, stop in itertools.pairwise(cuts):
        interval = {"start": begin.date().isoformat(), "end": stop.date().isoformat()}
        say(f"running {config.dag_ids['ingest']} for [{interval['start']}, {interval['end']}) ...")
        run_dag(dags["ingest"], interval)
        say(f"running {config.dag_ids['train_deploy']} ...")
        run_dag(dags["train_deploy"], {})
    served = [s for s in config.solutions if s.campaign is not None]
    # With --replay the demo ends on the run that scored the challenger: its report (the latest, the
    # one copied out) shows the replay intervals, which a later dry run's report would replace.
    if config.metric_attribution is not None and config.event_tracker and served and not args.replay:
        live_traffic(config.for_solution(served[0].name), personalize_url)
        # A dry run: every solution keeps the version that earned the traffic; the reports show
        # its online metrics next to its offline ones.
        say(f"running {config.dag_ids['train_deploy']} again (dry run): the report shows the online metrics")
        conf = {"dry_run": True, "force_deploy": True, "force_reason": "demo: report the online metrics"}
        run_dag(dags["train_deploy"], conf)
    say(f"running {config.dag_ids['batch_inference']} ...")
    run_dag(dags["batch_inference"], {})

    from include.demo_results import show_results

    show_results(config, s3, personalize_url, DEMO_DIR, say)
    say(f"wall time {time.perf_counter() - started:.0f} s")
    return 0


def live_traffic(config, personalize_url: str, users: int = 200) -> dict:
    """The shop's visitors act on the campaign's recommendations (PutEvents with recommendationId);
    `config` is one solution's view (`config.for_solution`), whose campaign they use."""
    import boto3

    from include.demo_events import send_recommendation_events
    from include.pipeline.extract_sql import most_active

    clients = {
        name: boto3.client(name, endpoint_url=personalize_url, region_name="us-east-1")
        for name in ("personalize", "personalize-runtime", "personalize-events")
    }
    sent = send_recommendation_events(
        clients["personalize"],
        clients["personalize-runtime"],
        clients["personalize-events"],
        campaign_name=config.campaign.name,
        tracker_name=config.event_tracker,
        users=most_active(config, "USER_ID", users),
    )
    say(
        f"live traffic: {sent['click']} clicks and {sent['purchase']} purchases ({sent['revenue']:.2f}) on recommendations"
    )
    return sent


def load_dags(config) -> dict:
    spec = importlib.util.spec_from_file_location("personalize_pipelines_demo", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {
        "ingest": module.build_ingest(config),
        "train_deploy": module.build_train_deploy(config),
        "batch_inference": module.build_batch_inference(config),
    }


def run_dag(dag, conf: dict) -> None:
    began = time.perf_counter()
    dag_run = dag.test(logical_date=None, run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    say(f"  {dag.dag_id}: {dag_run.state} in {time.perf_counter() - began:.0f} s; tasks: {states}")
    if str(dag_run.state) != "success":
        raise SystemExit(f"demo: {dag.dag_id} did not succeed; see the task logs above")


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
