"""A solution's task group when its gate has `evaluation: replay`, wired (solution_dag.py calls it
inside train_deploy's context, beside the offline solutions' groups; what each task does is in
replay_tasks.py, replay_record.py and solution_tasks.py, imported where a task runs)."""

from __future__ import annotations

from airflow.sdk import TaskGroup, task
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
    PersonalizeDeployCampaignOperator,
)

from include.pipeline.config import PipelineConfig
from include.pipeline.dag_args import task_module, training_operator


def replay_group(config: PipelineConfig, entry, gid: str, planned, resources, baseline_train, aws_args: dict):
    """route -> train -> evaluate -> hold the challenger PENDING (or, with no champion yet or a forced
    run, the offline gate); or route -> replay_inputs -> one batch inference job per model (challenger,
    champion, baseline) -> replay_decide -> [retrain] -> deploy_campaign -> smoke_test | accept_batch;
    every path ends in record, which returns the solution's outcome to `finish`."""
    name = entry.name
    plan_of = f"ti.xcom_pull(task_ids='plan_training')['solutions']['{name}']"

    def plan(ti) -> dict | None:
        planned = ti.xcom_pull(task_ids="plan_training")
        return None if planned is None else planned["solutions"][name]

    with TaskGroup(group_id=gid, tooltip=f"{name} ({entry.recipe}), replay gate"):

        @task.branch
        def route(**context):
            step = plan(context["ti"])["replay"]
            return {"train": [f"{gid}.train"], "score": [f"{gid}.replay_inputs"]}.get(step["next"], [])

        train = training_operator(
            config,
            aws_args,
            task_id="train",
            solution_arn="{{ " + plan_of + "['solution_arn'] }}",
            training_mode="{{ " + plan_of + "['training_mode'] }}",
        )

        # all_done: a failed or skipped baseline training still lets the challenger be judged.
        @task.branch(trigger_rule="all_done")
        def evaluate(**context):
            from airflow.sdk.exceptions import AirflowSkipException

            ti = context["ti"]
            challenger = ti.xcom_pull(task_ids=f"{gid}.train")
            if not challenger:
                raise AirflowSkipException(f"{name} was not trained in this run")
            baseline_arn = None
            if entry.gate.baseline:
                baseline = ti.xcom_pull(task_ids="plan_training")["baseline"]
                baseline_arn = ti.xcom_pull(task_ids="train_baseline") or baseline["latest_arn"]
            planned = plan(ti)
            decision = task_module("replay_tasks").pending_decision(
                config, name, planned, challenger, baseline_arn
            )
            if decision is not None:
                follow = "keep_champion" if planned["dry_run"] else "hold_challenger"
            else:  # no champion yet or a forced run: the offline gate, as an offline solution's
                decision = task_module("solution_tasks").evaluate(
                    config, name, planned, challenger, context["params"], baseline_arn
                )
                deploy = "deploy_campaign" if entry.campaign else "accept_batch"
                follow = deploy if decision["accepted"] and not planned["dry_run"] else "keep_champion"
            ti.xcom_push(key="decision", value=decision)
            return f"{gid}.{follow}"

        @task
        def hold_challenger(**context):
            return context["ti"].xcom_pull(task_ids=f"{gid}.evaluate", key="decision")["summary"]

        @task
        def replay_inputs(**context):
            return task_module("replay_tasks").prepare_inputs(config, name, plan(context["ti"]))

        inputs = replay_inputs()
        # Names from the solution, the scored version and the window: a rerun adopts the jobs.
        jobs = PersonalizeCreateBatchInferenceJobOperator.partial(
            task_id="replay_batch_jobs", role_arn=config.role_arn, tags=config.all_resource_tags, **aws_args
        ).expand_kwargs(inputs)

        @task.branch
        def replay_decide(jobs: list[dict], **context):
            ti = context["ti"]
            decision, follow, deploy_arn = task_module("replay_tasks").decide_pending(
                config, name, plan(ti), jobs, context["params"]
            )
            ti.xcom_push(key="decision", value=decision)
            ti.xcom_push(key="deploy_arn", value=deploy_arn)
            return f"{gid}.{follow}"

        @task
        def use_as_trained(**context):
            return context["ti"].xcom_pull(task_ids=f"{gid}.replay_decide", key="deploy_arn")

        retrain = training_operator(
            config,
            aws_args,
            task_id="retrain",
            solution_arn="{{ " + plan_of + "['replay']['challenger_arn'].rsplit('/', 1)[0] }}",
            training_mode="FULL",
        )

        def decision_of(ti) -> dict | None:
            return ti.xcom_pull(task_ids=f"{gid}.replay_decide", key="decision") or ti.xcom_pull(
                task_ids=f"{gid}.evaluate", key="decision"
            )

        @task(trigger_rule="none_failed_min_one_success")
        def keep_champion(**context):
            ti = context["ti"]
            return task_module("solution_record").keep_champion(config, name, plan(ti), decision_of(ti))

        routed = route()
        planned >> routed >> [train, inputs]
        evaluated = evaluate()
        train >> evaluated
        if baseline_train is not None and entry.gate.baseline:
            baseline_train >> evaluated
        decided = replay_decide(inputs)  # the jobs' names and outputs; the jobs' ARNs add nothing
        jobs >> decided
        as_trained, keep, hold = use_as_trained(), keep_champion(), hold_challenger()
        evaluated >> [hold, keep]
        decided >> [retrain, as_trained, keep]
        if entry.campaign:
            deploy = PersonalizeDeployCampaignOperator(
                task_id="deploy_campaign",
                campaign_name=entry.campaign.name,
                solution_version_arn="{{ ti.xcom_pull(task_ids='" + gid + ".retrain') or ti.xcom_pull("
                "task_ids='" + gid + ".use_as_trained') or ti.xcom_pull(task_ids='" + gid + ".train') }}",
                min_provisioned_tps=entry.campaign.min_provisioned_tps,
                campaign_config=entry.campaign.campaign_config,
                trigger_rule="none_failed_min_one_success",
                tags=config.all_resource_tags,
                **aws_args,
            )

            @task
            def smoke_test(resources: dict, **context):
                ti = context["ti"]
                campaign_arn = ti.xcom_pull(task_ids=f"{gid}.deploy_campaign")
                task_module("resource_tags").sync(
                    config, [campaign_arn]
                )  # an adopted campaign keeps its own tags
                return task_module("solution_tasks").smoke_test(
                    config, name, plan(ti), campaign_arn, resources
                )

            served = smoke_test(resources)
            deployed_by = f"{gid}.smoke_test"
            [evaluated, retrain, as_trained] >> deploy >> served
        else:

            @task(trigger_rule="none_failed_min_one_success")
            def accept_batch():
                return f"{name} is batch only: the accepted version becomes its champion (metrics history)"

            served = accept_batch()
            deployed_by = f"{gid}.accept_batch"
            [evaluated, retrain, as_trained] >> served

        # all_done: what was trained or scored is recorded whatever happened after it.
        @task(trigger_rule="all_done")
        def record(**context):
            ti = context["ti"]
            return task_module("replay_record").record_replay(
                config,
                name,
                plan=plan(ti),
                decision=decision_of(ti),
                trained_arn=ti.xcom_pull(task_ids=f"{gid}.train"),
                retrained_arn=ti.xcom_pull(task_ids=f"{gid}.retrain"),
                deployed=ti.xcom_pull(task_ids=deployed_by) is not None,
                run_id=ti.run_id,
                dag_id=ti.dag_id,
            )

        recorded = record()
        [served, keep, hold] >> recorded
    return recorded
