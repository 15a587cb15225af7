"""Erasure on the pipeline's own S3 copies: the rows of erased users leave every CSV it wrote.

Personalize's data deletion job erases the users from the dataset group; the pipeline holds copies
too (the `dt=` partitions, the import staging folders, the quarantine), and a FULL import reads the
partitions again. So the erasure DAG removes the users' lines from each of those files, keeping
every other line byte for byte, and brings the record of what was imported in line with what the
partitions now hold: each changed partition's ledger record (records, files, `erased`) and each
manifest that imported it (fingerprint, records). The import plan then sees those days as imported
(their fingerprints match) and reconcile counts the removed rows as erased.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from typing import Any

from include.pipeline import days
from include.pipeline.clients import ledger
from include.pipeline.config import PipelineConfig
from include.pipeline.erased_users import USER_ID
from include.pipeline.import_ledger import Partition, describe_files
from include.pipeline.s3_writer import list_keys

log = logging.getLogger(__name__)

USER_DATASETS = ("INTERACTIONS", "USERS")


def _without_users(body: str, users: frozenset[str]) -> tuple[str, int]:
    """The CSV text without the lines of `users` (other lines unchanged), and how many went."""
    lines = body.splitlines(keepends=True)
    if not lines:
        return body, 0
    header = next(csv.reader([lines[0]]))
    if USER_ID not in header:
        return body, 0
    index = header.index(USER_ID)
    kept = [lines[0]]
    for line in lines[1:]:
        values = next(csv.reader([line]), [])
        if len(values) > index and values[index] in users:
            continue
        kept.append(line)
    return "".join(kept), len(lines) - len(kept)


def scrub_copies(config: PipelineConfig, s3: Any, users: frozenset[str]) -> dict[str, int]:
    """Remove the users' rows from every CSV under the pipeline's data, staging and quarantine
    folders; returns the rows removed per folder kind (`interactions`, `imports`, `quarantine`, ...)."""
    bucket = config.s3.bucket
    removed: Counter[str] = Counter()
    per_partition: Counter[str] = Counter()
    for dataset_type in USER_DATASETS:
        if dataset_type not in config.mappings:
            continue
        folder = dataset_type.lower()
        for kind, prefix in (
            (folder, config.s3.key(folder)),
            ("imports", config.s3.key("imports", folder)),
            ("quarantine", config.s3.key("quarantine", folder)),
        ):
            for key in list_keys(s3, bucket, prefix.rstrip("/") + "/"):
                if not key.endswith(".csv"):
                    continue
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
                kept, count = _without_users(body, users)
                if not count:
                    continue
                s3.put_object(Bucket=bucket, Key=key, Body=kept.encode("utf-8"))
                removed[kind] += count
                if dataset_type == "INTERACTIONS" and kind == folder:
                    partition = days.partition_in_key(key)
                    if partition:
                        per_partition[partition] += count
    if per_partition:
        _update_records(config, s3, dict(per_partition))
    log.info("removed the erased users' rows from the pipeline's S3 copies: %s", dict(removed))
    return dict(removed)


def _update_records(config: PipelineConfig, s3: Any, per_partition: dict[str, int]) -> None:
    """Ledger records and manifests of the changed INTERACTIONS partitions, as they are now."""
    book = ledger(config)
    cached = {p.name: p for p in book.partitions(s3, "INTERACTIONS")}
    erased_before = book.erased_rows(s3, "INTERACTIONS")
    fingerprints = {}
    for name, count in per_partition.items():
        folder = config.s3.key("interactions", name) + "/"
        files = describe_files(
            s3, config.s3.bucket, [k for k in list_keys(s3, config.s3.bucket, folder) if k.endswith(".csv")]
        )
        old = cached.get(name)
        records = (old.records - count) if old is not None else None
        if records is None:
            from include.pipeline.import_ledger import count_csv_rows

            records = sum(count_csv_rows(s3, config.s3.bucket, f.key) for f in files)
        partition = Partition(name, records, files, folder)
        book.record_partition(s3, "INTERACTIONS", partition, erased=erased_before.get(name, 0) + count)
        fingerprints[name] = partition.fingerprint
    for manifest in book.manifests(s3, "INTERACTIONS"):
        touched = [n for n in per_partition if n in (manifest.get("partitions") or {})]
        if not touched:
            continue
        counts = manifest.get("partition_records") or {}
        for name in touched:
            manifest["partitions"][name] = fingerprints[name]
            if name in counts:
                counts[name] = max(0, counts[name] - per_partition[name])
        if isinstance(manifest.get("records"), int):
            manifest["records"] = max(0, manifest["records"] - sum(per_partition[n] for n in touched))
        manifest["erased_rows"] = manifest.get("erased_rows", 0) + sum(per_partition[n] for n in touched)
        s3.put_object(
            Bucket=config.s3.bucket,
            Key=book.manifest_key("INTERACTIONS", manifest["job_name"]),
            Body=json.dumps(manifest, sort_keys=True).encode(),
            ContentType="application/json",
        )
