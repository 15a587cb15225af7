"""train_deploy's per-solution task groups and batch_inference's per-solution jobs, wired (called by
dags/personalize_pipelines.py inside the DAG's context). What each task does is in solution_tasks.py,
solution_record.py, solution_batch.py and resource_tags.py, imported where a task runs: the
dag-processor reparses the DAG file every 30 s and pays only for the wiring."""

from __future__ import annotations

from airflow.sdk import TaskGroup, task
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
    PersonalizeDeployCampaignOperator,
)

from include.pipeline.config import PipelineConfig
from include.pipeline.dag_args import task_module, training_operator
from include.pipeline.replay_dag import replay_group


def group_id(solution_name: str) -> str:
    return solution_name


def train_deploy_solutions(config: PipelineConfig, resources, model_asset, aws_args: dict) -> None:
    """sync_tags -> plan_training -> [train_baseline] -> one task group per solution -> finish.

    A solution whose gate has `evaluation: replay` gets the replay gate's group (replay_dag.py)."""

    @task
    def sync_tags(resources: dict):
        """Resources created earlier, or by hand, get the config's tags (TagResource) when theirs differ."""
        return task_module("resource_tags").sync_created(config, resources)

    @task
    def plan_training(resources: dict, **context):
        return task_module("solution_tasks").plan_training(config, resources, context)

    planned = plan_training(resources.output)
    sync_tags(resources.output) >> planned
    plan_of = "ti.xcom_pull(task_ids='plan_training')"
    baseline_train = None
    if config.baseline_solution:

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def baseline_has_new_data(plan: dict):
            return plan["baseline"]["train"]

        baseline_train = training_operator(
            config,
            aws_args,
            task_id="train_baseline",
            solution_arn="{{ " + plan_of + "['baseline']['solution_arn'] }}",
            training_mode="FULL",
        )
        baseline_has_new_data(planned) >> baseline_train

    outcomes = [
        replay_group(config, entry, group_id(entry.name), planned, resources.output, baseline_train, aws_args)
        if entry.gate.evaluation == "replay"
        else solution_group(config, entry, planned, resources.output, baseline_train, aws_args)
        for entry in config.solutions
    ]

    # all_done: every solution's outcome is read whatever happened to the others.
    @task(trigger_rule="all_done", outlets=[model_asset])
    def finish(**context):
        ti = context["ti"]
        outcomes = {
            entry.name: ti.xcom_pull(task_ids=f"{group_id(entry.name)}.record") for entry in config.solutions
        }
        result = task_module("solution_record").finish_run(config, outcomes)
        extra = {name: record for name, record in result.items() if record}
        if extra:
            context["outlet_events"][model_asset].extra = extra
        return result

    outcomes >> finish()


