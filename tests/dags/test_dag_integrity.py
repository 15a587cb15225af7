"""Every DAG file imports cleanly, quickly, and carries the hygiene every DAG here must have."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))
PARSE_SECONDS_LIMIT = 5.0


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    bag.parse_seconds = time.perf_counter() - started
    return bag


def test_dags_folder_has_dag_files():
    assert DAG_FILES, f"no DAG files in {DAGS_FOLDER}"


def test_every_dag_file_imports_without_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert dag_bag.dags, "no DAGs were found"


def test_dag_folder_parses_fast(dag_bag):
    assert dag_bag.parse_seconds < PARSE_SECONDS_LIMIT * max(1, len(DAG_FILES))


def test_every_dag_has_tags_owner_retries_and_docs(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
