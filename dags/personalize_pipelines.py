"""Amazon Personalize pipelines: three DAGs for every config in include/config/ (wiring only).

`<name>_ingest`, `<name>_train_deploy`, `<name>_batch_inference`; what each step does lives in
include/pipeline/tasks/ and the solution_* modules (each solution's task group is wired in
include/pipeline/solution_dag.py). Parsing reads only the YAML configs: no network, no database. The
task modules are imported inside the task callables (`task_module("tasks.ingest")`), never at parse: the
dag-processor reparses this file every 30 s and pays only for configs and wiring
(bench/bench_dag_parse.py).
"""

from __future__ import annotations

# What the provider layer and @task build on, named here so the dag-processor imports it once, in
# its long-lived manager, rather than in the child it forks for every parse: `[dag_processor]
# parsing_pre_import_modules` reads only a DAG file's own `airflow.*` imports, and the plugin's are
# invisible to it. boto3 and friends were a third of a parse (bench_dag_parse.py --model processor).
import airflow.providers.amazon.aws.assets.s3
import airflow.providers.amazon.aws.operators.base_aws
import airflow.providers.standard.decorators.python  # noqa: F401
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    dag,
    task,
)
from personalize.operators import (
    PersonalizeCreateDatasetImportJobOperator,
    PersonalizeEnsureResourcesOperator,
)

from include.pipeline import batch_schedule, solution_dag
from include.pipeline.config import PipelineConfig, load_configs_isolated, tolerance_text
from include.pipeline.dag_args import (
    aws_args,
    check_params,
    default_args,
    interactions_asset,
    task_module,
    with_form,
)
from include.pipeline.domain_config import domain_create_kwargs
from include.pipeline.params import dag_params


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
    )
    def ingest():
        @task
        def resolve_interval(**context) -> dict:
            return task_module("tasks.ingest").resolve_interval(config, context)

        @task
        def plan_extraction(resources: dict, interval: dict, **context) -> list[str]:
            return task_module("extract_days").days_to_extract(config, resources, interval, context["params"])

        # One task per day, on any worker: each writes its own partition and ledger record to S3.
        @task(pool=config.tasks.extract_pool, max_active_tis_per_dagrun=config.tasks.extract_parallelism)
        def extract_interactions(day: str) -> dict:
            return task_module("extract_days").extract_day(config, day)

        @task
        def extract_snapshots(interval: dict) -> dict:
            return task_module("tasks.ingest").extract_snapshots(config, interval)

        interval = resolve_interval()
        check_params(config, "ingest") >> interval
        resources = ensure_resources(config)
        if config.metric_attribution is not None:

            @task
            def ensure_metric_attribution(resources: dict) -> str:
                return task_module("tasks.metric_attribution").ensure_metric_attribution(config, resources)

            ensure_metric_attribution(resources.output)
        extracted = extract_interactions.expand(day=plan_extraction(resources.output, interval))
        snapshots = extract_snapshots(interval)

        # none_failed: runs when every day was extracted before (no mapped task: skipped).
        @task(trigger_rule="none_failed")
        def plan_imports(resources: dict, snapshots: dict, **context) -> list[dict]:
            plan = task_module("tasks.ingest").plan_dataset_imports(
                config, resources, snapshots, context["params"]
            )
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
            extra = task_module("tasks.ingest").record_imports(
                config, plan, [arns] if isinstance(arns, str) else list(arns), interval
            )
            if extra is None:
                raise AirflowSkipException("no new interactions landed in this run: asset not published")
            context["outlet_events"][asset].extra = extra
            return extra

        # none_failed: runs after a published or skipped asset, never hides a failed import.
        @task(trigger_rule="none_failed")
        def reconcile(interval: dict):
            return task_module("tasks.ingest").reconcile_ingest(config, interval)

        published = publish_interactions(interval)
        imported >> published >> reconcile(interval)

    return with_form(ingest(), dag_params(config, "ingest"))


def build_train_deploy(config: PipelineConfig):
    asset = interactions_asset(config)
    model_asset = Asset(name=f"{config.name}_model", uri=config.s3.uri("history") + "/")
    solutions = "\n".join(
        f"- `{s.name}` ({s.recipe}): gate `{s.gate.metric}` thresholds {dict(s.gate.thresholds)}, tolerance "
        f"{tolerance_text(s.gate.tolerance)}"
        + (f", at least {s.gate.min_lift:g}x the popularity baseline" if s.gate.baseline else "")
        + (f"; replay over {s.gate.holdout_days} held-out days" if s.gate.evaluation == "replay" else "")
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

A solution whose gate has `evaluation: replay` is judged by replay instead, in its own group: its
challenger waits until `holdout_days` newer days are imported, then it, its champion and (with a
baseline) the baseline are scored by batch inference on the same users and days; see
docs/DESIGN.md, "Replay evaluation".

{solutions}
""",
    )
    def train_deploy():
        resources = ensure_resources(config)
        check_params(config, "train_deploy") >> resources
        solution_dag.train_deploy_solutions(config, resources, model_asset, aws_args(config))

    return with_form(train_deploy(), dag_params(config, "train_deploy"))


def build_batch_inference(config: PipelineConfig):
    output_asset = Asset(name=f"{config.name}_batch_recommendations", uri=config.s3.uri("batch") + "/")
    served = [s for s in config.solutions if s.batch is not None]
    crons = batch_schedule.solution_crons(config)
    listed = "\n".join(
        f"- `{s.name}` ({s.recipe}): {s.batch.num_results} results, filter {s.batch.filter or 'none'}, "
        f"cron `{crons[s.name] or 'manual runs only'}`"
        for s in served
    )

    @dag(
        dag_id=config.dag_ids["batch_inference"],
        schedule=batch_schedule.timetable(config),
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "batch", *config.tags],
        doc_md=f"""
### {config.name}: batch recommendations, one job per batch-served solution
Fires on each solution's cron (`batch.schedule`, default `schedule.batch_inference`); a scheduled run
runs the solutions whose cron fired (the others' `due` task skips them), a manual run every one.
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
            solution_dag.batch_group(config, entry, resources.output, output_asset, aws_args(config))

    return batch_inference()


# Each config on its own: a broken file builds nothing here and is reported by
# personalize_config_errors.py as that file's import error; every valid file still gets its DAGs.
for _config in load_configs_isolated().configs.values():
    build_ingest(_config)
    if _config.domain is None:  # a domain config's recommenders: dags/personalize_lifecycle.py
        build_train_deploy(_config)
        build_batch_inference(_config)
