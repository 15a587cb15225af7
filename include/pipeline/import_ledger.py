"""The import ledger on S3 (`PREFIX/state/`, and the manifests under `PREFIX/manifests/`) and the
extracted partitions it records: their files (size and ETag, read from S3), rebuilt from the objects
themselves when a record is missing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from include.pipeline import days

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFile:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Partition:
    """One extracted partition (`dt=YYYY-MM-DD` for interactions) and its CSV files."""

    name: str
    records: int
    files: tuple[DataFile, ...] = ()
    folder: str = ""  # the S3 folder holding exactly `files`

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a file's content changes (ETags are content hashes)."""
        digest = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.key):
            digest.update(f"{f.key}\0{f.size}\0{f.etag}\n".encode())
        return digest.hexdigest()[:16]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "records": self.records,
            "files": [asdict(f) for f in self.files],
            "folder": self.folder,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Partition:
        files = tuple(DataFile(**f) for f in data["files"])
        return cls(data["name"], int(data["records"]), files, data.get("folder", ""))


@dataclass(frozen=True)
class Ledger:
    """Where the import state of one pipeline lives on S3."""

    bucket: str
    prefix: str

    def _key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, "state", *parts) if p.strip("/"))

    def partition_key(self, dataset_type: str, partition: str) -> str:
        return self._key(dataset_type.lower(), "partitions", f"{partition}.json")

    def import_key(self, dataset_type: str, job_name: str) -> str:
        return self._key(dataset_type.lower(), "imports", f"{job_name}.json")

    def manifest_key(self, dataset_type: str, job_name: str) -> str:
        # Outside state/: the manifests are the record (with Personalize), state/ only a cache.
        return "/".join(
            p.strip("/")
            for p in (self.prefix, "manifests", dataset_type.lower(), f"{job_name}.json")
            if p.strip("/")
        )

    def staging_prefix(self, dataset_type: str, job_name: str) -> str:
        return "/".join(p for p in (self.prefix, "imports", dataset_type.lower(), job_name) if p) + "/"

    # --- partitions
    def record_partition(self, s3: Any, dataset_type: str, partition: Partition, **extra: Any) -> None:
        body = {**partition.to_dict(), "fingerprint": partition.fingerprint, **extra}
        s3.put_object(
            Bucket=self.bucket,
            Key=self.partition_key(dataset_type, partition.name),
            Body=json.dumps(body, sort_keys=True).encode(),
            ContentType="application/json",
        )

    def partitions(self, s3: Any, dataset_type: str) -> list[Partition]:
        return [
            Partition.from_dict(doc)
            for doc in self._read_all(s3, self._key(dataset_type.lower(), "partitions"))
        ]

    def erased_rows(self, s3: Any, dataset_type: str) -> dict[str, int]:
        """Partition name -> rows of erased users its last extraction skipped (none recorded: 0)."""
        return {
            doc["name"]: int(doc.get("erased", 0))
            for doc in self._read_all(s3, self._key(dataset_type.lower(), "partitions"))
        }

    # --- manifests: written before CreateDatasetImportJob, so every job maps back to its days
    def write_manifest(self, s3: Any, dataset_type: str, manifest: dict) -> str:
        key = self.manifest_key(dataset_type, manifest["job_name"])
        body = {**manifest, "dataset_type": dataset_type, "written_at": datetime.now(UTC).isoformat()}
        s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(body, sort_keys=True).encode(),
            ContentType="application/json",
        )
        return key

    def manifests(self, s3: Any, dataset_type: str) -> list[dict]:
        return self._read_all(s3, self.manifest_key(dataset_type, "x").rsplit("/", 1)[0])

    # --- imports (a cache of what Personalize holds, rebuilt from it when missing)
    def record_import(self, s3: Any, dataset_type: str, batch: dict, job_arn: str) -> None:
        body = {**batch, "job_arn": job_arn, "recorded_at": datetime.now(UTC).isoformat()}
        s3.put_object(
            Bucket=self.bucket,
            Key=self.import_key(dataset_type, batch["job_name"]),
            Body=json.dumps(body, sort_keys=True).encode(),
            ContentType="application/json",
        )

    def imports(self, s3: Any, dataset_type: str) -> list[dict]:
        return sorted(
            self._read_all(s3, self._key(dataset_type.lower(), "imports")), key=lambda d: d["recorded_at"]
        )

    def imported_fingerprints(self, s3: Any, dataset_type: str) -> dict[str, str]:
        """Partition -> fingerprint of its most recently imported content."""
        fingerprints: dict[str, str] = {}
        for record in self.imports(s3, dataset_type):
            fingerprints.update(record["partitions"])
        return fingerprints

    def _read_all(self, s3: Any, folder: str) -> list[dict]:
        documents = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder + "/"):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                documents.append(json.loads(body))
        return documents


def describe_files(s3: Any, bucket: str, keys: Iterable[str]) -> tuple[DataFile, ...]:
    """Size and ETag of each object, read from S3 (the ETag is what tells changed content)."""
    files = []
    for key in sorted(keys):
        head = s3.head_object(Bucket=bucket, Key=key)
        files.append(DataFile(key, int(head["ContentLength"]), head["ETag"].strip('"')))
    return tuple(files)


def discover_partitions(s3: Any, ledger: Ledger, dataset_type: str, data_prefix: str) -> list[Partition]:
    """Every dt= partition of the dataset's history in S3, from the ledger or, when its record is
    missing, from the objects themselves (rows counted), and the record rebuilt."""
    known = {p.name: p for p in ledger.partitions(s3, dataset_type)}
    folders: dict[str, list[DataFile]] = {}
    # One listing gives every object's size and ETag (the same ETag HeadObject reports).
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=ledger.bucket, Prefix=data_prefix.rstrip("/") + "/"
    )
    for obj in (o for page in pages for o in page.get("Contents", [])):
        partition = days.partition_in_key(obj["Key"])
        if partition and obj["Key"].endswith(".csv"):
            data_file = DataFile(obj["Key"], int(obj["Size"]), obj["ETag"].strip('"'))
            folders.setdefault(partition, []).append(data_file)
    partitions = []
    for name, listed in sorted(folders.items()):
        files = tuple(sorted(listed, key=lambda f: f.key))
        cached = known.get(name)
        if cached is not None and set(cached.files) == set(files):
            partitions.append(cached)
            continue
        records = sum(count_csv_rows(s3, ledger.bucket, f.key) for f in files)
        folder = f"{data_prefix.rstrip('/')}/{name}/"
        partition = Partition(name, records, files, folder)
        log.info("ledger: rebuilt partition %s from S3 (%d records in %d file(s))", name, records, len(files))
        ledger.record_partition(s3, dataset_type, partition, rebuilt_from="s3")
        partitions.append(partition)
    return partitions


def count_csv_rows(s3: Any, bucket: str, key: str) -> int:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    return max(0, sum(1 for _ in csv.reader(io.StringIO(body))) - 1)  # minus the header
