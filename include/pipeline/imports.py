"""Which extracted partitions to import, in how many dataset import jobs, and what was imported.

Personalize's quotas shape the plan ("Endpoints and quotas"): an import job needs at least 1000
records, an INCREMENTAL import reads at most 1 GB and a FULL one at most 100 GB. So:
- partitions too small to import are carried: they stay pending in the ledger and join the next
  run's import, never lost and never imported twice;
- partitions too large for one job are split across several jobs of balanced size (whole CSV
  files per job), run one after another;
- several partitions imported together are staged (server-side S3 copies) into one folder per
  job, because an import job reads exactly one file or folder.

The ledger lives on S3 next to the data (`PREFIX/state/`): one small JSON object per extracted
partition (its files with ETags, and record count) and one per finished import job. A partition
is imported when an import record holds its current fingerprint; a partition re-extracted with
different content (late rows) is pending again. Job names derive from the partitions and their
fingerprints, so a rerun adopts the job it already started instead of importing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from personalize_contract.names import NAME_MAX_LENGTH

from include.pipeline import rules

log = logging.getLogger(__name__)

JOB_NAME_MAX = NAME_MAX_LENGTH


class ImportPlanError(ValueError):
    pass


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
class ImportBatch:
    """One dataset import job: whole files of one or more partitions."""

    job_name: str
    import_mode: str
    partitions: dict[str, str]  # partition name -> fingerprint it imports
    files: tuple[DataFile, ...]
    records: int  # exact when the batch holds whole partitions, else estimated from bytes
    # The partition's own folder when the batch is exactly one whole partition, else None (staged).
    folder: str | None = None

    def to_dict(self) -> dict:
        return {
            "job_name": self.job_name,
            "import_mode": self.import_mode,
            "partitions": self.partitions,
            "records": self.records,
            "bytes": self.bytes,
            "files": [asdict(f) for f in self.files],
        }

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class ImportPlan:
    batches: list[ImportBatch] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # pending partitions left for a later run
    carried_records: int = 0
    up_to_date: list[str] = field(default_factory=list)  # already imported with this content
    changed: list[str] = field(default_factory=list)  # imported before, content changed since

    def describe(self) -> str:
        parts = [f"{len(self.batches)} import job(s)"]
        for batch in self.batches:
            parts.append(
                f"{batch.job_name}: {batch.import_mode}, {len(batch.partitions)} partition(s), "
                f"{batch.records} records, {batch.bytes} bytes"
            )
        if self.carried:
            parts.append(
                f"carried to the next run: {len(self.carried)} partition(s), {self.carried_records} records "
                f"(an import job needs at least {rules.MIN_IMPORT_RECORDS})"
            )
        if self.up_to_date:
            parts.append(f"already imported: {len(self.up_to_date)} partition(s)")
        if self.changed:
            parts.append(f"re-extracted with new content, imported again: {self.changed}")
        return "; ".join(parts)


def plan_imports(
    partitions: Iterable[Partition],
    imported: dict[str, str],
    *,
    job_prefix: str,
    full: bool = False,
    min_records: int = rules.MIN_IMPORT_RECORDS,
    max_incremental_bytes: int = rules.MAX_INCREMENTAL_IMPORT_BYTES,
    max_full_bytes: int = rules.MAX_FULL_IMPORT_BYTES,
) -> ImportPlan:
    """Plan import jobs for the pending partitions.

    `imported` maps partition name -> fingerprint of its last imported content. `full` asks for a
    FULL import of every partition (the dataset's bulk data is replaced): the first job is FULL,
    any further ones (data beyond the FULL size limit) INCREMENTAL.
    """
    plan = ImportPlan()
    pending: list[Partition] = []
    for partition in sorted(partitions, key=lambda p: p.name):
        if partition.records == 0:
            continue
        previous = imported.get(partition.name)
        if not full and previous == partition.fingerprint:
            plan.up_to_date.append(partition.name)
            continue
        if previous is not None and previous != partition.fingerprint:
            plan.changed.append(partition.name)
        pending.append(partition)
    total = sum(p.records for p in pending)
    if total == 0:
        return plan
    if total < min_records:
        plan.carried = [p.name for p in pending]
        plan.carried_records = total
        return plan

    first_limit = max_full_bytes if full else max_incremental_bytes
    groups = _split(pending, first_limit, max_incremental_bytes)
    for index, files in enumerate(groups):
        names = sorted({_partition_of(f, pending).name for f in files})
        records = _records(files, pending)
        mode = "FULL" if full and index == 0 else "INCREMENTAL"
        fingerprints = {p.name: p.fingerprint for p in pending if p.name in names}
        whole = [p for p in pending if p.name in names and set(p.files) == set(files)]
        folder = whole[0].folder if len(whole) == 1 and whole[0].folder else None
        plan.batches.append(
            ImportBatch(
                job_name=job_name(job_prefix, names, fingerprints, mode, index),
                import_mode=mode,
                partitions=fingerprints,
                files=tuple(files),
                records=records,
                folder=folder,
            )
        )
    return plan


def _split(pending: Sequence[Partition], first_limit: int, limit: int) -> list[list[DataFile]]:
    """Files in order, cut into balanced groups that each fit their job's byte limit."""
    files = [f for p in pending for f in sorted(p.files, key=lambda f: f.key)]
    for f in files:
        if f.size > limit and f.size > first_limit:
            raise ImportPlanError(
                f"s3 object {f.key} is {f.size} bytes, over the {limit}-byte import limit on its own; "
                "extract with a smaller chunk size"
            )
    total = sum(f.size for f in files)
    if total <= first_limit:
        return [files]
    # Balanced groups: each file goes to the group its byte midpoint falls in when the total is cut
    # into n equal spans, so every group (the last included) is near total/n and none is tiny and
    # under the minimum record count; n grows until every group fits its job's limit.
    count = max(2, math.ceil(total / limit))
    while True:
        groups: list[list[DataFile]] = [[] for _ in range(count)]
        before = 0
        for f in files:
            groups[min(count - 1, int((before + f.size / 2) * count / total))].append(f)
            before += f.size
        groups = [g for g in groups if g]
        sizes = [sum(f.size for f in g) for g in groups]
        if all(size <= (first_limit if i == 0 else limit) for i, size in enumerate(sizes)):
            return groups
        count += 1


def _partition_of(f: DataFile, pending: Sequence[Partition]) -> Partition:
    return next(p for p in pending if f in p.files)


def _records(files: Sequence[DataFile], pending: Sequence[Partition]) -> int:
    records = 0
    for partition in pending:
        inside = [f for f in partition.files if f in files]
        if not inside:
            continue
        if len(inside) == len(partition.files):
            records += partition.records
        else:
            share = sum(f.size for f in inside) / max(1, partition.bytes)
            records += round(partition.records * share)
    return records


def job_name(
    prefix: str, partitions: Sequence[str], fingerprints: dict[str, str], mode: str, index: int
) -> str:
    """Deterministic, valid Personalize name: same partitions and content -> same job."""
    digest = hashlib.sha256(json.dumps([mode, index, sorted(fingerprints.items())]).encode()).hexdigest()[:10]
    span = (
        _short(partitions[0]) if len(partitions) == 1 else f"{_short(partitions[0])}-{_short(partitions[-1])}"
    )
    suffix = f"-{span}-{digest}"
    return (prefix[: JOB_NAME_MAX - len(suffix)].rstrip("-_") + suffix)[:JOB_NAME_MAX]


def _short(partition: str) -> str:
    return partition.removeprefix("dt=").replace("-", "")


# ------------------------------------------------------------------------------------- intervals


def day_intervals(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) as whole UTC days, one per dt= partition, so partitions never overlap."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("interval bounds must be timezone-aware")
    # Plain datetimes: Airflow hands out pendulum ones, whose arithmetic mixes badly with stdlib UTC.
    start, end = (datetime.fromtimestamp(m.timestamp(), UTC) for m in (start, end))
    if end <= start:
        raise ValueError(f"empty or reversed interval: [{start.isoformat()}, {end.isoformat()})")
    for name, moment in (("start", start), ("end", end)):
        if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
            raise ValueError(
                f"interval {name} {moment.isoformat()} is not midnight UTC: interactions are extracted "
                "in whole days (one dt=YYYY-MM-DD partition per day)"
            )
    days = []
    day = start
    while day < end:
        days.append((day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return days


# ---------------------------------------------------------------------------------------- ledger


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

    # --- imports
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


def data_location(s3: Any, ledger: Ledger, dataset_type: str, batch: ImportBatch) -> str:
    """The S3 location the job reads: the partition's own folder when the batch is exactly one
    whole partition, else a staging folder holding server-side copies of the batch's files."""
    if batch.folder:
        return f"s3://{ledger.bucket}/{batch.folder.rstrip('/')}/"
    staging = ledger.staging_prefix(dataset_type, batch.job_name)
    wanted = {staging + f.key.replace("/", "_"): f for f in batch.files}
    existing = _all_files_of(s3, ledger.bucket, staging)
    for target, f in wanted.items():
        if target not in existing:
            s3.copy_object(
                Bucket=ledger.bucket, Key=target, CopySource={"Bucket": ledger.bucket, "Key": f.key}
            )
    for stale in existing - set(wanted):
        s3.delete_object(Bucket=ledger.bucket, Key=stale)
    return f"s3://{ledger.bucket}/{staging}"


def _all_files_of(s3: Any, bucket: str, folder: str) -> set[str]:
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        keys.update(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    return keys
