"""Interactions extraction fanned out: one task per day, on whichever worker takes it.

`days_to_extract` (one task) lists the run's days, less those Personalize already holds whose
partition is still in S3; the ingest DAG maps `extract_day` over that list, bounded by the config's
`tasks.extract_pool` (and `tasks.extract_parallelism` per run), so a catch-up over many days spreads
over every worker. Each day writes its own `dt=` partition and ledger record to S3 and returns a
small summary by XCom: no task reads a file another task left on a worker's disk.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from include.pipeline import days
from include.pipeline.clients import ledger, personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.import_ledger import Partition, describe_files, discover_partitions
from include.pipeline.imports import read_dataset_record

log = logging.getLogger(__name__)


def days_to_extract(
    config: PipelineConfig,
    resources: Mapping[str, Any],
    interval: Mapping[str, str],
    params: Mapping[str, Any],
) -> list[str]:
    """The interval's days (YYYY-MM-DD) to extract: every day, less those an ACTIVE or running
    import job holds (Personalize is the record) whose partition is still in S3. A `full_import`
    extracts every day again: a FULL import replaces the dataset with what S3 holds then."""
    wanted = [days.partition_name(start) for start, _ in days.whole_days(interval["start"], interval["end"])]
    if params.get("full_import"):
        log.info("full_import: all %d day(s) extracted again", len(wanted))
        return [days.partition_day(name).isoformat() for name in wanted]
    s3, book = s3_client(config), ledger(config)
    arn = resources["dataset_arns"]["INTERACTIONS"]
    record = read_dataset_record(personalize_hook(config).conn, s3, book, "INTERACTIONS", arn)
    in_s3 = {p.name for p in discover_partitions(s3, book, "INTERACTIONS", config.s3.key("interactions"))}
    done = sorted(name for name in wanted if name in record.claimed and name in in_s3)
    if done:
        log.info(
            "%d of %d day(s) already extracted and held by Personalize, not extracted again: %s",
            len(done), len(wanted), done,
        )  # fmt: skip
    return [days.partition_day(name).isoformat() for name in wanted if name not in done]


def extract_day(config: PipelineConfig, day: str) -> dict:
    """Extract one day into its own partition and record it in the ledger (both on S3)."""
    from include.pipeline.extract import extract_interval
    from include.pipeline.tasks.ingest import erased_users

    try:
        start = days.day_start(date.fromisoformat(day))
    except (TypeError, ValueError) as err:
        raise ValueError(f"extract_day: day must be YYYY-MM-DD, got {day!r}") from err
    end = start + timedelta(days=1)
    s3 = s3_client(config)
    result = extract_interval(
        config.app_db_conn_id,
        config.mappings["INTERACTIONS"],
        start,
        end,
        bucket=config.s3.bucket,
        prefix=config.s3.prefix,
        s3_client=s3,
        max_rejected_share=config.datasets.max_rejected_share,
        erased_users=erased_users(config, s3),
    )
    partition = Partition(
        days.partition_name(start),
        result.written,
        describe_files(s3, config.s3.bucket, result.keys),
        result.data_prefix,
    )
    ledger(config).record_partition(
        s3, "INTERACTIONS", partition, start=result.start, end=result.end, read=result.read,
        rejected_by_reason=result.rejected_by_reason, quarantine_key=result.quarantine_key,
        erased=result.erased,
    )  # fmt: skip
    # Streaming keeps this flat whatever the day's size (bench/bench_history.py reads it).
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info(
        "extracted %s: %d rows read, %d written, %d quarantined, %d of erased users skipped; peak RSS %.0f MiB",
        partition.name, result.read, result.written, result.rejected, result.erased, peak_rss_mib,
    )  # fmt: skip
    return {
        "name": partition.name,
        "records": partition.records,
        "read": result.read,
        "rejected": result.rejected,
        "erased": result.erased,
        "bytes": result.bytes_written,
        "peak_rss_mib": round(peak_rss_mib, 1),
    }
