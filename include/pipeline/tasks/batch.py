"""The batch_inference DAG's shared task: publishing a job's output (each solution's input: solution_batch.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from include.pipeline.clients import s3_client
from include.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)


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
