"""`s3.sse` / `s3.kms_key_id`: every object the pipeline writes is encrypted, read back from moto's head_object."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from include.pipeline import clients
from include.pipeline.config import CONFIG_DIR, ConfigError, load_config
from include.pipeline.history import append_record
from include.pipeline.s3_writer import MultipartObjectWriter, encrypt_writes
from tests.demo_config import one_solution

KMS_KEY = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"


def _write_every_kind_of_object(client, bucket: str) -> list[str]:
    """A multipart object of several parts, a single part one, a put_object, a copy (fresh keys each call)."""
    run = uuid.uuid4().hex[:8]
    several = MultipartObjectWriter(
        client, bucket, f"{run}/extract/part-00000.csv", part_size=16, binary=True
    )
    for n in range(10):
        several.write(f"u{n},i{n},1700000000\n".encode())
    assert several.close()
    single = MultipartObjectWriter(client, bucket, f"{run}/quarantine/rejected.csv")
    single.write("USER_ID,rule,reason\n")
    assert single.close()
    append_record(client, bucket, f"{run}/history/metrics.jsonl", {"run_id": "r1", "metric": 0.1})
    client.copy_object(
        Bucket=bucket,
        Key=f"{run}/copied.csv",
        CopySource={"Bucket": bucket, "Key": f"{run}/extract/part-00000.csv"},
    )
    return [
        f"{run}/extract/part-00000.csv",
        f"{run}/quarantine/rejected.csv",
        f"{run}/history/metrics.jsonl",
        f"{run}/copied.csv",
    ]


@pytest.mark.parametrize(("sse", "key_id"), [("AES256", None), ("aws:kms", KMS_KEY)])
def test_every_object_written_is_encrypted(s3_endpoint, s3_bucket, sse, key_id):
    import boto3

    client = encrypt_writes(
        boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1"), sse, key_id
    )
    keys = _write_every_kind_of_object(client, s3_bucket)
    for key in keys:
        head = client.head_object(Bucket=s3_bucket, Key=key)
        assert head.get("ServerSideEncryption") == sse, (key, head)
        assert head.get("SSEKMSKeyId") == key_id, (key, head)


def test_without_sse_objects_carry_no_encryption_header(s3_client, s3_bucket):
    client = encrypt_writes(s3_client, None)
    for key in _write_every_kind_of_object(client, s3_bucket):
        assert "ServerSideEncryption" not in client.head_object(Bucket=s3_bucket, Key=key)


def _config(tmp_path, **s3):
    data = one_solution(yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text(encoding="utf-8")))
    data["aws_conn_id"] = "aws_sse_test"
    data["s3"].update(s3)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def test_the_pipelines_s3_client_encrypts_as_the_config_says(tmp_path, s3_endpoint, s3_bucket, monkeypatch):
    extra = {"region_name": "us-east-1", "service_config": {"s3": {"endpoint_url": s3_endpoint}}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_SSE_TEST", json.dumps({"conn_type": "aws", "extra": extra}))
    config = _config(tmp_path, sse="aws:kms", kms_key_id=KMS_KEY)
    client = clients.s3_client(config)
    for key in _write_every_kind_of_object(client, s3_bucket):
        head = client.head_object(Bucket=s3_bucket, Key=key)
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == ("aws:kms", KMS_KEY), key


@pytest.mark.parametrize(
    ("s3", "words"),
    [
        ({"sse": "aes256"}, "s3.sse"),
        ({"sse": "AES256", "kms_key_id": KMS_KEY}, "set sse: aws:kms"),
        ({"kms_key_id": KMS_KEY}, "set sse: aws:kms"),
    ],
)
def test_bad_encryption_settings_name_the_key(tmp_path, s3, words):
    with pytest.raises(ConfigError, match="s3") as raised:
        _config(tmp_path, **s3)
    assert words in str(raised.value)
