"""The erase_users DAG's tasks: collect the users, write the list, audit the job, mark requests done.

A run erases a set of users with one data deletion job, named from the set itself
(`<group>-erase-<digest of the sorted IDs>`): a cleared or rerun task, or a later run for the same
users, adopts that job instead of starting another. The IDs go to `PREFIX/erasure/users/<job>.csv`
before the job starts; that file is both the job's input and part of the erased-users list every
later extraction skips (include/pipeline/erased_users.py). The audit line is one object per job,
`PREFIX/erasure/audit/<job>.json`, written once and never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.pipeline.clients import personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.erased_users import ERASED_USERS_FOLDER, user_ids_csv
from include.pipeline.mapping import quote_identifier

log = logging.getLogger(__name__)

AUDIT_FOLDER = "erasure/audit"
SCHEDULER = "scheduler"


class ErasureInputError(ValueError):
    """The run names no user to erase in a way a retry cannot fix."""


def job_name(config: PipelineConfig, user_ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(user_ids)).encode()).hexdigest()[:16]
    return f"{config.dataset_group[:40]}-erase-{digest}"


def requested_by(context: Mapping[str, Any]) -> str:
    """Who asked: the user who triggered the run, else the scheduler."""
    dag_run = context["dag_run"]
    user = getattr(dag_run, "triggering_user_name", None)
    return str(user) if user else SCHEDULER


def _table(name: str) -> str:
    return ".".join(quote_identifier(part) for part in name.split("."))


def _requests_hook(config: PipelineConfig):
    """The deletion-requests table's connection, writable (the extraction hook opens SQLite read-only)."""
    from include.pipeline.extract_sql import get_source_hook
    from include.pipeline.sqlite_hook import AppSqliteHook

    requests = config.erasure.requests
    conn_id = requests.conn_id or config.app_db_conn_id
    hook = get_source_hook(conn_id)
    return hook, isinstance(hook, AppSqliteHook)


def _connect(config: PipelineConfig):
    import sqlite3

    hook, is_sqlite = _requests_hook(config)
    if is_sqlite:
        hook.get_conn().close()  # a missing file fails naming the path
        connection = hook.connection
        return sqlite3.connect(connection.host or connection.schema), "?"
    return hook.get_conn(), "%s"


def pending_requests(config: PipelineConfig) -> list[str]:
    """User IDs of the requests not yet done, from the app DB's deletion-requests table."""
    requests = config.erasure.requests
    if requests is None:
        return []
    connection, _ = _connect(config)
    try:
        cursor = connection.cursor()
        cursor.execute(
            f"SELECT DISTINCT {quote_identifier(requests.user_id_column)} FROM {_table(requests.table)} "
            f"WHERE {quote_identifier(requests.done_column)} IS NULL"
        )
        return sorted({str(row[0]).strip() for row in cursor.fetchall() if row[0] is not None} - {""})
    finally:
        connection.close()


def prepare(config: PipelineConfig, params: Mapping[str, Any], context: Mapping[str, Any]) -> dict | None:
    """The users to erase (the form's, else the pending requests), their list on S3, and the job's name.

    None when there is nobody to erase (a scheduled run without pending requests): the run skips.
    """
    from airflow.sdk.exceptions import AirflowFailException

    given = [str(u).strip() for u in (params.get("user_ids") or []) if str(u).strip()]
    if given and any("," in u or "\n" in u or '"' in u for u in given):
        raise AirflowFailException("param user_ids: one user ID per item (no commas, quotes or line breaks)")
    user_ids = sorted(set(given)) or pending_requests(config)
    if not user_ids:
        if config.erasure.requests is None:
            raise AirflowFailException(
                "param user_ids is empty and erasure.requests is not configured: name the users to erase"
            )
        log.info("no pending deletion requests in %s: nothing to erase", config.erasure.requests.table)
        return None
    hook = personalize_hook(config)
    group_arn = hook.find_dataset_group(config.dataset_group)
    if group_arn is None:
        raise AirflowFailException(
            f"dataset group {config.dataset_group} does not exist: Personalize holds no data to erase"
        )
    if not config.role_arn:
        raise AirflowFailException("role_arn is required: CreateDataDeletionJob needs a role to read S3")
    name = job_name(config, user_ids)
    key = config.s3.key(ERASED_USERS_FOLDER, f"{name}.csv")
    # Same users, same bytes, same key: rewriting on a rerun changes nothing.
    s3_client(config).put_object(Bucket=config.s3.bucket, Key=key, Body=user_ids_csv(user_ids))
    log.info("erasing %d user(s) as job %s; list: s3://%s/%s", len(user_ids), name, config.s3.bucket, key)
    return {
        "job_name": name,
        "dataset_group_arn": group_arn,
        "data_location": f"s3://{config.s3.bucket}/{key}",
        "user_ids": user_ids,
        "requested_by": requested_by(context),
        "run_id": context["run_id"],
    }


