"""Which extracted partitions to import, in how many dataset import jobs, and what was imported.

Personalize's quotas shape the plan ("Endpoints and quotas"): an import job needs at least 1000
records, an INCREMENTAL import reads at most 1 GB and a FULL one at most 100 GB. So:
- partitions too small to import are carried: they stay pending in the ledger and join the next
  run's import, never lost and never imported twice;
- partitions too large for one job are split across several jobs of balanced size (whole CSV
  files per job), run one after another;
- several partitions imported together are staged (server-side S3 copies) into one folder per
  job, because an import job reads exactly one file or folder.

Personalize is the record of what was imported: before each job a manifest (its partitions with
content fingerprints, records, files, mode, data location) is written to
`PREFIX/manifests/<type>/<job name>.json`, and planning joins ListDatasetImportJobs with those
manifests (`read_dataset_record`): a failed job holds nothing, a pending or running one claims its
days (and is adopted), ACTIVE ones hold theirs. A partition re-extracted with different content
(late rows) is pending again. Job names derive from the partitions and their fingerprints, so a
rerun adopts the job it already started instead of importing twice.

The ledger on S3 (import_ledger.py; `PREFIX/state/`: one JSON object per extracted partition and
per finished import job) is a cache of that record: rebuilt from S3 objects and Personalize when missing, overruled with
a warning when it disagrees.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from personalize_contract.names import NAME_MAX_LENGTH

from include.pipeline import days, rules
from include.pipeline.failures import ImportPlanError
from include.pipeline.import_ledger import DataFile, Ledger, Partition

log = logging.getLogger(__name__)


JOB_NAME_MAX = NAME_MAX_LENGTH


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
    partition_records: dict[str, int] = field(default_factory=dict)  # per partition, as `records`

    def to_dict(self) -> dict:
        return {
            "job_name": self.job_name,
            "import_mode": self.import_mode,
            "partitions": self.partitions,
            "partition_records": self.partition_records,
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
        per_partition = _records(files, pending)
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
                records=sum(per_partition.values()),
                folder=folder,
                partition_records=per_partition,
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


def _records(files: Sequence[DataFile], pending: Sequence[Partition]) -> dict[str, int]:
    """Records per partition in `files`: exact for whole partitions, else estimated from bytes."""
    records = {}
    for partition in pending:
        inside = [f for f in partition.files if f in files]
        if not inside:
            continue
        if len(inside) == len(partition.files):
            records[partition.name] = partition.records
        else:
            share = sum(f.size for f in inside) / max(1, partition.bytes)
            records[partition.name] = round(partition.records * share)
    return records


def job_name(
    prefix: str, partitions: Sequence[str], fingerprints: dict[str, str], mode: str, index: int
) -> str:
    """Deterministic, valid Personalize name: same partitions and content -> same job."""
    digest = hashlib.sha256(json.dumps([mode, index, sorted(fingerprints.items())]).encode()).hexdigest()[:10]
    span = (
        days.compact(partitions[0])
        if len(partitions) == 1
        else f"{days.compact(partitions[0])}-{days.compact(partitions[-1])}"
    )
    suffix = f"-{span}-{digest}"
    return (prefix[: JOB_NAME_MAX - len(suffix)].rstrip("-_") + suffix)[:JOB_NAME_MAX]


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


# ----------------------------------------------------------------- Personalize is the record

RUNNING_STATUSES = frozenset({"CREATE PENDING", "CREATE IN_PROGRESS"})
ACTIVE = "ACTIVE"
# `{prefix}-{YYYYMMDD}[-{YYYYMMDD}]-{digest}[-aN]`: what `job_name` (and an attempt suffix) builds.
_JOB_SPAN = re.compile(r"-(\d{8})(?:-(\d{8}))?-[0-9a-f]{10}(?:-[0-9a-f]{8})?(?:-a\d+)?$")


@dataclass(frozen=True)
class ImportJob:
    """One dataset import job as Personalize reports it, joined with the manifest written before it."""

    name: str
    arn: str
    status: str
    import_mode: str
    created: datetime
    manifest: dict  # job_name (first of the attempt chain), partitions, partition_records, data_location
    source: str  # where the manifest came from: manifest, ledger, data location, job name, nothing

    @property
    def partitions(self) -> dict[str, str | None]:
        """Partition -> fingerprint of the content imported (None: unknown, no manifest)."""
        return dict(self.manifest.get("partitions") or {})

    @property
    def partition_records(self) -> dict[str, int | None]:
        known = self.manifest.get("partition_records") or {}
        return {name: known.get(name) for name in self.partitions}

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATUSES

    @property
    def failed(self) -> bool:
        return not self.running and self.status != ACTIVE


@dataclass
class DatasetRecord:
    """What one dataset holds, by Personalize's import jobs joined with their manifests."""

    jobs: list[ImportJob] = field(default_factory=list)
    # Partition -> fingerprint of its newest import that is ACTIVE or still running (None: unknown).
    claimed: dict[str, str | None] = field(default_factory=dict)
    # Partition -> records the dataset holds for it: ACTIVE jobs since the newest ACTIVE FULL one.
    held: dict[str, int] = field(default_factory=dict)
    # ACTIVE jobs whose record counts are unknown (no manifest): the held count misses them.
    unknown_counts: list[str] = field(default_factory=list)

    @property
    def active(self) -> list[ImportJob]:
        return [j for j in self.jobs if j.status == ACTIVE]

    @property
    def running(self) -> list[ImportJob]:
        return [j for j in self.jobs if j.running]

    @property
    def failed(self) -> list[ImportJob]:
        return [j for j in self.jobs if j.failed]

    @property
    def held_records(self) -> int:
        return sum(self.held.values())

    @property
    def imported(self) -> dict[str, str | None]:
        """Partitions held by ACTIVE jobs (the newest fingerprint of each)."""
        fingerprints: dict[str, str | None] = {}
        for job in self.active:
            fingerprints.update(job.partitions)
        return fingerprints


