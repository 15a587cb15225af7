"""Every DAG file imports cleanly, quickly, and carries the hygiene every DAG here must have."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dags_folder_has_dag_files():
    assert DAG_FILES, f"no DAG files in {DAGS_FOLDER}"


def test_every_dag_file_imports_without_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert dag_bag.dags, "no DAGs were found"


def test_parsing_opens_no_network_connection(monkeypatch):
    """What keeps parsing fast, checked without a clock (a timing assert fails on a loaded machine;
    bench/bench_dag_parse.py prints the parse time): no socket is opened while the DAG files load."""
    import socket

    from airflow.dag_processing.dagbag import DagBag

    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError(f"no network at DAG parse time: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    # libpq opens its own sockets: the PostgreSQL drivers are refused by name.
    for driver in ("psycopg.connect", "psycopg2.connect"):
        monkeypatch.setattr(driver, lambda *args, **kwargs: refuse(None, kwargs or args))
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert attempts == []
    assert bag.import_errors == {} and bag.dags


def test_every_dag_has_tags_owner_retries_and_docs(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


# --- the Personalize pipelines: every config yields its DAGs with the scheduling rules they rely on


def _pipeline_dags(dag_bag):
    from include.pipeline.config import load_configs

    for config in load_configs():
        yield config, {kind: dag_bag.dags[dag_id] for kind, dag_id in config.dag_ids.items()}


def test_every_config_yields_its_three_dags(dag_bag):
    found = list(_pipeline_dags(dag_bag))
    assert found, "no pipeline configs produced DAGs"


def test_ingest_owns_real_intervals_one_run_at_a_time_catching_up_only_when_configured(dag_bag):
    from airflow.sdk import CronDataIntervalTimetable

    for config, dags in _pipeline_dags(dag_bag):
        ingest = dags["ingest"]
        # "@daily" would give a zero-width data interval on Airflow 3: each run must own [start, end).
        assert isinstance(ingest.timetable, CronDataIntervalTimetable)
        assert ingest.catchup is config.schedule.catchup and ingest.max_active_runs == 1
        # A first unpause of a shipped config makes one run, not one per day since start_date.
        assert not config.schedule.catchup, f"{config.name}: shipped with catch-up on"
        imports = ingest.get_task("import_datasets")
        assert imports.partial_kwargs.get("pool", getattr(imports, "pool", None)) == config.tasks.import_pool
        assert {"start", "end", "full_import"} <= set(ingest.params)
        assert list(ingest.get_task("publish_interactions").outlets)


def test_train_deploy_runs_on_the_asset_or_its_schedule_and_has_a_described_form(dag_bag):
    from airflow.sdk import AssetOrTimeSchedule

    for config, dags in _pipeline_dags(dag_bag):
        train = dags["train_deploy"]
        assert isinstance(train.timetable, AssetOrTimeSchedule)
        assert train.max_active_runs == 1
        form = train.params
        for name in (
            "training_mode",
            "force_deploy",
            "force_reason",
            "gate_metric",
            "gate_threshold",
            "dry_run",
        ):
            assert form.get_param(name).description, f"param {name} has no description"
        assert form.get_param("training_mode").schema["enum"] == ["FULL", "UPDATE"]
        assert {"ensure_resources", "sync_tags", "plan_training", "finish"} <= set(train.task_ids)
        for solution in config.solutions:
            served = {"deploy_campaign", "smoke_test"} if solution.campaign else {"accept_batch"}
            for task_id in {"has_new_data", "train", "evaluate", "keep_champion", "record"} | served:
                assert f"{solution.name}.{task_id}" in train.task_ids


def test_waits_have_timeouts_and_every_task_reports_failures(dag_bag, caplog):
    from types import SimpleNamespace

    for _, dags in _pipeline_dags(dag_bag):
        for dag in dags.values():
            for task in dag.tasks:
                callbacks = task.on_failure_callback
                callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
                # The DAG file's on_failure_summary imports the task logic only when a task fails.
                (summary,) = [c for c in callbacks if getattr(c, "__name__", "") == "on_failure_summary"]
                caplog.clear()
                ti = SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, run_id="r", try_number=1)
                with caplog.at_level("ERROR"):
                    summary({"ti": ti, "exception": ValueError("boom")})
                assert f"PIPELINE FAILURE dag={dag.dag_id} task={task.task_id}" in caplog.text
                assert task.retry_exponential_backoff, f"{dag.dag_id}.{task.task_id} retries without backoff"
                if task.task_type.startswith("Personalize"):
                    timeout = (
                        task.partial_kwargs.get("execution_timeout")
                        if hasattr(task, "partial_kwargs")
                        else None
                    )
                    assert (timeout or task.execution_timeout) is not None, (
                        f"{task.task_id} waits without a timeout"
                    )


def test_parsing_touches_no_network(monkeypatch):
    """No I/O at parse time: the DAG file parses with every socket connection refused."""
    import socket

    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise OSError("network access during DAG parsing")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {} and bag.dags


@pytest.fixture(scope="module")
def modules_a_parse_imports() -> set[str]:
    """Parse dags/ in a fresh interpreter (as the dag-processor's child does) and list sys.modules."""
    import json
    import os
    import subprocess
    import sys

    root = DAGS_FOLDER.parent
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "print(json.dumps({'dags': len(bag.dags), 'errors': len(bag.import_errors), 'modules': sorted(sys.modules)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{root}:{root / 'plugins'}"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["dags"] >= 3 and parsed["errors"] == 0
    return set(parsed["modules"])


def test_parsing_leaves_the_task_logic_unimported(modules_a_parse_imports):
    """The dag-processor reparses the file every 30 s: the task logic loads in the task that runs it,
    not at parse (bench/bench_dag_parse.py). What a parse must not import: include.pipeline.tasks.*,
    every module the wiring names in a task_module() call (read from the source, so a new one is
    covered), and the import planner with its S3 ledger, which the retry policy's error paths once
    pulled in (Airflow 3.3's RetryRule imports every path it names when it is built)."""
    import ast

    from tests.test_import_graph import module_files, task_module_name

    wired_lazily = {
        name
        for path in module_files().values()
        for node in ast.walk(ast.parse(path.read_text()))
        if (name := task_module_name(node))
    }
    assert (
        "include.pipeline.tasks.ingest" in wired_lazily and "include.pipeline.solution_tasks" in wired_lazily
    )
    loaded = modules_a_parse_imports
    task_logic = sorted(m for m in loaded if m.startswith("include.pipeline.tasks."))
    assert task_logic == [], f"parsing imported {task_logic}"
    assert sorted(wired_lazily & loaded) == [], "modules named by task_module() were imported at parse"
    planner = sorted(loaded & {"include.pipeline.imports", "include.pipeline.import_ledger"})
    assert planner == [], f"parsing imported the import planner: {planner}"


def test_dag_files_name_the_modules_the_dag_processor_should_import_once(modules_a_parse_imports):
    """The dag-processor pre-imports, before forking a parse, the airflow.* modules a DAG file names
    (airflow.utils.file.iter_airflow_imports): both files name what the provider layer and @task
    build on, and a parse does import each of them (else pre-importing it would be wasted work)."""
    from airflow.utils.file import iter_airflow_imports

    from include.pipeline.dag_args import PRE_IMPORTED_BY_THE_DAG_PROCESSOR

    wanted = set(PRE_IMPORTED_BY_THE_DAG_PROCESSOR)
    for name in ("personalize_pipelines.py", "personalize_lifecycle.py"):
        named = set(iter_airflow_imports(str(DAGS_FOLDER / name)))
        assert wanted <= named, f"{name} does not name {sorted(wanted - named)}"
    assert wanted <= modules_a_parse_imports, sorted(wanted - modules_a_parse_imports)


def test_tasks_carry_no_copy_of_the_dag_form_and_still_see_it_when_they_run(dag_bag):
    """dag_args.with_form sets a DAG's params after its tasks exist, so no task holds a copy (Airflow
    deep-copies them into each task and validates each copy while serialising: most of a parse).
    What a running task sees is process_params' merge of the DAG's params and the run's conf: if an
    Airflow upgrade read only the task's own params, the forms would silently stop reaching tasks."""
    from airflow.sdk.definitions.param import process_params

    with_forms = 0
    for dag_id, dag in dag_bag.dags.items():
        carrying = [task.task_id for task in dag.tasks if task.params]
        assert carrying == [], f"{dag_id}: tasks with a copy of the DAG's params: {carrying}"
        if not dag.params:
            continue
        with_forms += 1
        first = dag.get_task("check_params")
        name = next(iter(dag.params))
        seen = process_params(dag, first, {}, suppress_exception=False)
        assert set(seen) == set(dag.params), dag_id
        override = {"dry_run": True} if "dry_run" in dag.params else {name: dag.params[name]}
        assert process_params(dag, first, override, suppress_exception=False).items() >= override.items()
    assert with_forms >= 3, "ingest, train_deploy and erase_users have forms"


def test_failure_callback_logs_one_line(caplog):
    from types import SimpleNamespace

    from include.pipeline.tasks import on_failure_summary

    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number=2)
    with caplog.at_level("ERROR"):
        on_failure_summary({"ti": ti, "exception": ValueError("bad CSV\nline 2")})
    (line,) = [r.getMessage() for r in caplog.records if "PIPELINE FAILURE" in r.getMessage()]
    assert line == "PIPELINE FAILURE dag=d task=t run=r try=2: bad CSV"


