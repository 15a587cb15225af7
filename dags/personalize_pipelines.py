"""Amazon Personalize pipelines: three DAGs for every config in include/config/ (wiring only).

`<name>_ingest`, `<name>_train_deploy`, `<name>_batch_inference`; what each step does lives in
include/pipeline/tasks/. Parsing reads only the YAML configs: no network, no database.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    TaskGroup,
    dag,
    task,
)
from personalize.operators import (
    PersonalizeCreateBatchInferenceJobOperator,
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeCreateSolutionVersionOperator,
    PersonalizeDeployCampaignOperator,
    PersonalizeEnsureResourcesOperator,
)

from include.pipeline import (
    notify,
    replay_dag,
    resource_tags,
    solution_batch,
    solution_record,
    solution_tasks,
)
from include.pipeline.config import PipelineConfig, load_configs_isolated, tolerance_text
from include.pipeline.failures import no_retry_policy
from include.pipeline.params import check_run_params, dag_params
from include.pipeline.tasks import batch as batch_tasks
from include.pipeline.tasks import ingest as ingest_tasks
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


def check_params(config: PipelineConfig, kind: str):
    """Every DAG's first task: unknown conf keys and cross-field rules fail the run at once."""
    declared = set(dag_params(config, kind))

    @task
    def check_params(**context):
        return check_run_params(kind, declared, context["dag_run"].conf, context["params"])

    return check_params()


def interactions_asset(config: PipelineConfig) -> Asset:
    return Asset(name=f"{config.name}_interactions", uri=config.s3.uri("interactions") + "/")


def ensure_resources(config: PipelineConfig) -> PersonalizeEnsureResourcesOperator:
    return PersonalizeEnsureResourcesOperator(
        task_id="ensure_resources",
        dataset_group_name=config.dataset_group,
        datasets=config.personalize_datasets(),
        solutions=config.personalize_solutions(),
        filters=config.personalize_filters(),
        event_tracker_name=config.event_tracker,
        role_arn=config.role_arn,
        kms_key_arn=config.kms_key_arn,
        tags=config.all_resource_tags,
        **aws_args(config),
    )


def build_ingest(config: PipelineConfig):
    asset = interactions_asset(config)

    @dag(
        dag_id=config.dag_ids["ingest"],
        schedule=CronDataIntervalTimetable(config.schedule.ingest, timezone="UTC"),
        start_date=config.schedule.start_date,
        catchup=config.schedule.catchup,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "ingest", *config.tags],
        doc_md=f"""
### {config.name}: app DB -> S3 -> Personalize dataset imports
{config.description}

Each run covers its data interval `[start, end)` (cron `{config.schedule.ingest}`, UTC); backfill
history with `airflow backfill create --dag-id {config.dag_ids["ingest"]} --from-date ... --to-date ...`.
A manual run uses the form's **start**/**end**, or else the last complete period before it was triggered.

1. ensure the dataset group `{config.dataset_group}`, schemas, datasets, filters, event tracker;
2. extract interactions day by day into `{config.s3.uri("interactions")}/dt=YYYY-MM-DD/`, and
   items/users snapshots with a content hash;
3. import, planned from Personalize's import jobs joined with the manifest written before each one
   (never the same day twice; a job still running is adopted): INCREMENTAL (FULL when the dataset has
   no ACTIVE import, or the form asks: FULL covers every day in S3 and refuses to shrink the dataset
   unless **allow_shrink**); partitions below
   Personalize's 1000-record minimum are carried to the next run, large ones split; items/users only
   when their snapshot changed. Import jobs run in pool `{config.tasks.import_pool}` (AWS: at most 5 at once);
4. publish asset `{asset.name}` when new interactions landed, which triggers `{config.dag_ids["train_deploy"]}`;
5. reconcile: per day, app DB vs imported vs quarantined (`{config.s3.uri("reconcile", "latest.json")}`);
   a mismatch fails the run for its own days and warns for the others.
""",
        params=dag_params(config, "ingest"),
    )
    def ingest():
        @task
        def resolve_interval(**context) -> dict:
            return ingest_tasks.resolve_interval(config, context)

        @task
        def extract_interactions(interval: dict) -> dict:
            return ingest_tasks.extract_interactions(config, interval)

        @task
        def extract_snapshots(interval: dict) -> dict:
            return ingest_tasks.extract_snapshots(config, interval)

        interval = resolve_interval()
        check_params(config, "ingest") >> interval
        resources = ensure_resources(config)
        extracted = extract_interactions(interval)
        snapshots = extract_snapshots(interval)

        @task
        def plan_imports(resources: dict, snapshots: dict, **context) -> list[dict]:
            plan = ingest_tasks.plan_dataset_imports(config, resources, snapshots, context["params"])
            context["ti"].xcom_push(key="plan", value=plan)
            return plan["import_jobs"]

        jobs = plan_imports(resources.output, snapshots)
        interval >> resources
        extracted >> jobs

        imported = PersonalizeCreateDatasetImportJobOperator.partial(
            task_id="import_datasets",
            pool=config.tasks.import_pool,
            max_active_tis_per_dagrun=1,  # Personalize runs one import per dataset at a time
            tags=config.all_resource_tags,
            **aws_args(config),
        ).expand_kwargs(jobs)

        # all_done: jobs that finished are recorded even when another import failed (record_imports
        # then fails the run), so the next run does not import them again.
        @task(outlets=[asset], trigger_rule="all_done")
        def publish_interactions(interval: dict, **context):
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_imports", key="plan")
            if plan is None:
                raise AirflowFailException("no import plan: an extract or plan_imports failed")
            count = len(plan["batches"])
            arns = ti.xcom_pull(task_ids="import_datasets", map_indexes=list(range(count))) if count else []
            extra = ingest_tasks.record_imports(
                config, plan, [arns] if isinstance(arns, str) else list(arns), interval
            )
            if extra is None:
                raise AirflowSkipException("no new interactions landed in this run: asset not published")
            context["outlet_events"][asset].extra = extra
            return extra

        # none_failed: runs after a published or skipped asset, never hides a failed import.
        @task(trigger_rule="none_failed")
        def reconcile(interval: dict):
            return ingest_tasks.reconcile_ingest(config, interval)

        published = publish_interactions(interval)
        imported >> published >> reconcile(interval)

    return ingest()


