"""A deferred wait holds no worker: the task instance is DEFERRED while the Personalize job runs.

The operator runs inside a real (minimal) DAG through ``dag.test()``: the Task SDK runs the task,
the task defers, Airflow records the task instance as deferred in the metadata DB and the trigger
is rebuilt from its serialised form and run to its event; the task then resumes in
``execute_complete``. Each time Airflow sets the task instance's state, the test reads the state
back from the metadata DB and asks the (slow) local service how far the import job is.
"""

from __future__ import annotations

import json
import textwrap
from contextlib import ExitStack

from personalize.kinds import DATASET

from tests.plugins.conftest import unique_name

PROBE_DAG = textwrap.dedent(
    """
    import json
    import os

    from airflow.sdk import DAG

    from personalize.operators import PersonalizeCreateDatasetImportJobOperator

    SPEC = json.loads(os.environ["PERSONALIZE_PROBE_SPEC"])

    with DAG(SPEC["dag_id"], schedule=None, catchup=False) as dag:
        PersonalizeCreateDatasetImportJobOperator(
            task_id="import_interactions",
            job_name=SPEC["job_name"],
            dataset_arn=SPEC["dataset_arn"],
            data_location=SPEC["data_location"],
            role_arn=SPEC["role_arn"],
            aws_conn_id=SPEC["aws_conn_id"],
            deferrable=True,
            waiter_delay=1,
            waiter_max_attempts=300,
        )
    """
)


def test_a_deferred_import_job_wait_leaves_the_task_deferred_not_running(
    airflow_db, slow_dataset, tmp_path, monkeypatch
):
    import importlib.util

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from tests.plugins.conftest import ROLE_ARN

    dag_id = "personalize_deferral_probe"
    job_name = unique_name("deferral")
    spec = {
        "dag_id": dag_id,
        "job_name": job_name,
        "dataset_arn": slow_dataset["dataset_arn"],
        "data_location": f"s3://{slow_dataset['bucket']}/good.csv",
        "role_arn": ROLE_ARN,
        "aws_conn_id": slow_dataset["conn_id"],
    }
    monkeypatch.setenv("PERSONALIZE_PROBE_SPEC", json.dumps(spec))
    dag_folder = tmp_path / "probe_dags"
    dag_folder.mkdir()
    dag_file = dag_folder / "personalize_deferral_probe.py"
    dag_file.write_text(PROBE_DAG)
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {
                    "name": "personalize-deferral-probe",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(dag_folder), "refresh_interval": 0},
                },
                # Kept so the project's own bundle stays active for dag.test() runs after this one.
                {
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {},
                },
            ]
        ),
    )
    module_spec = importlib.util.spec_from_file_location("personalize_deferral_probe", dag_file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)

    hook = slow_dataset["hook"]

    def job_status() -> str | None:
        arn = hook.find_dataset_import_job(slow_dataset["dataset_arn"], job_name)
        return (
            hook.conn.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]["status"]
            if arn
            else None
        )

    observed: list[tuple[str, str | None, str | None]] = []
    original_set_state = TaskInstance.set_state

    def recording_set_state(self, state, *args, **kwargs):
        changed = original_set_state(self, state, *args, **kwargs)
        if self.dag_id == dag_id:
            with create_session() as session:
                in_db = session.scalar(select(TaskInstance.state).where(TaskInstance.id == self.id))
            observed.append((TaskInstanceState(state).value, in_db, job_status()))
            if state == TaskInstanceState.DEFERRED:
                hold.close()  # the job may run now: its status was read while the task was deferred
        return changed

    monkeypatch.setattr(TaskInstance, "set_state", recording_set_state)
    # The service holds the import job until the task has deferred, however slow this machine is.
    with ExitStack() as hold:
        hold.enter_context(slow_dataset["server"].backend.worker.held())
        dag_run = module.dag.test()

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == {"import_interactions": "success"}, observed
    deferred = [entry for entry in observed if entry[0] == "deferred"]
    assert deferred, f"the task never deferred: {observed}"
    _, state_in_db, job_status_then = deferred[0]
    # Airflow's own record says deferred (no worker slot) while Personalize is still importing.
    assert state_in_db == "deferred"
    assert job_status_then in ("CREATE PENDING", "CREATE IN_PROGRESS")
    assert job_status() == "ACTIVE"
    jobs = [
        job
        for page in hook.conn.get_paginator("list_dataset_import_jobs").paginate(
            datasetArn=slow_dataset["dataset_arn"]
        )
        for job in page["datasetImportJobs"]
        if job["jobName"] == job_name
    ]
    assert len(jobs) == 1

    # The console link the UI shows is resolved by the worker and stored for the API server.
    from airflow.models.xcom import XComModel
    from personalize.links import PersonalizeDatasetGroupLink

    link_key = PersonalizeDatasetGroupLink().xcom_key
    with create_session() as session:
        stored = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id, XComModel.key == link_key
            )
        )
    link = stored
    group_arn = hook.describe(DATASET, slow_dataset["dataset_arn"])["datasetGroupArn"]
    assert link == (
        "https://console.aws.amazon.com/personalize/home?region=us-east-1#"
        f"{group_arn.replace('/', '$')}/dashboard"
    )