def attempt_names(job_name: str) -> list[str]:
    """Every name the import operator may give the job planned as `job_name` (NAME, NAME-a2, ...)."""
    from personalize.operators import PersonalizeCreateDatasetImportJobOperator, attempt_name

    return [
        attempt_name(job_name, attempt)
        for attempt in range(1, PersonalizeCreateDatasetImportJobOperator.MAX_ATTEMPTS + 1)
    ]


def join_jobs(
    summaries: Iterable[Mapping[str, Any]],
    manifests: Iterable[Mapping[str, Any]],
    *,
    ledger_imports: Iterable[Mapping[str, Any]] = (),
    data_location: Callable[[str], str | None] = lambda arn: None,
) -> DatasetRecord:
    """Join ListDatasetImportJobs summaries with the manifests (pure: unit-tested without AWS).

    A job without a manifest (written by an older version, or the state prefix was lost) is mapped
    by the ledger's record of its ARN, else by the dt= folder it read, else by the day span in its
    name; its content fingerprint is then unknown, which still keeps its days from being imported
    again.
    """
    by_name: dict[str, Mapping[str, Any]] = {}
    for manifest in manifests:
        for name in attempt_names(manifest["job_name"]):
            by_name.setdefault(name, manifest)
    by_arn = {r["job_arn"]: r for r in ledger_imports if r.get("job_arn")}
    jobs = []
    for summary in sorted(summaries, key=lambda s: (_moment(s["creationDateTime"]), s["jobName"])):
        name, arn = summary["jobName"], summary["datasetImportJobArn"]
        if name in by_name:
            manifest, source = dict(by_name[name]), "manifest"
        elif arn in by_arn:
            manifest, source = dict(by_arn[arn]), "ledger"
        else:
            manifest, source = _guess_manifest(name, data_location, arn)
        jobs.append(
            ImportJob(
                name=name,
                arn=arn,
                status=summary["status"],
                import_mode=summary.get("importMode") or manifest.get("import_mode") or "FULL",
                created=_moment(summary["creationDateTime"]),
                manifest=manifest,
                source=source,
            )
        )
    record = DatasetRecord(jobs=jobs)
    for job in jobs:
        if job.failed:
            continue
        if job.import_mode == "FULL":
            # A FULL import replaces the dataset's bulk data: what came before no longer counts.
            record.claimed = {}
            if job.status == ACTIVE:
                record.held, record.unknown_counts = {}, []
        record.claimed.update(job.partitions)
        if job.status == ACTIVE:
            for partition, records in job.partition_records.items():
                if records is None:
                    if job.name not in record.unknown_counts:
                        record.unknown_counts.append(job.name)
                    continue
                record.held[partition] = record.held.get(partition, 0) + int(records)
    return record


