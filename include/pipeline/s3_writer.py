"""Stream text into S3 objects by multipart upload, holding at most two parts in memory."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# S3's smallest allowed part (except the last) is 5 MiB; a little above keeps UTF-8 slack irrelevant.
DEFAULT_PART_SIZE = 8 * MIB


class MultipartObjectWriter:
    """A write-only stream (text, or bytes with binary=True) that becomes one S3 object.

    `write` buffers; each time the buffer reaches `part_size` characters it is encoded and
    uploaded as the next part on a background thread while writing continues, so upload and
    production overlap but at most one part waits in flight. Nothing reaches S3 until the first part
    is full or `close` is called; closing with nothing written creates no object.
    """

    def __init__(
        self,
        client,
        bucket: str,
        key: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        hasher=None,
        binary: bool = False,
    ):
        self._client = client
        self.bucket = bucket
        self.key = key
        self._part_size = part_size
        self._hasher = hasher
        self._binary = binary
        self._buffer = self._new_buffer()
        self._buffered = 0
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._pending: Future | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.bytes_written = 0

    def _new_buffer(self) -> io.StringIO | io.BytesIO:
        return io.BytesIO() if self._binary else io.StringIO()

    def write(self, data) -> int:
        written = self._buffer.write(data)
        self._buffered += written
        if self._buffered >= self._part_size:
            self._flush_part()
        return written

    def _flush_part(self) -> None:
        data = self._buffer.getvalue()
        if not self._binary:
            data = data.encode("utf-8")
        self._buffer = self._new_buffer()
        self._buffered = 0
        if not data:
            return
        if self._hasher is not None:
            self._hasher.update(data)
        self.bytes_written += len(data)
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv; charset=utf-8"
            )["UploadId"]
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        self._wait_pending()
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        self._pending = self._executor.submit(self._upload_part, number, data)

    def _upload_part(self, number: int, data: bytes) -> None:
        response = self._client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        self._parts[number - 1]["ETag"] = response["ETag"]

    def _wait_pending(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> bool:
        """Finish the object; False (and no object) when nothing was written."""
        try:
            self._flush_part()
            if self._upload_id is None:
                return False
            self._wait_pending()
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            return True
        except BaseException:
            self.abort()
            raise
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Drop everything uploaded so far; safe to call more than once."""
        try:
            if self._pending is not None:
                self._pending.exception()
                self._pending = None
            if self._upload_id is not None:
                upload_id, self._upload_id = self._upload_id, None
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


# Every S3 call that creates an object; UploadPart inherits CreateMultipartUpload's encryption.
_OBJECT_CREATING_CALLS = ("PutObject", "CreateMultipartUpload", "CopyObject")


def encrypt_writes(client, sse: str | None, kms_key_id: str | None = None):
    """Make every object `client` creates server-side encrypted (`AES256` or `aws:kms` + key).

    One hook on the client instead of arguments threaded through every writer: extracts, quarantine,
    manifests, history, reports and batch input all go through the client, so none can forget it.
    A call that names its own encryption keeps it. Returns the client.
    """
    if sse is None:
        return client
    extra = {"ServerSideEncryption": sse}
    if kms_key_id:
        extra["SSEKMSKeyId"] = kms_key_id

    def add_encryption(params: dict, **_) -> None:
        if "ServerSideEncryption" not in params and "SSECustomerAlgorithm" not in params:
            params.update(extra)

    for call in _OBJECT_CREATING_CALLS:
        client.meta.events.register(
            f"before-parameter-build.s3.{call}", add_encryption, unique_id=f"pipeline-sse-{call}"
        )
    return client


def list_keys(client, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def delete_keys(client, bucket: str, keys: Iterable[str]) -> list[str]:
    """Delete the keys (in batches of S3's 1000 limit); returns what was deleted."""
    keys = sorted(keys)
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            raise RuntimeError(f"could not delete from s3://{bucket}: {errors[:5]}")
    if keys:
        log.info("Deleted %d stale object(s) under s3://%s: %s", len(keys), bucket, keys[:10])
    return keys
