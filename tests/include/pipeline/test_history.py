"""Metrics history on S3: append-only JSON lines, idempotent per run id."""

from __future__ import annotations

import pytest

from include.pipeline.history import HistoryError, append_record, history_key, read_history


def test_key_sits_under_the_prefix():
    assert history_key("demo_retail/") == "demo_retail/history/metrics.jsonl"
    assert history_key("") == "history/metrics.jsonl"


def test_missing_history_reads_as_empty(s3_client, s3_bucket):
    assert read_history(s3_client, s3_bucket, "p/history/metrics.jsonl") == []


def test_appends_in_order_and_keeps_earlier_lines_byte_identical(s3_client, s3_bucket):
    key = history_key("p")
    assert append_record(s3_client, s3_bucket, key, {"run_id": "r1", "metrics": {"precision_at_25": 0.1}})
    first = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert append_record(s3_client, s3_bucket, key, {"run_id": "r2", "verdict": "REJECTED"})
    second = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert second.startswith(first) and second.count(b"\n") == 2
    assert [r["run_id"] for r in read_history(s3_client, s3_bucket, key)] == ["r1", "r2"]


def test_same_run_id_is_written_once(s3_client, s3_bucket):
    key = history_key("p")
    assert append_record(s3_client, s3_bucket, key, {"run_id": "r1", "attempt": 1})
    assert not append_record(s3_client, s3_bucket, key, {"run_id": "r1", "attempt": 2})
    assert read_history(s3_client, s3_bucket, key) == [{"run_id": "r1", "attempt": 1}]


def test_record_without_run_id_is_refused(s3_client, s3_bucket):
    with pytest.raises(HistoryError, match="run_id"):
        append_record(s3_client, s3_bucket, history_key("p"), {"metrics": {}})


def test_corrupt_line_is_reported_with_its_number(s3_client, s3_bucket):
    key = history_key("p")
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b'{"run_id": "r1"}\nnot json\n')
    with pytest.raises(HistoryError, match="line 2 is not JSON"):
        read_history(s3_client, s3_bucket, key)
