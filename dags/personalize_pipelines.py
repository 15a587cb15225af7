"""Amazon Personalize pipelines: three DAGs for every config in include/config/ (wiring only).

`<name>_ingest`, `<name>_train_deploy`, `<name>_batch_inference`; what each step does lives in
include/pipeline/tasks/. Parsing reads only the YAML configs: no network, no database. The task
modules are imported inside the task callables (`ingest_tasks()` ...), never at parse: the
dag-processor reparses this file every 30 s and pays only for configs and wiring
(bench/bench_dag_parse.py).
"""

from __future__ import annotations

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
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

from include.pipeline import replay_dag
from include.pipeline.config import PipelineConfig, load_configs_isolated, tolerance_text
from include.pipeline.dag_args import aws_args, check_params, default_args, interactions_asset
from include.pipeline.domain_config import domain_create_kwargs
from include.pipeline.params import dag_params


# The task modules and their imports cost ~40 ms a parse: imported where a task runs instead.
def ingest_tasks():
    from include.pipeline.tasks import ingest

    return ingest


def training_tasks():
    from include.pipeline.tasks import training

    return training


def batch_tasks():
    from include.pipeline.tasks import batch

    return batch


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
        extra_create_kwargs=domain_create_kwargs(config),
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
2. extract interactions, one task per day (pool `{config.tasks.extract_pool}`, days Personalize already
   holds skipped), into `{config.s3.uri("interactions")}/dt=YYYY-MM-DD/`, and items/users snapshots
   with a content hash;
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
            return ingest_tasks().resolve_interval(config, context)

        @task
        def plan_extraction(resources: dict, interval: dict, **context) -> list[str]:
            from include.pipeline.extract_days import days_to_extract

            return days_to_extract(config, resources, interval, context["params"])

        # One task per day, on any worker: each writes its own partition and ledger record to S3.
        @task(pool=config.tasks.extract_pool, max_active_tis_per_dagrun=config.tasks.extract_parallelism)
        def extract_interactions(day: str) -> dict:
            from include.pipeline.extract_days import extract_day

            return extract_day(config, day)

        @task
        def extract_snapshots(interval: dict) -> dict:
            return ingest_tasks().extract_snapshots(config, interval)

        interval = resolve_interval()
        check_params(config, "ingest") >> interval
        resources = ensure_resources(config)
        if config.metric_attribution is not None:

            @task
            def ensure_metric_attribution(resources: dict) -> str:
                from include.pipeline.tasks import metric_attribution

                return metric_attribution.ensure_metric_attribution(config, resources)

            ensure_metric_attribution(resources.output)
        extracted = extract_interactions.expand(day=plan_extraction(resources.output, interval))
        snapshots = extract_snapshots(interval)

        # none_failed: runs when every day was extracted before (no mapped task: skipped).
        @task(trigger_rule="none_failed")
        def plan_imports(resources: dict, snapshots: dict, **context) -> list[dict]:
            plan = ingest_tasks().plan_dataset_imports(config, resources, snapshots, context["params"])
            context["ti"].xcom_push(key="plan", value=plan)
            return plan["import_jobs"]

        jobs = plan_imports(resources.output, snapshots)
        interval >> resources
        extracted >> jobs

        imported = PersonalizeCreateDatasetImportJobOperator.partial(
            task_id="import_datasets",
            pool=config.tasks.import_pool,
            max_active_tis_per_dagrun=1,  # Personalize runs one import per dataset at a time
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
            extra = ingest_tasks().record_imports(
                config, plan, [arns] if isinstance(arns, str) else list(arns), interval
            )
            if extra is None:
                raise AirflowSkipException("no new interactions landed in this run: asset not published")
            context["outlet_events"][asset].extra = extra
            return extra

        # none_failed: runs after a published or skipped asset, never hides a failed import.
        @task(trigger_rule="none_failed")
        def reconcile(interval: dict):
            return ingest_tasks().reconcile_ingest(config, interval)

        published = publish_interactions(interval)
        imported >> published >> reconcile(interval)

    return ingest()


def build_train_deploy(config: PipelineConfig):
    asset = interactions_asset(config)
    model_asset = Asset(name=f"{config.name}_model", uri=config.s3.uri("history") + "/")

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
### {config.name}: train a solution version, gate it, deploy it
Runs when `{config.dag_ids["ingest"]}` lands new interactions (asset `{asset.name}`) and on cron
`{config.schedule.train_deploy}`. A backfill publishes the asset many times; only the run that
reaches the present trains. No new data since the last trained version (serving or rejected) -> no training (cost guard).

Steps: train `{config.solution.name}` ({config.solution.recipe}) -> GetSolutionMetrics -> gate
(`{config.gate.metric}` thresholds {dict(config.gate.thresholds)}; never worse than the champion by more
than {tolerance_text(config.gate.tolerance)}; evaluation {config.gate.evaluation}) -> deploy campaign `{config.campaign.name}` -> smoke test
GetRecommendations (rollback to the previous version on failure) -> metrics history and report on S3.
A rejected challenger leaves the campaign untouched: see `keep_champion`'s log for the values side by side.
""",
        params=dag_params(config, "train_deploy"),
    )
    def train_deploy():
        resources = ensure_resources(config)
        check_params(config, "train_deploy") >> resources
        if config.gate.evaluation == "replay":
            replay_dag.replay_train_deploy(config, resources, model_asset, aws_args(config))
            return

        @task.short_circuit(ignore_downstream_trigger_rules=True)
        def plan_training(resources: dict, **context):
            plan = training_tasks().plan_training(config, resources, context)
            context["ti"].xcom_push(key="plan", value=plan)
            return plan["train"]

        planned = plan_training(resources.output)
        plan_xcom = "ti.xcom_pull(task_ids='plan_training', key='plan')"
        train = PersonalizeCreateSolutionVersionOperator(
            task_id="train",
            solution_arn="{{ " + plan_xcom + "['solution_arn'] }}",
            training_mode="{{ " + plan_xcom + "['training_mode'] }}",
            **aws_args(config),
        )

        @task.branch
        def evaluate(**context):
            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_training", key="plan")
            decision = training_tasks().evaluate_challenger(
                config, plan, ti.xcom_pull(task_ids="train"), context["params"]
            )
            ti.xcom_push(key="decision", value=decision.as_dict())
            return "deploy_campaign" if decision.accepted and not plan["dry_run"] else "keep_champion"

        @task
        def keep_champion(**context):
            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_training", key="plan")
            return training_tasks().keep_champion(
                config, plan, ti.xcom_pull(task_ids="evaluate", key="decision")
            )

        deploy = PersonalizeDeployCampaignOperator(
            task_id="deploy_campaign",
            campaign_name=config.campaign.name,
            solution_version_arn="{{ ti.xcom_pull(task_ids='train') }}",
            min_provisioned_tps=config.campaign.min_provisioned_tps,
            campaign_config=config.campaign.campaign_config,
            **aws_args(config),
        )

        @task
        def smoke_test(resources: dict, **context):
            ti = context["ti"]
            plan = ti.xcom_pull(task_ids="plan_training", key="plan")
            return training_tasks().smoke_test(
                config, plan, ti.xcom_pull(task_ids="deploy_campaign"), resources
            )

        # all_done: a version that was trained is recorded whatever happened after (rejected, dry
        # run, smoke test rolled back); the run still fails when a step failed.
        @task(trigger_rule="all_done", outlets=[model_asset])
        def record_history(**context):
            from airflow.sdk.exceptions import AirflowFailException

            ti = context["ti"]
            outcome = training_tasks().finish_training(
                config,
                plan=ti.xcom_pull(task_ids="plan_training", key="plan"),
                decision=ti.xcom_pull(task_ids="evaluate", key="decision"),
                challenger_arn=ti.xcom_pull(task_ids="train"),
                smoke_result=ti.xcom_pull(task_ids="smoke_test"),
                run_id=ti.run_id,
                dag_id=ti.dag_id,
            )
            if outcome.asset_extra is not None:
                context["outlet_events"][model_asset].extra = outcome.asset_extra
            if outcome.failure:
                raise AirflowFailException(outcome.failure)
            return outcome.asset_extra

        keep = keep_champion()
        smoke = smoke_test(resources.output)
        planned >> train >> evaluate() >> [deploy, keep]
        deploy >> smoke
        [smoke, keep] >> record_history()

    return train_deploy()


def build_batch_inference(config: PipelineConfig):
    output_asset = Asset(name=f"{config.name}_batch_recommendations", uri=config.s3.uri("batch") + "/")

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
### {config.name}: batch recommendations for every user
Users from the app DB -> JSON lines on S3 -> batch inference job with the solution version campaign
`{config.campaign.name}` serves (filter: {config.batch_inference.filter or "none"},
{config.batch_inference.num_results} items each) -> output under `{config.s3.uri("batch")}/<run>/output/`,
published as asset `{output_asset.name}`.
""",
    )
    def batch_inference():
        resources = ensure_resources(config)
        check_params(config, "batch_inference") >> resources

        @task(multiple_outputs=True)
        def prepare(resources: dict, **context):
            return batch_tasks().prepare_batch_inference(config, resources, context["run_id"])

        prepared = prepare(resources.output)
        job = PersonalizeCreateBatchInferenceJobOperator(
            task_id="batch_inference_job",
            job_name=prepared["job_name"],
            solution_version_arn=prepared["solution_version_arn"],
            input_path=prepared["input_path"],
            output_path=prepared["output_path"],
            filter_arn=prepared["filter_arn"],
            role_arn=config.role_arn,
            num_results=config.batch_inference.num_results,
            **aws_args(config),
        )

        @task(outlets=[output_asset])
        def publish_output(prepared: dict, job_arn: str, **context):
            extra = batch_tasks().publish_batch_output(config, prepared, job_arn)
            context["outlet_events"][output_asset].extra = extra
            return extra

        publish_output(prepared, job.output)

    return batch_inference()


# Each config on its own: a broken file builds nothing here and is reported by
# personalize_config_errors.py as that file's import error; every valid file still gets its DAGs.
for _config in load_configs_isolated().configs.values():
    build_ingest(_config)
    if _config.domain is None:  # a domain config's recommenders: dags/personalize_lifecycle.py
        build_train_deploy(_config)
        build_batch_inference(_config)
