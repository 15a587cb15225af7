"""batch_inference per solution: one job for each batch-served solution, with its champion version.

The input is built per recipe type (include/pipeline/serving.py): every user for user recipes, every
item for related-item recipes, and every user with the `batch.num_results` most popular items to
rank for personalized-ranking. A batch-only solution has no campaign: its champion is its newest
deployed version in its metrics history (solution_tasks.champion_of).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from include.pipeline.clients import s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.extract_sql import most_active
from include.pipeline.serving import batch_input_lines
from include.pipeline.solution_tasks import champion_of

log = logging.getLogger(__name__)


def _distinct(config: PipelineConfig, field: str) -> list[str]:
    """Every USER_ID (users dataset, else interactions) or ITEM_ID (items dataset, else interactions)."""
    from include.pipeline.extract import get_source_hook
    from include.pipeline.mapping import quote_identifier

    own = "USERS" if field == "USER_ID" else "ITEMS"
    source = config.mappings.get(own) or config.mappings["INTERACTIONS"]
    column = quote_identifier(next(f.column for f in source.fields if f.field == field))
    table = ".".join(quote_identifier(part) for part in source.table.split("."))
    with closing(get_source_hook(config.app_db_conn_id).get_conn()) as connection:
        cursor = connection.cursor()
        cursor.execute(f"SELECT DISTINCT {column} FROM {table} ORDER BY {column}")
        return [str(row[0]) for row in cursor.fetchall()]


def prepare(config: PipelineConfig, name: str, resources: Mapping[str, Any], run_id: str) -> dict:
    """The solution's champion, its filter, and its input lines on S3: the job's arguments."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.s3_writer import MultipartObjectWriter

    entry = config.solution_named(name)
    batch = entry.batch
    version = champion_of(config, name)
    if not version:
        served = f"campaign {entry.campaign.name} serves" if entry.campaign else "its metrics history holds"
        raise AirflowFailException(
            f"{name}: {served} no accepted solution version yet: run {config.dag_ids['train_deploy']} first"
        )
    kind_users = entry.recipe_type != "RELATED_ITEMS"
    users = _distinct(config, "USER_ID") if kind_users else []
    if entry.recipe_type == "PERSONALIZED_RANKING":
        items = most_active(config, "ITEM_ID", batch.num_results)
    elif entry.recipe_type == "RELATED_ITEMS":
        items = _distinct(config, "ITEM_ID")
    else:
        items = []
    digest = hashlib.sha256(f"{config.name}\n{name}\n{run_id}".encode()).hexdigest()[:12]
    folder = config.s3.key("batch", name, digest)
    input_key = f"{folder}/input/{'items' if not kind_users else 'users'}.jsonl"
    writer = MultipartObjectWriter(s3_client(config), config.s3.bucket, input_key)
    count = 0
    for line in batch_input_lines(entry.recipe, users=users, items=items):
        writer.write(json.dumps(line) + "\n")
        count += 1
    writer.close()
    if count == 0:
        raise AirflowFailException(
            f"{name}: no {'users' if kind_users else 'items'} in the app database to score"
        )
    log.info("%s: %d input lines for %s -> s3://%s/%s", name, count, version, config.s3.bucket, input_key)
    return {
        "job_name": f"{config.name[:20]}-{name[:28]}-{digest}",
        "solution_version_arn": version,
        "input_path": f"s3://{config.s3.bucket}/{input_key}",
        "output_path": f"s3://{config.s3.bucket}/{folder}/output/",
        "filter_arn": resources["filter_arns"][batch.filter] if batch.filter else None,
        "users": count,
    }
