"""Amazon Personalize lifecycle DAGs for every config in include/config/ (wiring only).

`<name>_erase_users` (always: manual with a form of user IDs; on `erasure.schedule` reading the
deletion-requests table), `<name>_export` (when the config has `export:`), and for a domain config
`<name>_recommenders` (on the interactions asset) plus, with `recommender_schedule`,
`<name>_recommenders_stop` / `_start`. What each step does lives in include/pipeline/tasks/
(erasure, export, recommenders). Parsing reads only the YAML configs.
"""

from __future__ import annotations

# What the provider layer and @task build on, named here so the dag-processor imports it once, in
# its long-lived manager, rather than in the child it forks for every parse: `[dag_processor]
# parsing_pre_import_modules` reads only a DAG file's own `airflow.*` imports, and the plugin's are
# invisible to it. boto3 and friends were a third of a parse (bench_dag_parse.py --model processor).
import airflow.providers.amazon.aws.assets.s3
import airflow.providers.amazon.aws.operators.base_aws
import airflow.providers.standard.decorators.python  # noqa: F401
from airflow.sdk import CronTriggerTimetable, Param, dag, task
from personalize.operators import (
    PersonalizeCreateDataDeletionJobOperator,
    PersonalizeCreateDatasetExportJobOperator,
    PersonalizeDeployRecommenderOperator,
)

from include.pipeline.config import PipelineConfig, load_configs_isolated
from include.pipeline.dag_args import (
    aws_args,
    check_params,
    default_args,
    interactions_asset,
    task_module,
    with_form,
)


def erase_params() -> dict:
    return {
        "user_ids": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1, "maxLength": 256},
            description="The user IDs to erase, one per line. Empty: the pending rows of the deletion-requests table.",
        ),
    }


def build_erase_users(config: PipelineConfig):
    requests = config.erasure.requests
    source = (
        f"the pending rows of `{requests.table}` (`{requests.done_column}` IS NULL)"
        if requests
        else "the form only (no `erasure.requests` configured)"
    )

    @dag(
        dag_id=f"{config.name}_erase_users",
        schedule=CronTriggerTimetable(config.erasure.schedule, timezone="UTC")
        if config.erasure.schedule
        else None,
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "erasure", *config.tags],
        doc_md=f"""
### {config.name}: erase users from Personalize and from every later extract
Users: the form's **user_ids**, else {source}.
1. write the IDs to `{config.s3.uri("erasure", "users")}/<job>.csv`: from then on every extraction
   skips their rows (written nowhere, counted as `erased`), whatever the app DB still holds;
2. remove their rows from the pipeline's own S3 copies (partitions, import staging, quarantine),
   with the ledger and manifests brought in line, so a FULL import cannot bring them back;
3. CreateDataDeletionJob on `{config.dataset_group}` (named from the users: a rerun adopts it) and wait until COMPLETED;
4. audit line, once per job: `{config.s3.uri("erasure", "audit")}/<job>.json` (who, when, job ARN, counts);
5. mark the requests done in the app DB.
The next training of `{config.dag_ids["train_deploy"]}` no longer knows the users.
""",
    )
    def erase_users():
        @task.short_circuit(ignore_downstream_trigger_rules=True)
        def prepare(**context):
            prepared = task_module("tasks.erasure").prepare(config, context["params"], context)
            context["ti"].xcom_push(key="erasure", value=prepared)
            return prepared is not None

        @task
        def scrub_s3_copies(**context):
            erasure = context["ti"].xcom_pull(task_ids="prepare", key="erasure")
            return task_module("tasks.erasure").scrub_s3_copies(config, erasure)

        prepared = prepare()
        check_params(config, "erase_users", erase_params()) >> prepared
        scrubbed = scrub_s3_copies()
        erasure_xcom = "ti.xcom_pull(task_ids='prepare', key='erasure')"
        job = PersonalizeCreateDataDeletionJobOperator(
            task_id="data_deletion_job",
            job_name="{{ " + erasure_xcom + "['job_name'] }}",
            dataset_group_arn="{{ " + erasure_xcom + "['dataset_group_arn'] }}",
            data_location="{{ " + erasure_xcom + "['data_location'] }}",
            role_arn=config.role_arn,
            **aws_args(config),
        )

        @task
        def record_audit(job_arn: str, scrubbed: dict, **context):
            erasure = context["ti"].xcom_pull(task_ids="prepare", key="erasure")
            return task_module("tasks.erasure").record_audit(config, erasure, job_arn, scrubbed)

        @task
        def mark_requests_done(audit: dict, **context):
            erasure = context["ti"].xcom_pull(task_ids="prepare", key="erasure")
            return task_module("tasks.erasure").mark_requests_done(config, erasure, audit)

        audit = record_audit(job.output, scrubbed)
        prepared >> scrubbed >> job
        mark_requests_done(audit)

    return with_form(erase_users(), erase_params())


