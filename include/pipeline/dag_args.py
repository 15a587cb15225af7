"""What every pipeline DAG shares (both DAG files use it): task defaults, the Personalize operators'
wait settings, the first task that checks a run's params, and the task logic imported where a task
runs (`task_module`)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import ModuleType

from personalize.operators import PersonalizeCreateSolutionVersionOperator

from include.pipeline import notify
from include.pipeline.config import PipelineConfig
from include.pipeline.failures import no_retry_policy
from include.pipeline.params import check_run_params, dag_params
from include.pipeline.tasks import on_failure_summary


def default_args(config: PipelineConfig) -> dict:
    return {
        "owner": config.owner,
        "retries": config.tasks.retries,
        "retry_delay": timedelta(seconds=config.tasks.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=config.tasks.max_retry_delay_seconds),
        # The log line always; the config's SNS / e-mail notifiers when `notifications` names any.
        "on_failure_callback": [on_failure_summary, *notify.failure_callbacks(config)],
        "retry_policy": no_retry_policy(),
    }


# A trigger event within seconds of its deferral can fail the resumed try (apache/airflow#72716):
# each trigger checks first after this long, and waits polled in the worker never defer at all.
FIRST_TRIGGER_POLL_MIN_SECONDS = 5


def aws_args(config: PipelineConfig) -> dict:
    """Personalize operators wait in the triggerer (unless config says not), polling at the configured pace."""
    poll = max(1, int(config.tasks.poll_seconds))
    return {
        "aws_conn_id": config.aws_conn_id,
        "region_name": config.region_name,
        "deferrable": config.tasks.deferrable,
        "waiter_delay": poll,
        "waiter_max_attempts": max(1, config.tasks.wait_timeout_minutes * 60 // poll),
        "execution_timeout": timedelta(minutes=config.tasks.wait_timeout_minutes),
        "defer_after_seconds": config.tasks.defer_after_seconds,
        "first_poll_delay": max(poll, FIRST_TRIGGER_POLL_MIN_SECONDS),
    }


def check_params(config: PipelineConfig, kind: str, params: dict | None = None):
    """Every DAG's first task: unknown conf keys and cross-field rules fail the run at once.

    `params` are the DAG's own when they are not among `include.pipeline.params`' forms.
    """
    from airflow.sdk import task

    declared = set(params if params is not None else dag_params(config, kind))

    @task
    def check_params(**context):
        return check_run_params(kind, declared, context["dag_run"].conf, context["params"])

    return check_params()


def with_form(dag, params: dict):
    """`dag` with its trigger form `params`, set once its tasks exist (pass them here, not to @dag).

    Airflow copies a DAG's params into every task created while the DAG has them (a deep copy per
    class level of each operator), and the dag-processor then validates each task's copy twice
    while serialising it (ParamsDict `==` and `str`, every Param through jsonschema): for
    train_deploy's 27 tasks that was most of a parse (bench/bench_dag_parse.py --model processor).
    A task needs no copy: a running task's `context["params"]` merges the DAG's params, the task's
    own and the run's conf (`airflow.sdk.definitions.param.process_params`), and the form, the
    REST API's conf check and the scheduler read the DAG's. Setting the attribute runs the DAG's own
    converter and validator (a scheduled DAG's params must resolve), as the constructor does.
    """
    dag.params = params
    return dag


def training_operator(
    config: PipelineConfig, aws: dict, *, task_id: str, solution_arn: str, training_mode: str, **kwargs
) -> PersonalizeCreateSolutionVersionOperator:
    """A solution version's training: in the config's training pool, with the pipeline's tags."""
    return PersonalizeCreateSolutionVersionOperator(
        task_id=task_id,
        solution_arn=solution_arn,
        training_mode=training_mode,
        pool=config.tasks.training_pool or "default_pool",
        tags=config.all_resource_tags,
        **kwargs,
        **aws,
    )


def interactions_asset(config: PipelineConfig):
    """Published by ingest when new interactions landed; train_deploy and recommenders run on it."""
    from airflow.sdk import Asset

    return Asset(name=f"{config.name}_interactions", uri=config.s3.uri("interactions") + "/")


# The airflow.* modules both DAG files import by name for the dag-processor to pre-import (see there).
PRE_IMPORTED_BY_THE_DAG_PROCESSOR = (
    "airflow.providers.amazon.aws.assets.s3",
    "airflow.providers.amazon.aws.operators.base_aws",
    "airflow.providers.standard.decorators.python",
)

TASK_LOGIC_PACKAGE = "include.pipeline"


def task_module(name: str) -> ModuleType:
    """The task logic `include.pipeline.<name>` (e.g. "tasks.ingest"), imported when a task calls
    this, never at parse: the dag-processor reparses the DAG files every 30 s and the task modules
    with their imports cost tens of milliseconds (bench/bench_dag_parse.py). Call it inside a task
    callable with a literal name; tests/test_import_graph.py reads those calls as imports."""
    return importlib.import_module(f"{TASK_LOGIC_PACKAGE}.{name}")
