"""DAG parse time: the dags/ folder through Airflow's DagBag, in fresh subprocesses (cold imports).

Prints the median and spread over --repeats runs. `--configs N` parses a fleet: N copies of the demo
config (renamed, so 3N DAGs) in a temporary config folder (PERSONALIZE_PIPELINE_CONFIG_DIR).
`--baseline` parses dags/personalize_pipelines.py alone, interleaved (bench/repeats.py) with a
one-task DAG file that imports the Amazon provider's operators (what any AWS DAG pays), and prints
the ratio ours/baseline.
Airflow's default dagbag_import_timeout is 30 s a file. The test suite checks the cause (no socket
opened at parse time), never the clock.

    .venv/bin/python bench/bench_dag_parse.py --repeats 5 --baseline
    .venv/bin/python bench/bench_dag_parse.py --repeats 3 --configs 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from repeats import interleaved, ratio_spreads, spread  # noqa: E402 - bench/ is the script's folder

DEMO_CONFIG = ROOT / "include" / "config" / "demo_retail.yaml"
CHILD = """
import json, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
print(json.dumps({{"seconds": time.perf_counter() - started, "dags": len(bag.dags), "errors": len(bag.import_errors)}}))
"""
# What any DAG on AWS pays: Airflow's own imports plus the Amazon provider's operator modules.
BASELINE_DAG = """
from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.sdk import DAG

with DAG("one_task_amazon", schedule=None, start_date=datetime(2024, 1, 1)):
    S3CreateObjectOperator(task_id="put", s3_bucket="b", s3_key="k", data="x")
"""


def write_fleet(folder: Path, count: int) -> None:
    """`count` configs that differ only in their names (dataset group, prefix, solution, campaign)."""
    text = DEMO_CONFIG.read_text()
    for index in range(count):
        suffix = f"{index:03d}"
        renamed = (
            text.replace("name: demo_retail", f"name: fleet_{suffix}")
            .replace("prefix: demo_retail", f"prefix: fleet_{suffix}")
            .replace("demo-retail", f"fleet-{suffix}")
        )
        (folder / f"fleet_{suffix}.yaml").write_text(renamed)


def parse_once(home: Path, dags: Path, config_dir: Path | None) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
    }
    if config_dir is not None:
        env["PERSONALIZE_PIPELINE_CONFIG_DIR"] = str(config_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(dags=str(dags))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--configs", type=int, default=0, help="parse N renamed demo configs (0: include/config)"
    )
    parser.add_argument("--baseline", action="store_true", help="interleave a one-task Amazon-provider DAG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as scratch:
        home, config_dir, baseline_dags = Path(scratch), None, Path(scratch) / "baseline_dags"
        if args.configs:
            config_dir = home / "configs"
            config_dir.mkdir()
            write_fleet(config_dir, args.configs)
        baseline_dags.mkdir()
        (baseline_dags / "one_task_amazon.py").write_text(BASELINE_DAG)

        # Against the baseline: the pipelines' DAG file alone (one file against one file); else dags/.
        ours_path = ROOT / "dags" / "personalize_pipelines.py" if args.baseline else ROOT / "dags"

        def ours() -> dict:
            return parse_once(home, ours_path, config_dir)

        if args.baseline:
            pairs = interleaved(args.repeats, lambda: parse_once(home, baseline_dags, None), ours)
            runs = [o for _, o in pairs]
        else:
            runs = [ours() for _ in range(args.repeats)]
    label = f"{args.configs} configs" if args.configs else "include/config"
    print(
        f"{ours_path.relative_to(ROOT)} parse ({label}): {runs[0]['dags']} DAGs, {runs[0]['errors']} import errors; "
        f"seconds {spread([r['seconds'] for r in runs])}"
    )
    if args.baseline:
        print(f"one-task Amazon-provider DAG: seconds {spread([b['seconds'] for b, _ in pairs])}")
        for name, figure in ratio_spreads(pairs, {"ratio ours/baseline": "seconds"}).items():
            print(f"{name}: {figure}")


if __name__ == "__main__":
    main()
