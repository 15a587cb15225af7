"""The export DAG's tasks: one dataset export job per dataset and month, and the index of where they went.

Job names are `<dataset>-export-YYYY-MM` (the run's month): a cleared task or a second run in the
same month adopts the month's jobs instead of exporting (and paying) again. Output goes to
`PREFIX/exports/YYYY-MM/<dataset type>/`; `PREFIX/exports/YYYY-MM/index.json` records each job's ARN,
status and location, and `PREFIX/exports/latest.json` is the newest index.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from include.pipeline.clients import personalize_hook, s3_client
from include.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

EXPORTS_FOLDER = "exports"
NAME_MAX_LENGTH = 63


def export_month(context: Mapping[str, Any]) -> str:
    """The month a run exports for: its logical date's (a manual run: when it was triggered)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(UTC).strftime("%Y-%m")


def export_job_name(dataset_name: str, month: str) -> str:
    suffix = f"-export-{month}"
    return dataset_name[: NAME_MAX_LENGTH - len(suffix)].rstrip("-_") + suffix


def plan_exports(config: PipelineConfig, context: Mapping[str, Any]) -> list[dict]:
    """The operator's kwargs for every dataset of the group (none when the group does not exist yet)."""
    from airflow.sdk.exceptions import AirflowFailException

    if not config.role_arn:
        raise AirflowFailException("role_arn is required: CreateDatasetExportJob needs a role to write S3")
    hook = personalize_hook(config)
    group_arn = hook.find_dataset_group(config.dataset_group)
    if group_arn is None:
        raise AirflowFailException(
            f"dataset group {config.dataset_group} does not exist: run the ingest DAG first"
        )
    month = export_month(context)
    datasets = hook.conn.list_datasets(datasetGroupArn=group_arn)["datasets"]
    jobs = []
    for dataset in sorted(datasets, key=lambda d: d["datasetType"]):
        dataset_type = dataset["datasetType"].upper()
        jobs.append(
            {
                "job_name": export_job_name(dataset["name"], month),
                "dataset_arn": dataset["datasetArn"],
                "output_path": config.s3.uri(EXPORTS_FOLDER, month, dataset_type.lower()) + "/",
            }
        )
    log.info("exporting %d dataset(s) for %s: %s", len(jobs), month, [j["job_name"] for j in jobs])
    return jobs


def record_index(config: PipelineConfig, jobs: Sequence[Mapping[str, Any]], job_arns: Sequence[str]) -> dict:
    """`PREFIX/exports/YYYY-MM/index.json` (and `latest.json`): where each dataset's export is."""
    client = personalize_hook(config).conn
    month = jobs[0]["output_path"].rstrip("/").split("/")[-2] if jobs else None
    datasets = {}
    for job, arn in zip(jobs, job_arns, strict=True):
        described = client.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]
        dataset_type = job["output_path"].rstrip("/").rsplit("/", 1)[-1].upper()
        datasets[dataset_type] = {
            "job_name": described["jobName"],
            "job_arn": arn,
            "status": described["status"],
            "ingestion_mode": described.get("ingestionMode"),
            "dataset_arn": job["dataset_arn"],
            "location": job["output_path"],
        }
    index = {
        "config": config.name,
        "dataset_group": config.dataset_group,
        "month": month,
        "recorded_at": datetime.now(UTC).isoformat(),
        "datasets": datasets,
    }
    s3 = s3_client(config)
    body = json.dumps(index, sort_keys=True, indent=1).encode()
    for key in (
        config.s3.key(EXPORTS_FOLDER, str(month), "index.json"),
        config.s3.key(EXPORTS_FOLDER, "latest.json"),
    ):
        s3.put_object(Bucket=config.s3.bucket, Key=key, Body=body, ContentType="application/json")
    log.info("export index for %s: %s", month, json.dumps(datasets, sort_keys=True))
    return index