def solution_group(config: PipelineConfig, entry, planned, resources, baseline_train, aws_args: dict):
    """One solution's branch: train -> evaluate -> deploy | keep -> smoke test -> record."""
    gid = group_id(entry.name)
    name = entry.name

    with TaskGroup(group_id=gid, tooltip=f"{name} ({entry.recipe})"):

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def has_new_data(plan: dict):
            return plan["solutions"][name]["train"]

        plan_of = f"ti.xcom_pull(task_ids='plan_training')['solutions']['{name}']"
        train = training_operator(
            config,
            aws_args,
            task_id="train",
            solution_arn="{{ " + plan_of + "['solution_arn'] }}",
            training_mode="{{ " + plan_of + "['training_mode'] }}",
        )

        # all_done: a failed or skipped baseline training still lets this solution be judged
        # (its gate then has no baseline and rejects); a failed own training skips it.
        @task.branch(trigger_rule="all_done")
        def evaluate(**context):
            from airflow.sdk.exceptions import AirflowSkipException

            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_training")["solutions"][name]
            challenger = ti.xcom_pull(task_ids=f"{gid}.train")
            if not plan["train"] or not challenger:
                raise AirflowSkipException(f"{name} was not trained in this run")
            baseline_arn = None
            if entry.gate.baseline:
                baseline = ti.xcom_pull(task_ids="plan_training")["baseline"]
                baseline_arn = ti.xcom_pull(task_ids="train_baseline") or baseline["latest_arn"]
            decision = task_module("solution_tasks").evaluate(
                config, name, plan, challenger, context["params"], baseline_arn
            )
            ti.xcom_push(key="decision", value=decision)
            if not decision["accepted"] or plan["dry_run"]:
                return f"{gid}.keep_champion"
            return f"{gid}.deploy_campaign" if entry.campaign else f"{gid}.accept_batch"

        @task
        def keep_champion(**context):
            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_training")["solutions"][name]
            decision = ti.xcom_pull(task_ids=f"{gid}.evaluate", key="decision")
            return task_module("solution_record").keep_champion(config, name, plan, decision)

        evaluated = evaluate()
        planned >> has_new_data(planned) >> train >> evaluated
        if baseline_train is not None and entry.gate.baseline:
            baseline_train >> evaluated
        kept = keep_champion()
        evaluated >> kept
        ends = [kept]
        if entry.campaign:
            deploy = PersonalizeDeployCampaignOperator(
                task_id="deploy_campaign",
                campaign_name=entry.campaign.name,
                solution_version_arn="{{ ti.xcom_pull(task_ids='" + gid + ".train') }}",
                min_provisioned_tps=entry.campaign.min_provisioned_tps,
                campaign_config=entry.campaign.campaign_config,
                tags=config.all_resource_tags,
                **aws_args,
            )

            @task
            def smoke_test(resources: dict, **context):
                ti = context["ti"]
                plan = ti.xcom_pull(task_ids="plan_training")["solutions"][name]
                campaign_arn = ti.xcom_pull(task_ids=f"{gid}.deploy_campaign")
                task_module("resource_tags").sync(
                    config, [campaign_arn]
                )  # an adopted campaign keeps its own tags
                return task_module("solution_tasks").smoke_test(config, name, plan, campaign_arn, resources)

            smoke = smoke_test(resources)
            evaluated >> deploy >> smoke
            ends.append(smoke)
        else:

            @task
            def accept_batch():
                return f"{name} is batch only: the accepted version becomes its champion (metrics history)"

            accepted = accept_batch()
            evaluated >> accepted
            ends.append(accepted)

        # all_done: a version that was trained is recorded whatever happened after it.
        @task(trigger_rule="all_done")
        def record(**context):
            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_training")
            deployed = ti.xcom_pull(task_ids=f"{gid}.smoke_test" if entry.campaign else f"{gid}.accept_batch")
            return task_module("solution_record").record_solution(
                config,
                name,
                plan=None if plan is None else plan["solutions"][name],
                decision=ti.xcom_pull(task_ids=f"{gid}.evaluate", key="decision"),
                challenger_arn=ti.xcom_pull(task_ids=f"{gid}.train"),
                deployed=deployed is not None,
                run_id=ti.run_id,
                dag_id=ti.dag_id,
            )

        recorded = record()
        ends >> recorded
    return recorded


def batch_group(config: PipelineConfig, entry, resources, output_asset, aws_args: dict) -> None:
    """One batch-served solution: due? -> prepare its input -> batch inference job -> publish the output."""
    name = entry.name
    with TaskGroup(group_id=group_id(name), tooltip=f"{name} ({entry.recipe}) batch inference"):

        @task.short_circuit
        def due(**context) -> bool:
            """A scheduled run fired by another solution's cron skips this one (batch_schedule.py)."""
            from include.pipeline.batch_schedule import due_now

            return due_now(config, name, context["dag_run"])

        @task(multiple_outputs=True)
        def prepare(resources: dict, **context):
            return task_module("solution_batch").prepare(config, name, resources, context["run_id"])

        prepared = prepare(resources)
        # After ensure_resources (so check_params stays the DAG's one root), before any work of its own.
        due_check = due()
        resources >> due_check >> prepared
        job = PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch_inference_job",
            job_name=prepared["job_name"],
            solution_version_arn=prepared["solution_version_arn"],
            input_path=prepared["input_path"],
            output_path=prepared["output_path"],
            filter_arn=prepared["filter_arn"],
            role_arn=config.role_arn,
            num_results=entry.batch.num_results,
            tags=config.all_resource_tags,
            **aws_args,
        )

        @task(outlets=[output_asset])
        def publish_output(prepared: dict, job_arn: str, **context):
            extra = {
                "solution": name,
                **task_module("tasks.batch").publish_batch_output(config, prepared, job_arn),
            }
            context["outlet_events"][output_asset].extra = extra
            return extra

        publish_output(prepared, job.output)