def _guess_manifest(name: str, data_location: Callable[[str], str | None], arn: str) -> tuple[dict, str]:
    location = data_location(arn) or ""
    if partition := days.partition_in_key(location):
        return {"job_name": name, "partitions": {partition: None}, "data_location": location}, "data location"
    if match := _JOB_SPAN.search(name):
        first = days.partition_day(days.from_compact(match.group(1)))
        last = days.partition_day(days.from_compact(match.group(2) or match.group(1)))
        span = [days.partition_name(first + timedelta(days=n)) for n in range((last - first).days + 1)]
        return {"job_name": name, "partitions": dict.fromkeys(span), "data_location": location}, "job name"
    return {"job_name": name, "partitions": {}, "data_location": location}, "nothing"


def _moment(value: Any) -> datetime:
    return days.to_utc(value) if not isinstance(value, (int, float)) else datetime.fromtimestamp(value, UTC)


def read_dataset_record(
    client: Any, s3: Any, ledger: Ledger, dataset_type: str, dataset_arn: str
) -> DatasetRecord:
    """ListDatasetImportJobs of the dataset joined with the manifests on S3."""
    summaries = [
        job
        for page in client.get_paginator("list_dataset_import_jobs").paginate(datasetArn=dataset_arn)
        for job in page["datasetImportJobs"]
    ]

    def location(arn: str) -> str | None:
        job = client.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]
        return (job.get("dataSource") or {}).get("dataLocation")

    return join_jobs(
        summaries,
        ledger.manifests(s3, dataset_type),
        ledger_imports=ledger.imports(s3, dataset_type),
        data_location=location,
    )


def reconcile_ledger(s3: Any, ledger: Ledger, dataset_type: str, record: DatasetRecord) -> list[str]:
    """Bring the ledger's import records (a cache) in line with Personalize; returns the warnings.

    Missing records of ACTIVE jobs are rebuilt; a ledger record whose job Personalize reports
    failed, or does not know, is overruled (and deleted) with a warning naming both sides.
    """
    warnings = []
    cached = {r["job_name"]: r for r in ledger.imports(s3, dataset_type)}
    jobs_by_arn = {job.arn: job for job in record.jobs}
    for name, cached_record in cached.items():
        job = jobs_by_arn.get(cached_record.get("job_arn", ""))
        if job is not None and not job.failed:
            continue
        what = f"is {job.status}" if job is not None else "is not one of the dataset's import jobs"
        warnings.append(
            f"the ledger says job {name} ({cached_record.get('job_arn')}) imported "
            f"{sorted(cached_record.get('partitions') or {})}; Personalize says that job {what}. "
            "Going by Personalize: those days are planned again unless another job holds them"
        )
        s3.delete_object(Bucket=ledger.bucket, Key=ledger.import_key(dataset_type, name))
    recorded = {r.get("job_arn") for r in cached.values()}
    for job in record.active:
        if job.arn in recorded:
            continue
        log.info(
            "ledger: rebuilt the record of ACTIVE job %s (%s) from Personalize and its %s",
            job.name, job.arn, job.source,
        )  # fmt: skip
        batch = {
            "job_name": job.manifest.get("job_name") or job.name,
            "import_mode": job.import_mode,
            "partitions": job.partitions,
            "partition_records": job.manifest.get("partition_records") or {},
            "records": job.manifest.get("records"),
            "dataset_type": dataset_type,
            "data_location": job.manifest.get("data_location"),
            "rebuilt_from": job.source,
        }
        ledger.record_import(s3, dataset_type, batch, job.arn)
    for warning in warnings:
        log.warning("LEDGER DISAGREES WITH PERSONALIZE: %s", warning)
    return warnings
