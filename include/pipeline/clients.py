"""The pipeline's clients of S3 and Personalize, and its import ledger, from a config's connection.

A module of their own so every pipeline module (tasks, reconcile, ...) reaches them without
importing each other.
"""

from __future__ import annotations

from include.pipeline.config import PipelineConfig
from include.pipeline.import_ledger import Ledger


def s3_client(config: PipelineConfig):
    """The pipeline's S3 client: every object it writes gets the config's `s3.sse` encryption."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include.pipeline.s3_writer import encrypt_writes

    client = S3Hook(aws_conn_id=config.aws_conn_id, region_name=config.region_name).get_conn()
    return encrypt_writes(client, config.s3.sse, config.s3.kms_key_id)


def personalize_hook(config: PipelineConfig):
    from personalize.hooks import PersonalizeHook

    return PersonalizeHook(aws_conn_id=config.aws_conn_id, region_name=config.region_name)


def runtime_client(config: PipelineConfig):
    from personalize.hooks import PersonalizeRuntimeHook

    return PersonalizeRuntimeHook(aws_conn_id=config.aws_conn_id, region_name=config.region_name).conn


def ledger(config: PipelineConfig) -> Ledger:
    return Ledger(config.s3.bucket, config.s3.prefix)
