"""A DAG file of the pipelines' shape in plain Airflow: the floor for `bench_dag_parse.py --file`.

dags/personalize_pipelines.py for the demo config builds 3 DAGs of 11, 27 and 8 tasks (TaskFlow
tasks, short-circuits and branches, AWS operators, one mapped task and one mapped operator, five task
groups, trigger forms of 4 and 7 params, assets with s3:// URIs). This file builds the same counts
with Airflow and the Amazon provider alone (S3CreateObjectOperator standing in for our operators),
no config, no plugin, params passed to the DAG as usual. Parsing it costs what that shape costs any
project, before a line of ours:

    .venv/bin/python bench/bench_dag_parse.py --repeats 9 --baseline --file bench/same_shape_dags.py

Never loaded by Airflow (bench/ is not a DAG folder).
"""

from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    TaskGroup,
    task,
)

START = datetime(2024, 1, 1)
AWS = {"aws_conn_id": "aws_default", "region_name": "us-east-1"}
interactions = Asset(name="shape_interactions", uri="s3://bucket/shape/interactions/")
model = Asset(name="shape_model", uri="s3://bucket/shape/history/")
batch = Asset(name="shape_batch", uri="s3://bucket/shape/batch/")


def put(task_id, **kwargs):
    return S3CreateObjectOperator(task_id=task_id, s3_bucket="b", s3_key="k", data="x", **AWS, **kwargs)


def python(task_id, **kwargs):
    @task(task_id=task_id, **kwargs)
    def run(*args):
        return None

    return run


INGEST_PARAMS = {
    "start": Param(None, type=["null", "string"], format="date", description="first day"),
    "end": Param(None, type=["null", "string"], format="date", description="day after the last"),
    "full_import": Param(False, type="boolean", description="FULL import"),
    "allow_shrink": Param(False, type="boolean", description="let a FULL shrink"),
}
TRAIN_PARAMS = {
    "training_mode": Param("FULL", type="string", enum=["FULL", "UPDATE"], description="mode"),
    "force_deploy": Param(False, type="boolean", description="force"),
    "force_reason": Param(None, type=["null", "string"], description="why"),
    "gate_metric": Param(
        "precision_at_25", type="string", enum=["precision_at_25", "ndcg_at_25"], description="metric"
    ),
    "gate_threshold": Param(None, type=["null", "number"], minimum=0, maximum=1, description="threshold"),
    "gate_tolerance": Param(None, type=["null", "number"], minimum=0, maximum=1, description="tolerance"),
    "dry_run": Param(False, type="boolean", description="dry run"),
}

with DAG(
    "shape_ingest",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=START,
    catchup=False,
    params=INGEST_PARAMS,
):
    check = python("check_params")()
    interval = python("resolve_interval")()
    resources = put("ensure_resources")
    days = python("plan_extraction")(resources.output, interval)
    extracted = task(task_id="extract_interactions")(lambda day: day).expand(day=days)
    snapshots = python("extract_snapshots")(interval)
    jobs = python("plan_imports")(resources.output, snapshots)
    imported = S3CreateObjectOperator.partial(task_id="import_datasets", s3_bucket="b", **AWS).expand_kwargs(
        jobs
    )
    published = python("publish_interactions", outlets=[interactions])(interval)
    check >> interval >> resources
    extracted >> jobs
    imported >> published >> python("reconcile")(interval)
    python("ensure_metric_attribution")(resources.output)

with DAG(
    "shape_train_deploy",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 4 * * 0", timezone="UTC"), assets=interactions
    ),
    start_date=START,
    catchup=False,
    params=TRAIN_PARAMS,
):
    check = python("check_params")()
    resources = put("ensure_resources")
    check >> resources
    for index in range(3):
        with TaskGroup(f"solution_{index}"):
            plan = python("plan_training")(resources.output)
            gate = task.short_circuit(task_id="should_train")(lambda: True)()
            version = put("solution_version")
            baseline = put("baseline_version") if index == 0 else None
            metrics = python("get_metrics")(version.output)
            branch = task.branch(task_id="decide")(lambda: "x")()
            deploy = put("deploy_campaign") if index < 2 else python("accept_batch")()
            smoke = python("smoke_test")()
            record = python("record", outlets=[model])()
            plan >> gate >> version >> metrics >> branch >> deploy >> smoke >> record
            if baseline is not None:
                plan >> baseline

with DAG(
    "shape_batch_inference",
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
    start_date=START,
    catchup=False,
):
    check = python("check_params")()
    resources = put("ensure_resources")
    check >> resources
    for index in range(2):
        with TaskGroup(f"batch_{index}"):
            prepared = python("prepare")(resources.output)
            job = put("batch_inference_job")
            prepared >> job >> python("publish_output", outlets=[batch])()