def test_replay_solutions_get_the_replay_group_and_the_others_keep_theirs(tmp_path, monkeypatch):
    """Each solution whose gate is replay (campaign-served with a baseline, batch only) gets its own
    replay group in train_deploy, beside an offline solution's group."""
    import yaml

    from tests.dags import e2e_support as support

    data = yaml.safe_load(support.DEMO_CONFIG.read_text(encoding="utf-8"))
    replay = {"evaluation": "replay", "tolerance": "auto", "holdout_days": 3}
    data["solutions"][0]["gate"].update(replay)
    data["solutions"][2] = {"name": "demo-retail-trending", "recipe": "aws-trending-now", "batch": {},
                            "gate": replay}  # fmt: skip
    path = tmp_path / "demo_retail.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    train = support.load_dags(path, monkeypatch)["train_deploy"]
    up, similar, trending = (s["name"] for s in data["solutions"])
    replay_tasks = {"route", "train", "evaluate", "hold_challenger", "replay_inputs", "replay_batch_jobs",
                    "replay_decide", "retrain", "use_as_trained", "keep_champion", "record"}  # fmt: skip
    for name, served in ((up, {"deploy_campaign", "smoke_test"}), (trending, {"accept_batch"})):
        assert {f"{name}.{t}" for t in replay_tasks | served} <= set(train.task_ids)
        assert f"{name}.has_new_data" not in train.task_ids
    assert f"{similar}.has_new_data" in train.task_ids and f"{similar}.replay_inputs" not in train.task_ids
    # The baseline trains before the replay solution's evaluate (the one it asks for), as offline.
    assert f"{up}.evaluate" in train.get_task("train_baseline").downstream_task_ids
