"""DAG parse time: a DAG file through Airflow's DagBag, each parse in a fresh process.

Prints the median and spread over --repeats runs, of wall time and of CPU time. `--configs N` parses a
fleet: N copies of the demo config (renamed, so 3N DAGs) in a temporary config folder
(PERSONALIZE_PIPELINE_CONFIG_DIR). `--baseline` parses dags/personalize_pipelines.py alone,
interleaved (bench/repeats.py) with a one-task DAG file that imports the Amazon provider's operators
(what any AWS DAG pays), and prints the ratios ours/baseline. `--file` compares another DAG file
instead of ours: bench/same_shape_dags.py builds our DAGs' shape in plain Airflow (the floor).

Two process models (`--model`):
- `cold` (default; the figure issue 18 states its targets in): a new interpreter that has imported
  Airflow's DagBag; timed: `DagBag(file)`, i.e. the file's other imports, its configs, its DAGs.
- `processor`: what Airflow 3.3's dag-processor does (airflow/dag_processing/processor.py,
  `DagFileProcessorProcess.start`): the long-lived manager imports the `airflow.*` modules the file
  names (`[dag_processor] parsing_pre_import_modules`, on by default), then forks one child per parse,
  which builds a BundleDagBag and serialises its DAGs (`_serialize_dags`); timed: the child's work.
  What the file reaches only through other packages (our plugins' operators and their boto3) is
  imported again in every child. A folder is parsed a file per child, the times summed.

Bytecode (changed in the second round of issue 18): every parse runs with warm .pyc caches, as a
dag-processor does from its second parse on (Python writes them on the first). The children get
PYTHONPYCACHEPREFIX=--pycache and no PYTHONDONTWRITEBYTECODE, and a discarded warm-up parse of each
side comes first. Before, a shell with PYTHONDONTWRITEBYTECODE=1 (the development machine's sessions set
it) made every child compile the project's ~50 modules from source while the baseline's imports
(site-packages) had their .pyc: the compiler was 30-40 ms CPU, a tenth of "ours", a cost no deployment
pays on a reparse. The prefix keeps the caches out of the repository and the shared virtualenv.

Wall and CPU: the CPU time (`time.process_time` of the timed part) is what the dag-processor spends;
on the shared 2-core machine wall time also swings with other processes' load, CPU time far less.
Airflow's default dagbag_import_timeout is 30 s a file (wall). The test suite checks the causes (no
socket opened at parse time; which modules a parse imports), never the clock.

    .venv/bin/python bench/bench_dag_parse.py --repeats 9 --baseline
    .venv/bin/python bench/bench_dag_parse.py --repeats 9 --baseline --model processor
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
# cold: a fresh interpreter per parse.
CHILD_COLD = """
import json, time
from airflow.dag_processing.dagbag import DagBag
wall, cpu = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder={path!r})
print(json.dumps({{"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "dags": len(bag.dags), "errors": len(bag.import_errors)}}))
"""
# processor: Airflow 3.3's DagFileProcessorProcess, a fork of a manager that pre-imported the file's
# airflow.* modules; the child parses and serialises (processor._parse_file without the IPC).
CHILD_PROCESSOR = """
import json, os, sys, time
from pathlib import Path
import structlog
from airflow.dag_processing import processor
from airflow.dag_processing.dagbag import BundleDagBag
log = structlog.get_logger()
folder = Path({path!r})
files = [folder] if folder.is_file() else sorted(folder.glob("*.py"))
total = {{"seconds": 0.0, "cpu": 0.0, "dags": 0, "errors": 0}}
for file in files:
    processor._pre_import_airflow_modules(str(file), log)  # in the manager, before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        wall, cpu = time.perf_counter(), time.process_time()
        bag = BundleDagBag(dag_folder=str(file), bundle_path=file.parent, bundle_name="bench",
                           load_op_links=False)
        serialized, errors = processor._serialize_dags(bag, log)
        bag.import_errors.update(errors)
        result = {{"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "dags": len(serialized), "errors": len(bag.import_errors)}}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = json.loads(pipe.read())
    os.waitpid(pid, 0)
    total = {{key: total[key] + result[key] for key in total}}
print(json.dumps(total))
"""
CHILDREN = {"cold": CHILD_COLD, "processor": CHILD_PROCESSOR}
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


def parse_once(home: Path, path: Path, config_dir: Path | None, model: str, pycache: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
        "PYTHONPYCACHEPREFIX": str(pycache),  # warm .pyc, as a dag-processor has (docstring)
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if config_dir is not None:
        env["PERSONALIZE_PIPELINE_CONFIG_DIR"] = str(config_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILDREN[model].format(path=str(path))],
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
    parser.add_argument(
        "--file",
        type=Path,
        default=ROOT / "dags" / "personalize_pipelines.py",
        help="with --baseline: the DAG file compared (bench/same_shape_dags.py: the floor)",
    )
    parser.add_argument("--model", choices=sorted(CHILDREN), default="cold", help="process model (docstring)")
    parser.add_argument(
        "--pycache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-dag-parse-pycache",
        help="the children's bytecode cache (PYTHONPYCACHEPREFIX); kept between runs",
    )
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
        ours_path = args.file.resolve() if args.baseline else ROOT / "dags"

        def ours() -> dict:
            return parse_once(home, ours_path, config_dir, args.model, args.pycache)

        def baseline() -> dict:
            return parse_once(home, baseline_dags, None, args.model, args.pycache)

        ours()  # warm-up: the first parse writes the bytecode caches; not measured
        if args.baseline:
            baseline()
            pairs = interleaved(args.repeats, baseline, ours)
            runs = [o for _, o in pairs]
        else:
            runs = [ours() for _ in range(args.repeats)]
    label = f"{args.configs} configs" if args.configs else "include/config"
    print(
        f"{ours_path.relative_to(ROOT)} parse ({label}, model {args.model}): {runs[0]['dags']} DAGs, "
        f"{runs[0]['errors']} import errors; wall seconds {spread([r['seconds'] for r in runs])}; "
        f"CPU seconds {spread([r['cpu'] for r in runs])}"
    )
    if args.baseline:
        print(
            f"one-task Amazon-provider DAG: wall seconds {spread([b['seconds'] for b, _ in pairs])}; "
            f"CPU seconds {spread([b['cpu'] for b, _ in pairs])}"
        )
        ratios = {"ratio ours/baseline, wall": "seconds", "ratio ours/baseline, CPU": "cpu"}
        for name, figure in ratio_spreads(pairs, ratios).items():
            print(f"{name}: {figure}")


if __name__ == "__main__":
    main()