def build_export(config: PipelineConfig):
    export = config.export

    @dag(
        dag_id=f"{config.name}_export",
        schedule=CronTriggerTimetable(export.schedule, timezone="UTC"),
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "export", *config.tags],
        doc_md=f"""
### {config.name}: export every dataset of `{config.dataset_group}` to S3 (a backup)
On cron `{export.schedule}`: one CreateDatasetExportJob per dataset ({export.ingestion_mode}) named
`<dataset>-export-YYYY-MM` (a rerun in the month adopts it), to `{config.s3.uri("exports")}/YYYY-MM/<dataset>/`;
the locations are recorded in `{config.s3.uri("exports")}/YYYY-MM/index.json` and `latest.json`.
""",
    )
    def export_datasets():
        @task
        def plan_exports(**context) -> list[dict]:
            return task_module("tasks.export").plan_exports(config, context)

        jobs = plan_exports()
        check_params(config, "export", {}) >> jobs
        exported = PersonalizeCreateDatasetExportJobOperator.partial(
            task_id="dataset_export_job",
            role_arn=config.role_arn,
            ingestion_mode=export.ingestion_mode,
            **aws_args(config),
        ).expand_kwargs(jobs)

        @task
        def record_index(jobs: list[dict], job_arns: list[str]):
            return task_module("tasks.export").record_index(config, jobs, list(job_arns))

        record_index(jobs, exported.output)

    return export_datasets()


def build_recommenders(config: PipelineConfig):
    asset = interactions_asset(config)
    listed = ", ".join(f"`{r.name}` ({r.definition.title})" for r in config.recommenders)

    @dag(
        dag_id=f"{config.name}_recommenders",
        schedule=asset,
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "recommenders", *config.tags],
        doc_md=f"""
### {config.name}: the {config.domain} recommenders of `{config.dataset_group}`
Runs when `{config.dag_ids["ingest"]}` lands new interactions (asset `{asset.name}`). Recommenders:
{listed}. Each is created, or updated when its recommender_config changed, and waited on until
ACTIVE (Personalize trains it and retrains it itself); then GetRecommendations from each, the way
its use case is called, and their modelMetrics appended to `{config.s3.uri("history", "recommenders.jsonl")}`.
A recommender stopped for cost stays stopped (see `{config.name}_recommenders_start`).
""",
    )
    def recommenders():
        @task
        def find_dataset_group() -> str:
            return task_module("tasks.recommenders").dataset_group_arn(config)

        group = find_dataset_group()
        check_params(config, "recommenders", {}) >> group
        deployed = {
            recommender.name: PersonalizeDeployRecommenderOperator(
                task_id=f"deploy_{recommender.name}",
                recommender_name=recommender.name,
                dataset_group_arn=group,
                recipe=recommender.use_case,
                recommender_config=recommender.recommender_config,
                **aws_args(config),
            ).output
            for recommender in config.recommenders
        }

        @task
        def smoke_test(arns: dict):
            return task_module("tasks.recommenders").smoke_test(config, arns)

        @task
        def record_metrics(smoke: dict, **context):
            return task_module("tasks.recommenders").record_metrics(config, smoke, context["run_id"])

        record_metrics(smoke_test(deployed))

    return recommenders()


def build_recommender_schedule(config: PipelineConfig, action: str):
    cron = getattr(config.recommender_schedule, action)

    @dag(
        dag_id=f"{config.name}_recommenders_{action}",
        schedule=CronTriggerTimetable(cron, timezone="UTC"),
        start_date=config.schedule.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        tags=["personalize", "recommenders", *config.tags],
        doc_md=f"""
### {config.name}: {action} every recommender (cron `{cron}`, UTC)
A stopped recommender is not billed and answers no requests; starting it reloads its model.
Recommenders already {"stopped" if action == "stop" else "running"} are left as they are.
""",
    )
    def recommenders_stop_start():
        @task(task_id=f"{action}_recommenders")
        def change():
            return task_module("tasks.recommenders").stop_or_start(config, action)

        check_params(config, f"recommenders_{action}", {}) >> change()

    return recommenders_stop_start()


# Each valid config on its own, as in personalize_pipelines.py; broken files are reported there.
for _config in load_configs_isolated().configs.values():
    build_erase_users(_config)
    if _config.export is not None:
        build_export(_config)
    if _config.domain is not None:
        build_recommenders(_config)
        if _config.recommender_schedule is not None:
            build_recommender_schedule(_config, "stop")
            build_recommender_schedule(_config, "start")
