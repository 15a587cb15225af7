"""Metrics history on S3: one JSON object per training run, one line each, in run order.

S3 has no append, so appending is read, add one line, write back. That is safe here because one
train_deploy run is active at a time (max_active_runs=1), and the write is conditional on the
object's ETag where the store supports it, so a concurrent writer makes the write fail loudly
instead of losing a line. Idempotent per run id: a retried or cleared task finds its line and
writes nothing. Existing lines are never rewritten.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


class HistoryError(RuntimeError):
    pass


def history_key(prefix: str, solution: str | None = None) -> str:
    """The metrics history of a pipeline's first solution (None), or of another solution by name.

    The first solution keeps the path a one-solution pipeline always had, so adding solutions to a
    config keeps its history; every other solution has a folder of its own under history/.
    """
    folder = "history" if solution is None else f"history/{solution}"
    return f"{prefix.strip('/')}/{folder}/metrics.jsonl".lstrip("/")


def history_solution(config: Any, name: str) -> str | None:
    """history_key's `solution` for a pipeline config's solution: None for its first solution (the
    one-solution path), else its name."""
    return None if name == config.solutions[0].name else name


def solution_history_key(config: Any, name: str) -> str:
    return history_key(config.s3.prefix, history_solution(config, name))


def read_history(s3_client: Any, bucket: str, key: str) -> list[dict]:
    """All records, oldest first; empty when the history does not exist yet."""
    body, _ = _read(s3_client, bucket, key)
    return _parse(body, bucket, key)


def append_record(s3_client: Any, bucket: str, key: str, record: Mapping[str, Any]) -> bool:
    """Append `record` unless a record with its run_id is already there. True when written."""
    run_id = record.get("run_id")
    if not run_id:
        raise HistoryError("a history record needs a run_id")
    body, etag = _read(s3_client, bucket, key)
    records = _parse(body, bucket, key)
    if any(r.get("run_id") == run_id for r in records):
        log.info("metrics history s3://%s/%s already has run %s; nothing written", bucket, key, run_id)
        return False
    line = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
    if body and not body.endswith(b"\n"):
        body += b"\n"
    put_args = {"Bucket": bucket, "Key": key, "Body": body + line.encode() + b"\n"}
    put_args["ContentType"] = "application/x-ndjson"
    if etag is not None:
        put_args["IfMatch"] = etag
    else:
        put_args["IfNoneMatch"] = "*"
    s3_client.put_object(**put_args)
    log.info(
        "appended run %s to metrics history s3://%s/%s (%d records)", run_id, bucket, key, len(records) + 1
    )
    return True


def _read(s3_client: Any, bucket: str, key: str) -> tuple[bytes, str | None]:
    try:
        response = s3_client.get_object(Bucket=bucket, Key=key)
    except s3_client.exceptions.NoSuchKey:
        return b"", None
    return response["Body"].read(), response.get("ETag")


def _parse(body: bytes, bucket: str, key: str) -> list[dict]:
    records = []
    for number, line in enumerate(body.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise HistoryError(f"s3://{bucket}/{key} line {number} is not JSON: {err}") from err
    return records