def scrub_s3_copies(config: PipelineConfig, prepared: Mapping[str, Any]) -> dict[str, int]:
    """The users' rows out of the pipeline's own S3 copies (include/pipeline/erasure_scrub.py)."""
    from include.pipeline.erasure_scrub import scrub_copies

    return scrub_copies(config, s3_client(config), frozenset(prepared["user_ids"]))


def audit_key(config: PipelineConfig, name: str) -> str:
    return config.s3.key(AUDIT_FOLDER, f"{name}.json")


def record_audit(
    config: PipelineConfig, prepared: Mapping[str, Any], job_arn: str, scrubbed: Mapping[str, int]
) -> dict:
    """The job's audit line (who, when, job ARN, counts), written once: a rerun keeps the first."""
    s3 = s3_client(config)
    key = audit_key(config, prepared["job_name"])
    try:
        existing = s3.get_object(Bucket=config.s3.bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        existing = None
    if existing is not None:
        log.info("audit line s3://%s/%s exists (job already recorded): kept as is", config.s3.bucket, key)
        return json.loads(existing)
    job = personalize_hook(config).conn.describe_data_deletion_job(dataDeletionJobArn=job_arn)[
        "dataDeletionJob"
    ]
    finished = job.get("lastUpdatedDateTime") or datetime.now(UTC)
    line = {
        "job_name": prepared["job_name"],
        "job_arn": job_arn,
        "status": job["status"],
        "requested_by": prepared["requested_by"],
        "run_id": prepared["run_id"],
        "requested_at": _iso(job.get("creationDateTime")),
        "completed_at": _iso(finished),
        "users": len(prepared["user_ids"]),
        "records_deleted": job.get("numDeleted"),
        # Rows removed from the pipeline's own S3 copies, per folder (data, imports staging, quarantine).
        "s3_rows_removed": dict(scrubbed),
        "user_list": prepared["data_location"],
    }
    from botocore.exceptions import ClientError

    try:
        s3.put_object(
            Bucket=config.s3.bucket,
            Key=key,
            Body=json.dumps(line, sort_keys=True).encode(),
            ContentType="application/json",
            # S3 refuses the write if another try wrote the line meanwhile: the line is written once.
            IfNoneMatch="*",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            raise
        log.info("audit line s3://%s/%s was written by another try: kept as is", config.s3.bucket, key)
        return json.loads(s3.get_object(Bucket=config.s3.bucket, Key=key)["Body"].read())
    log.info("audit line s3://%s/%s: %s", config.s3.bucket, key, line)
    return line


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)


def mark_requests_done(config: PipelineConfig, prepared: Mapping[str, Any], audit: Mapping[str, Any]) -> int:
    """Set the done column of the erased users' pending requests; rows already done stay as they are."""
    requests = config.erasure.requests
    if requests is None:
        return 0
    users = list(prepared["user_ids"])
    connection, marker = _connect(config)
    try:
        cursor = connection.cursor()
        done_at = audit.get("completed_at") or datetime.now(UTC).isoformat()
        placeholders = ", ".join([marker] * len(users))
        cursor.execute(
            f"UPDATE {_table(requests.table)} SET {quote_identifier(requests.done_column)} = {marker} "
            f"WHERE {quote_identifier(requests.done_column)} IS NULL "
            f"AND {quote_identifier(requests.user_id_column)} IN ({placeholders})",
            [done_at, *users],
        )
        marked = cursor.rowcount
        connection.commit()
    finally:
        connection.close()
    log.info("marked %d deletion request(s) done in %s", marked, requests.table)
    return marked