def build_train_deploy(config: PipelineConfig):
    asset = interactions_asset(config)
    model_asset = Asset(name=f"{config.name}_model", uri=config.s3.uri("history") + "/")
    solutions = "\n".join(
        f"- `{s.name}` ({s.recipe}): gate `{s.gate.metric}` thresholds {dict(s.gate.thresholds)}, tolerance "
        f"{tolerance_text(s.gate.tolerance)}"
        + (f", at least {s.gate.min_lift:g}x the popularity baseline" if s.gate.baseline else "")
        + (f"; campaign `{s.campaign.name}`" if s.campaign else "")
        + ("; batch inference" if s.batch else "")
        for s in config.solutions
    )

    @dag(
        dag_id=config.dag_ids["train_deploy"],
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(config.schedule.train_deploy, timezone="UTC"), assets=asset
        ),
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "training", *config.tags],
        doc_md=f"""
### {config.name}: train every solution, gate each, deploy each its own way
Runs when `{config.dag_ids["ingest"]}` lands new interactions (asset `{asset.name}`) and on cron
`{config.schedule.train_deploy}`. A backfill publishes the asset many times; only the run that
reaches the present trains. A solution with no new data since its last trained version (serving or
rejected) does not train (cost guard).

Each solution in its own task group, in parallel: train -> GetSolutionMetrics -> gate (thresholds,
never worse than its champion beyond the tolerance, and the lift over the popularity baseline where
asked) -> deploy (campaign: create or UpdateCampaign, then a smoke test with the recipe's own
requests, rolled back on failure; batch only: the version becomes the champion) -> metrics history
and report. A rejected or failed solution never blocks another; `finish` fails the run naming it.

With `gate.evaluation: replay` (one solution only) the solution is judged by replay instead:
see docs/DESIGN.md, "Replay evaluation".

{solutions}
""",
        params=dag_params(config, "train_deploy"),
    )
    def train_deploy():
        resources = ensure_resources(config)
        check_params(config, "train_deploy") >> resources
        if any(entry.gate.evaluation == "replay" for entry in config.solutions):
            # Replay evaluation runs for a one-solution config (checked at parse time).
            view = config.for_solution(config.solutions[0].name)
            replay_dag.replay_train_deploy(view, resources, model_asset, aws_args(view))
            return
        tags = sync_tags(config, resources.output)

        @task
        def plan_training(resources: dict, **context):
            return solution_tasks.plan_training(config, resources, context)

        planned = plan_training(resources.output)
        tags >> planned
        plan_of = "ti.xcom_pull(task_ids='plan_training')"
        baseline_train = None
        if config.baseline_solution:

            @task.short_circuit(ignore_downstream_trigger_rules=False)
            def baseline_has_new_data(plan: dict):
                return plan["baseline"]["train"]

            baseline_train = PersonalizeCreateSolutionVersionOperator(
                task_id="train_baseline",
                solution_arn="{{ " + plan_of + "['baseline']['solution_arn'] }}",
                training_mode="FULL",
                pool=config.tasks.training_pool or "default_pool",
                tags=config.all_resource_tags,
                **aws_args(config),
            )
            baseline_has_new_data(planned) >> baseline_train

        outcomes = [
            solution_group(config, entry, planned, resources.output, baseline_train)
            for entry in config.solutions
        ]

        # all_done: every solution's outcome is read whatever happened to the others.
        @task(trigger_rule="all_done", outlets=[model_asset])
        def finish(**context):
            ti = context["ti"]
            outcomes = {
                entry.name: ti.xcom_pull(task_ids=f"{group_id(entry.name)}.record")
                for entry in config.solutions
            }
            result = solution_record.finish_run(config, outcomes)
            extra = {name: record for name, record in result.items() if record}
            if extra:
                context["outlet_events"][model_asset].extra = extra
            return result

        outcomes >> finish()

    return train_deploy()


