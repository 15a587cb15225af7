"""DAG parse time: the dags/ folder through Airflow's DagBag, in fresh subprocesses (cold imports).

Prints the median and spread over --repeats runs. Airflow's default dagbag_import_timeout is 30 s a
file; this project's files should stay well under a few seconds each (no network, no DB at parse).
The test suite checks the cause (no socket opened at parse time), never the clock.

    .venv/bin/python bench/bench_dag_parse.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
print(json.dumps({{"seconds": time.perf_counter() - started, "dags": len(bag.dags), "errors": len(bag.import_errors)}}))
"""


def parse_once(home: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(dags=str(ROOT / "dags"))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as home:
        runs = [parse_once(Path(home)) for _ in range(args.repeats)]
    seconds = [r["seconds"] for r in runs]
    print(
        f"dags/ parse: {runs[0]['dags']} DAGs, {runs[0]['errors']} import errors; "
        f"median {statistics.median(seconds):.2f} s, min {min(seconds):.2f} s, max {max(seconds):.2f} s "
        f"over {len(seconds)} runs"
    )


if __name__ == "__main__":
    main()
