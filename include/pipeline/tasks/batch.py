"""The batch_inference DAG's tasks: the users to score, and publishing the job's output."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from include.pipeline.clients import personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.mapping import quote_identifier

log = logging.getLogger(__name__)


def prepare_batch_inference(config: PipelineConfig, resources: Mapping[str, Any], run_id: str) -> dict:
    """Serving version, filter, and the users to score as JSON lines on S3."""
    import hashlib

    from include.pipeline.extract_sql import get_source_hook
    from include.pipeline.s3_writer import MultipartObjectWriter

    hook = personalize_hook(config)
    version = hook.get_serving_solution_version(config.campaign.name)
    if not version:
        raise RuntimeError(
            f"campaign {config.campaign.name} serves no solution version yet: run {config.dag_ids['train_deploy']} first"
        )
    digest = hashlib.sha256(f"{config.name}\n{run_id}".encode()).hexdigest()[:12]
    folder = config.s3.key("batch", digest)
    input_key = f"{folder}/input/users.jsonl"
    source = config.mappings.get("USERS") or config.mappings["INTERACTIONS"]
    column = quote_identifier(next(f.column for f in source.fields if f.field == "USER_ID"))
    table = ".".join(quote_identifier(part) for part in source.table.split("."))
    sql = f"SELECT DISTINCT {column} FROM {table} ORDER BY {column}"
    s3 = s3_client(config)
    writer = MultipartObjectWriter(s3, config.s3.bucket, input_key)
    count = 0
    with closing(get_source_hook(config.app_db_conn_id).get_conn()) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(10_000):
            for (user_id,) in rows:
                writer.write(json.dumps({"userId": str(user_id)}) + "\n")
                count += 1
    writer.close()
    if count == 0:
        raise RuntimeError(f"no users found in {source.table}: nothing to score")
    filter_arn = (
        resources["filter_arns"][config.batch_inference.filter] if config.batch_inference.filter else None
    )
    log.info("%d users to score with %s -> s3://%s/%s", count, version, config.s3.bucket, input_key)
    return {
        "job_name": f"{config.name[:40]}-batch-{digest}",
        "solution_version_arn": version,
        "input_path": f"s3://{config.s3.bucket}/{input_key}",
        "output_path": f"s3://{config.s3.bucket}/{folder}/output/",
        "filter_arn": filter_arn,
        "users": count,
    }


def publish_batch_output(config: PipelineConfig, prepared: Mapping[str, Any], job_arn: str) -> dict:
    s3 = s3_client(config)
    output = prepared["output_path"]
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    if not keys:
        raise RuntimeError(f"batch inference job {job_arn} finished but wrote nothing under {output}")
    log.info("batch recommendations for %d users: %s (%s)", prepared["users"], output, ", ".join(keys))
    return {"output_path": output, "objects": keys, "job_arn": job_arn, "users": prepared["users"],
            "solution_version_arn": prepared["solution_version_arn"]}  # fmt: skip