def group_id(solution_name: str) -> str:
    return solution_name


def sync_tags(config: PipelineConfig, resources):
    """Resources created earlier, or by hand, get the config's tags (TagResource) when theirs differ."""

    @task
    def sync_tags(resources: dict):
        return resource_tags.sync_created(config, resources)

    return sync_tags(resources)


def solution_group(config: PipelineConfig, entry, planned, resources, baseline_train):
    """One solution's branch: train -> evaluate -> deploy | keep -> smoke test -> record."""
    gid = group_id(entry.name)
    name = entry.name

    with TaskGroup(group_id=gid, tooltip=f"{name} ({entry.recipe})"):

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def has_new_data(plan: dict):
            return plan["solutions"][name]["train"]

        plan_of = f"ti.xcom_pull(task_ids='plan_training')['solutions']['{name}']"
        train = PersonalizeCreateSolutionVersionOperator(
            task_id="train",
            solution_arn="{{ " + plan_of + "['solution_arn'] }}",
            training_mode="{{ " + plan_of + "['training_mode'] }}",
            pool=config.tasks.training_pool or "default_pool",
            tags=config.all_resource_tags,
            **aws_args(config),
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
            decision = solution_tasks.evaluate(
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
            return solution_record.keep_champion(config, name, plan, decision)

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
                **aws_args(config),
            )

            @task
            def smoke_test(resources: dict, **context):
                ti = context["ti"]
                plan = ti.xcom_pull(task_ids="plan_training")["solutions"][name]
                campaign_arn = ti.xcom_pull(task_ids=f"{gid}.deploy_campaign")
                resource_tags.sync(config, [campaign_arn])  # an adopted campaign keeps its own tags
                return solution_tasks.smoke_test(config, name, plan, campaign_arn, resources)

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
            return solution_record.record_solution(
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


def build_batch_inference(config: PipelineConfig):
    output_asset = Asset(name=f"{config.name}_batch_recommendations", uri=config.s3.uri("batch") + "/")
    served = [s for s in config.solutions if s.batch is not None]
    listed = "\n".join(
        f"- `{s.name}` ({s.recipe}): {s.batch.num_results} results, filter {s.batch.filter or 'none'}"
        for s in served
    )

    @dag(
        dag_id=config.dag_ids["batch_inference"],
        schedule=CronTriggerTimetable(config.schedule.batch_inference, timezone="UTC")
        if config.schedule.batch_inference
        else None,
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "batch", *config.tags],
        doc_md=f"""
### {config.name}: batch recommendations, one job per batch-served solution
Each with its champion (the version its campaign serves; batch only: its newest accepted version),
its input built for its recipe (users; items for related items; users with the popular items to
rank) as JSON lines on S3 -> batch inference job -> output under `{config.s3.uri("batch")}/<solution>/<run>/output/`,
published as asset `{output_asset.name}`.

{listed or "No solution is served by batch."}
""",
    )
    def batch_inference():
        resources = ensure_resources(config)
        check_params(config, "batch_inference") >> resources
        for entry in served:
            batch_group(config, entry, resources.output, output_asset)

    return batch_inference()


def batch_group(config: PipelineConfig, entry, resources, output_asset):
    name = entry.name
    with TaskGroup(group_id=group_id(name), tooltip=f"{name} ({entry.recipe}) batch inference"):

        @task(multiple_outputs=True)
        def prepare(resources: dict, **context):
            return solution_batch.prepare(config, name, resources, context["run_id"])

        prepared = prepare(resources)
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
            **aws_args(config),
        )

        @task(outlets=[output_asset])
        def publish_output(prepared: dict, job_arn: str, **context):
            extra = {"solution": name, **batch_tasks.publish_batch_output(config, prepared, job_arn)}
            context["outlet_events"][output_asset].extra = extra
            return extra

        publish_output(prepared, job.output)


# Each config on its own: a broken file builds nothing here and is reported by
# personalize_config_errors.py as that file's import error; every valid file still gets its DAGs.
for _config in load_configs_isolated().configs.values():
    build_ingest(_config)
    build_train_deploy(_config)
    build_batch_inference(_config)
