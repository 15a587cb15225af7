from __future__ import annotations

import hashlib

import pytest

from include.pipeline.s3_writer import MultipartObjectWriter, delete_keys, list_keys


def test_text_streams_into_one_object_by_several_parts(s3_client, s3_bucket):
    hasher = hashlib.sha256()
    writer = MultipartObjectWriter(s3_client, s3_bucket, "a/b.csv", part_size=10, hasher=hasher)
    lines = [f"row {n}, é\n" for n in range(20)]
    for line in lines:
        writer.write(line)
    assert writer.close() is True
    body = s3_client.get_object(Bucket=s3_bucket, Key="a/b.csv")["Body"].read()
    assert body == "".join(lines).encode()
    assert writer.bytes_written == len(body)
    assert hasher.hexdigest() == hashlib.sha256(body).hexdigest()
    etag = s3_client.head_object(Bucket=s3_bucket, Key="a/b.csv")["ETag"]
    assert int(etag.strip('"').split("-")[1]) > 10  # a part each time 10 characters were buffered


def test_nothing_written_makes_no_object(s3_client, s3_bucket):
    assert MultipartObjectWriter(s3_client, s3_bucket, "empty.csv").close() is False
    assert list_keys(s3_client, s3_bucket, "") == []


class FailingClient:
    """Passes everything to S3 but fails the second part upload, as a dropped connection would."""

    def __init__(self, client):
        self._client = client
        self.parts = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_part(self, **kwargs):
        self.parts += 1
        if self.parts == 2:
            raise ConnectionError("connection reset")
        return self._client.upload_part(**kwargs)


def test_failed_upload_is_aborted_and_leaves_nothing(s3_client, s3_bucket):
    writer = MultipartObjectWriter(FailingClient(s3_client), s3_bucket, "x.csv", part_size=4, binary=True)
    with pytest.raises(ConnectionError):
        for _ in range(5):
            writer.write(b"12345")
        writer.close()
    writer.abort()
    assert list_keys(s3_client, s3_bucket, "") == []
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_delete_keys_removes_exactly_those(s3_client, s3_bucket):
    for key in ("p/1", "p/2", "q/1"):
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    assert delete_keys(s3_client, s3_bucket, {"p/2", "q/1"}) == ["p/2", "q/1"]
    assert list_keys(s3_client, s3_bucket, "") == ["p/1"]
