"""train_deploy's tasks with `gate.evaluation: replay`, wired (called by dags/personalize_pipelines.py
inside the DAG's context; what each task does is in replay_tasks.py and tasks/training.py)."""

from __future__ import annotations

from airflow.sdk import task
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeDeployCampaignOperator,
)

from include.pipeline.config import PipelineConfig
from include.pipeline.dag_args import task_module


def replay_train_deploy(config: PipelineConfig, resources, model_asset, aws_args: dict) -> None:
    """train_deploy's tasks with `gate.evaluation: replay` (include/pipeline/replay_tasks.py):
    plan -> train -> hold the challenger PENDING (or, with no champion yet, the offline gate);
    or plan -> replay_inputs -> one batch inference job per model -> replay_decide -> [retrain] ->
    deploy_campaign -> smoke_test; every path ends in record_history."""

    @task.branch
    def plan_training(resources: dict, **context):
        plan = task_module("tasks.training").plan_training(config, resources, context)
        step = task_module("replay_tasks").plan_replay(config, plan, resources, context["run_id"])
        context["ti"].xcom_push(key="plan", value=plan)
        context["ti"].xcom_push(key="replay", value=step)
        return task_module("replay_tasks").next_task(
            plan, step, forced=bool(context["params"].get("force_deploy"))
        )

    def pulled(ti, key: str, task_id: str = "plan_training"):
        return ti.xcom_pull(task_ids=task_id, key=key)

    plan_xcom = "ti.xcom_pull(task_ids='plan_training', key='plan')"
    train = PersonalizeCreateSolutionVersionOperator(
        task_id="train",
        solution_arn="{{ " + plan_xcom + "['solution_arn'] }}",
        training_mode="{{ " + plan_xcom + "['training_mode'] }}",
        **aws_args,
    )

    @task.branch
    def evaluate(**context):
        ti = context["ti"]
        decision, follow = task_module("replay_tasks").evaluate_trained(
            config,
            pulled(ti, "plan"),
            pulled(ti, "replay"),
            ti.xcom_pull(task_ids="train"),
            context["params"],
        )
        ti.xcom_push(key="decision", value=decision)
        return follow

    @task
    def hold_challenger(**context):
        return context["ti"].xcom_pull(task_ids="evaluate", key="decision")["summary"]

    @task
    def replay_inputs(**context):
        ti = context["ti"]
        return task_module("replay_tasks").prepare_inputs(config, pulled(ti, "plan"), pulled(ti, "replay"))

    inputs = replay_inputs()
    # Names from the solution version and the window: a rerun adopts the jobs, never bills twice.
    jobs = PersonalizeCreateBatchInferenceJobOperator.partial(
        task_id="replay_batch_jobs", role_arn=config.role_arn, **aws_args
    ).expand_kwargs(inputs)

    @task.branch
    def replay_decide(jobs: list[dict], **context):
        ti = context["ti"]
        decision, follow, deploy_arn = task_module("replay_tasks").decide_pending(
            config, pulled(ti, "plan"), pulled(ti, "replay"), jobs, context["params"]
        )
        ti.xcom_push(key="decision", value=decision)
        ti.xcom_push(key="deploy_arn", value=deploy_arn)
        return follow

    @task
    def use_as_trained(**context):
        return context["ti"].xcom_pull(task_ids="replay_decide", key="deploy_arn")

    retrain = PersonalizeCreateSolutionVersionOperator(
        task_id="retrain",
        solution_arn="{{ ti.xcom_pull(task_ids='plan_training', key='replay')['challenger_arn'].rsplit('/', 1)[0] }}",
        training_mode="FULL",
        **aws_args,
    )
    deploy = PersonalizeDeployCampaignOperator(
        task_id="deploy_campaign",
        campaign_name=config.campaign.name,
        solution_version_arn="{{ ti.xcom_pull(task_ids='retrain') or ti.xcom_pull(task_ids='use_as_trained') "
        "or ti.xcom_pull(task_ids='train') }}",
        min_provisioned_tps=config.campaign.min_provisioned_tps,
        campaign_config=config.campaign.campaign_config,
        trigger_rule="none_failed_min_one_success",
        **aws_args,
    )

    def decision_of(ti) -> dict | None:
        return ti.xcom_pull(task_ids="replay_decide", key="decision") or ti.xcom_pull(
            task_ids="evaluate", key="decision"
        )

    @task(trigger_rule="none_failed_min_one_success")
    def keep_champion(**context):
        ti = context["ti"]
        return task_module("tasks.training").keep_champion(config, pulled(ti, "plan"), decision_of(ti))

    @task
    def smoke_test(resources: dict, **context):
        ti = context["ti"]
        return task_module("tasks.training").smoke_test(
            config, pulled(ti, "plan"), ti.xcom_pull(task_ids="deploy_campaign"), resources
        )

    @task(trigger_rule="all_done", outlets=[model_asset])
    def record_history(**context):
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        outcome = dict(
            plan=pulled(ti, "plan"),
            replay_step=pulled(ti, "replay"),
            decision=decision_of(ti),
            trained_arn=ti.xcom_pull(task_ids="train"),
            retrained_arn=ti.xcom_pull(task_ids="retrain"),
            deployed=ti.xcom_pull(task_ids="smoke_test") is not None,
        )
        extra = task_module("replay_tasks").record(config, **outcome, run_id=ti.run_id, dag_id=ti.dag_id)
        if extra is not None:
            context["outlet_events"][model_asset].extra = extra
        if failure := task_module("replay_tasks").failure(config, **outcome):
            raise AirflowFailException(failure)
        return extra

    planned = plan_training(resources.output)
    evaluated = evaluate()
    decided = replay_decide(inputs)  # the jobs' names and outputs; the jobs' ARNs add nothing
    jobs >> decided
    as_trained = use_as_trained()
    keep = keep_champion()
    hold = hold_challenger()
    smoke = smoke_test(resources.output)
    planned >> [train, inputs]
    train >> evaluated >> [hold, deploy, keep]
    decided >> [retrain, as_trained, keep]
    [retrain, as_trained] >> deploy >> smoke
    [smoke, keep, hold] >> record_history()
