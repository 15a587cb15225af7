"""What the Personalize view shows, read only from what the pipeline writes and from Personalize.

Sources, per pipeline (one config file in include/config) and per solution of its `solutions:`:
- each solution's metrics history: ``PREFIX/history/metrics.jsonl`` for the first solution,
  ``PREFIX/history/<solution>/metrics.jsonl`` for the others (include/pipeline/history.py), parsed
  with the run report's own parser, so champion and "deployed" mean what the reports say;
- ``.../reports/<run>/`` beside each history: each run's report, linked (and served) as written;
- ``PREFIX/state/interactions/partitions/``: the import ledger's partition records (read,
  written, rejected per day) for the last ingest;
- ``PREFIX/reconcile/latest.json``: the reconcile step's per-day table, when it has run;
- Personalize, for the campaign-served solutions: one ListCampaigns for the pipeline, then per
  campaign DescribeCampaign (what serves) and the serving version's DescribeSolutionVersion (its
  age). A batch-only solution's champion is its newest deployed version in its history (no call).

Reading all of that takes S3 and Personalize round trips, done in parallel and cached per pipeline
for ``CACHE_TTL_SECONDS``; the page says how old the snapshot is. Errors are kept per source and
shown without their text, which can carry endpoint URLs (connection details); the full error is logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.pipeline.config import PipelineConfig, SolutionEntry
    from include.pipeline.report import Run

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 60.0
# Creating a boto3 client costs about as much as all of a page's reads (botocore loads its service
# model), so clients are reused per connection; refreshable credentials renew themselves inside.
CLIENT_TTL_SECONDS = 600.0
# Reads of one page's sources at a time (each solution's history and campaign, ledger, reconcile):
# they wait on the network, so a pipeline with several solutions loads about as fast as one.
MAX_PARALLEL_READS = 8
# Consecutive rejected challengers (newest first) that make an alert.
REPEATED_REJECTIONS = 2
# The share by which the imported records may trail the app DB before the shrink alert, unless the
# config's gate carries its own `max_data_shrink` (the training shrink guard's setting).
DEFAULT_MAX_DATA_SHRINK = 0.05
# Ledger partition records written further apart than this belong to different ingest runs.
INGEST_RUN_GAP_SECONDS = 15 * 60
# How long after an ingest period ends its data may still be on its way before the freshness alert.
INGEST_GRACE = timedelta(hours=6)


@dataclass(frozen=True)
class Serving:
    campaign_name: str
    campaign_status: str | None  # None: no such campaign
    version_arn: str | None
    version_created: datetime | None

    @property
    def version_id(self) -> str | None:
        return self.version_arn.rsplit("/", 1)[-1] if self.version_arn else None

    def age_days(self, now: datetime) -> float | None:
        if self.version_created is None:
            return None
        return (now - self.version_created).total_seconds() / 86400


@dataclass(frozen=True)
class Ingest:
    """The partitions the newest ingest run recorded in the ledger."""

    days: tuple[str, ...]
    read: int | None
    written: int
    rejected: int | None
    recorded_at: datetime


@dataclass(frozen=True)
class Alert:
    kind: str  # shrink | stale | rejections | freshness | serving | reconcile
    text: str


@dataclass
class SolutionView:
    """One solution of a pipeline: its metrics history and, when a campaign serves it, the campaign."""

    entry: SolutionEntry
    # history_key's `solution`: None for the pipeline's first (the one-solution path), else its name.
    history_solution: str | None
    runs: list[Run] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    serving: Serving | None = None  # campaign-served solutions only
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def serving_modes(self) -> list[str]:
        """How the solution is served: "campaign", "batch" or both."""
        return [mode for mode, on in (("campaign", self.entry.campaign), ("batch", self.entry.batch)) if on]

    @property
    def last_run(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    def record(self, run: Run) -> dict:
        return self.records[run.index]

    @property
    def champion_arn(self) -> str | None:
        """What serves: the campaign's version; batch only, the newest deployed version in the history
        (include/pipeline/solution_tasks.py history_champion, the rule the batch DAG follows)."""
        if self.entry.campaign is not None:
            return self.serving.version_arn if self.serving else None
        deployed = [r for r in self.runs if r.deployed]
        return deployed[-1].solution_version_arn if deployed else None

    @property
    def champion_id(self) -> str | None:
        arn = self.champion_arn
        return arn.rsplit("/", 1)[-1] if arn else None

    @property
    def champion_run(self) -> Run | None:
        """The newest deployed history record of the champion: its metrics are the champion's."""
        arn = self.champion_arn
        return next((r for r in reversed(self.runs) if r.deployed and r.solution_version_arn == arn), None)

    def champion_age_days(self, now: datetime) -> float | None:
        """The campaign's version's age (DescribeSolutionVersion); batch only: since it was recorded."""
        if self.serving is not None:
            return self.serving.age_days(now)
        run = self.champion_run
        created = _parse_time(run.created_at) if run else None
        return None if created is None else (now - created).total_seconds() / 86400

    def serving_since(self) -> str | None:
        """When the champion was recorded as deployed (its newest deployed history record)."""
        run = self.champion_run
        return (run.created_at or None) if run else None

    def alerts(self, now: datetime) -> list[Alert]:
        from include.pipeline.schedule import serving_age_warning

        alerts = []
        campaign = self.entry.campaign
        if self.serving is not None and campaign is not None:
            if self.serving.version_arn is None:
                alerts.append(Alert("serving", f"campaign {campaign.name} serves no solution version"))
            elif warning := serving_age_warning(
                self.serving.version_created, max_age_days=campaign.max_serving_age_days, now=now
            ):
                alerts.append(Alert("stale", f"stale model: {warning}"))
        rejected = []
        for run in reversed(self.runs):
            if run.verdict != "REJECTED":
                break
            rejected.append(run)
        if len(rejected) >= REPEATED_REJECTIONS:
            alerts.append(
                Alert(
                    "rejections",
                    f"the last {len(rejected)} challengers were rejected by the gate "
                    f"(since run {rejected[-1].run_id}): {rejected[0].reason}",
                )
            )
        return alerts


@dataclass
class Snapshot:
    """One pipeline as the page shows it, read at `fetched_at`: every solution, the data alerts."""

    config: PipelineConfig
    fetched_at: datetime
    solutions: list[SolutionView] = field(default_factory=list)
    ingest: Ingest | None = None
    reconcile: dict | None = None
    errors: dict[str, str] = field(default_factory=dict)  # source -> short, secret-free message
    load_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    def solution(self, name: str | None) -> SolutionView | None:
        """A solution by name; None names the first (the one-solution path of its history)."""
        if name is None:
            return self.solutions[0] if self.solutions else None
        return next((s for s in self.solutions if s.name == name), None)

    def all_errors(self) -> list[str]:
        return [*self.errors.values(), *(m for s in self.solutions for m in s.errors.values())]

    def alerts(self, now: datetime) -> list[Alert]:
        """Each solution's alerts (named by the solution when there are several), then the data's."""
        alerts = []
        for view in self.solutions:
            for alert in view.alerts(now):
                text = f"{view.name}: {alert.text}" if len(self.solutions) > 1 else alert.text
                alerts.append(Alert(alert.kind, text))
        alerts.extend(self._data_alerts())
        if freshness := self.freshness_warning(now):
            alerts.append(Alert("freshness", freshness))
        return alerts

    def freshness_warning(self, now: datetime) -> str | None:
        """Set when the newest ingested day is older than the last complete ingest period."""
        from include.pipeline.schedule import last_complete_period

        if self.ingest is None or not self.ingest.days:
            return None
        newest = max(self.ingest.days)
        try:
            newest_end = date.fromisoformat(newest) + timedelta(days=1)
        except ValueError:
            return None
        _, period_end = last_complete_period(self.config.schedule.ingest, now - INGEST_GRACE)
        if newest_end >= period_end.date():
            return None
        return (
            f"data: the newest ingested day is {newest}; the ingest period that ended "
            f"{period_end.date().isoformat()} has not arrived"
        )

    def _data_alerts(self) -> list[Alert]:
        alerts = []
        rows = reconcile_rows(self.reconcile)
        if rows:
            # What Personalize should hold: every app-DB row that was not quarantined.
            expected = sum(int(r.get("app_db") or 0) - int(r.get("quarantined") or 0) for r in rows)
            imported = sum(int(r.get("imported") or 0) for r in rows)
            limit = float(getattr(self.config.gate, "max_data_shrink", DEFAULT_MAX_DATA_SHRINK))
            if expected > 0 and imported < expected * (1 - limit):
                alerts.append(
                    Alert(
                        "shrink",
                        f"shrink guard: Personalize holds {imported} imported records where the app DB has "
                        f"{expected} valid ones ({1 - imported / expected:.1%} fewer, limit {limit:.0%})",
                    )
                )
            bad = [r for r in rows if r.get("ok") is False]
            if bad:
                alerts.append(
                    Alert(
                        "reconcile",
                        f"reconcile: {len(bad)} day(s) where app DB, imported and quarantined disagree "
                        f"(newest {bad[-1].get('day')})",
                    )
                )
        return alerts


def _parse_time(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reconcile_rows(reconcile: Mapping[str, Any] | None) -> list[dict]:
    rows = (reconcile or {}).get("rows") or []
    return sorted((r for r in rows if isinstance(r, Mapping)), key=lambda r: str(r.get("day")))


# ------------------------------------------------------------------------------------ loading


def _safe_error(source: str, err: Exception) -> str:
    """A message without the error's text: botocore's carry endpoint URLs, which are connection details."""
    from botocore.exceptions import ClientError

    log.warning("Personalize view: could not read %s", source, exc_info=True)
    if isinstance(err, ClientError):
        return f"could not read {source}: {err.response.get('Error', {}).get('Code', 'error')}"
    return f"could not read {source}: {type(err).__name__}"


class _Clients:
    """S3 clients and Personalize hooks per (connection, region), each kept `CLIENT_TTL_SECONDS`."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str | None, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, config: PipelineConfig, kind: str) -> Any:
        from include.pipeline import clients

        key = (config.aws_conn_id, config.region_name, kind)
        with self._lock:
            made = self._made.get(key)
            if made is not None and time.monotonic() - made[0] < CLIENT_TTL_SECONDS:
                return made[1]
        client = clients.s3_client(config) if kind == "s3" else clients.personalize_hook(config)
        with self._lock:
            self._made[key] = (time.monotonic(), client)
        return client

    def clear(self) -> None:
        with self._lock:
            self._made.clear()


CLIENTS = _Clients()


def s3_for(config: PipelineConfig) -> Any:
    return CLIENTS.get(config, "s3")


def load_snapshot(config: PipelineConfig, now: datetime | None = None) -> Snapshot:
    """Every source of the page, read in parallel: each solution's history (and campaign), the ledger,
    the reconcile table. One slow or broken source costs its own wait and error, not the others'."""
    from include.pipeline.reconcile import latest_key

    started = time.perf_counter()
    snapshot = Snapshot(config=config, fetched_at=now or datetime.now(UTC))
    snapshot.solutions = [
        SolutionView(entry=entry, history_solution=None if index == 0 else entry.name)
        for index, entry in enumerate(config.solutions)
    ]
    try:
        s3 = s3_for(config)
    except Exception as err:  # a missing or broken connection: show the page, say what is missing
        snapshot.errors["s3"] = _safe_error("S3 (the pipeline's AWS connection)", err)
        s3 = None

    def read_ingest() -> None:
        try:
            snapshot.ingest = last_ingest(s3, config)
        except Exception as err:
            snapshot.errors["ingest"] = _safe_error("the import ledger", err)

    def read_reconcile() -> None:
        try:
            snapshot.reconcile = read_json(s3, config.s3.bucket, latest_key(config))
        except Exception as err:
            snapshot.errors["reconcile"] = _safe_error("the reconcile table", err)

    campaigns: dict[str, str] | Exception = {}
    if any(view.entry.campaign for view in snapshot.solutions):
        try:
            campaigns = CLIENTS.get(config, "personalize").campaign_arns()
        except Exception as err:  # each campaign-served solution shows it
            campaigns = err
    reads: list[Callable[[], None]] = [
        lambda view=view: load_solution(config, view, s3, campaigns) for view in snapshot.solutions
    ]
    if s3 is not None:
        reads += [read_ingest, read_reconcile]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_READS, max(len(reads), 1))) as pool:
        for future in [pool.submit(read) for read in reads]:
            future.result()
    snapshot.load_seconds = time.perf_counter() - started
    return snapshot


def load_solution(
    config: PipelineConfig, view: SolutionView, s3: Any, campaigns: Mapping[str, str] | Exception
) -> None:
    """One solution's metrics history (one S3 read) and, campaign-served, what its campaign serves.

    `campaigns`: name -> ARN from the snapshot's one ListCampaigns, or the error that listing raised.
    """
    from include.pipeline.history import history_key, read_history
    from include.pipeline.report import parse_records

    if s3 is not None:
        try:
            records = read_history(s3, config.s3.bucket, history_key(config.s3.prefix, view.history_solution))
            view.runs = parse_records(records)
            view.records = records
        except Exception as err:
            view.errors["history"] = _safe_error(f"the metrics history of {view.name}", err)
    if view.entry.campaign is not None:
        name = view.entry.campaign.name
        try:
            if isinstance(campaigns, Exception):
                raise campaigns
            view.serving = serving(config, name, campaigns.get(name))
        except Exception as err:
            view.errors["personalize"] = _safe_error(
                f"Personalize (campaign {view.entry.campaign.name})", err
            )


def report_key(config: PipelineConfig, run_id: str, filename: str, solution: str | None = None) -> str:
    from include.pipeline.report import report_prefix

    return f"{report_prefix(config.s3.prefix, run_id, solution)}/{filename}"


def read_json(s3: Any, bucket: str, key: str) -> dict | None:
    body = read_object(s3, bucket, key)
    return None if body is None else json.loads(body)


def read_object(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def serving(config: PipelineConfig, campaign_name: str, campaign_arn: str | None) -> Serving:
    """DescribeCampaign (found by the snapshot's one ListCampaigns) and the serving version's
    DescribeSolutionVersion, for its age: two calls per campaign."""
    from personalize.hooks import serving_version
    from personalize.kinds import CAMPAIGN

    from include.pipeline.days import maybe_utc

    if campaign_arn is None:
        return Serving(campaign_name, None, None, None)
    hook = CLIENTS.get(config, "personalize")
    campaign = hook.describe(CAMPAIGN, campaign_arn)
    arn = serving_version(campaign)
    created = None
    if arn:
        version = hook.conn.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
        created = maybe_utc(version.get("creationDateTime"))
    return Serving(campaign_name, campaign.get("status"), arn, created)


def last_ingest(s3: Any, config: PipelineConfig) -> Ingest | None:
    """The interactions partitions of the newest ingest run: those the ledger recorded together."""
    from include.pipeline.clients import ledger
    from include.pipeline.days import maybe_utc

    folder = ledger(config).partition_key("INTERACTIONS", "x").rsplit("/", 1)[0] + "/"
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.s3.bucket, Prefix=folder):
        objects.extend(page.get("Contents", []))
    if not objects:
        return None
    objects.sort(key=lambda o: o["LastModified"], reverse=True)
    newest = [objects[0]]
    for obj in objects[1:]:
        if (newest[-1]["LastModified"] - obj["LastModified"]).total_seconds() > INGEST_RUN_GAP_SECONDS:
            break
        newest.append(obj)
    documents = [read_json(s3, config.s3.bucket, obj["Key"]) or {} for obj in newest]
    reads = [d.get("read") for d in documents]
    rejected = [d.get("rejected_by_reason") for d in documents]
    return Ingest(
        days=tuple(sorted(str(d.get("name", "?")).removeprefix("dt=") for d in documents)),
        read=None if any(r is None for r in reads) else sum(int(r) for r in reads),
        written=sum(int(d.get("records") or 0) for d in documents),
        rejected=None
        if any(not isinstance(r, Mapping) for r in rejected)
        else sum(int(v) for r in rejected for v in r.values()),
        recorded_at=maybe_utc(newest[0]["LastModified"]),
    )


# -------------------------------------------------------------------------------------- cache


class SnapshotCache:
    """Snapshots per pipeline name, each reused for `ttl` seconds; one loader at a time per pipeline."""

    def __init__(
        self, loader: Callable[[PipelineConfig], Snapshot] = load_snapshot, ttl: float = CACHE_TTL_SECONDS
    ):
        self.loader = loader
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Snapshot]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, config: PipelineConfig, refresh: bool = False) -> Snapshot:
        with self._guard:
            lock = self._locks.setdefault(config.name, threading.Lock())
        with lock:
            entry = self._entries.get(config.name)
            if entry is not None and not refresh and time.monotonic() - entry[0] < self.ttl:
                return entry[1]
            snapshot = self.loader(config)
            self._entries[config.name] = (time.monotonic(), snapshot)
            return snapshot

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


def pipelines_of(configs: Sequence[PipelineConfig], dag_id: str) -> PipelineConfig | None:
    return next((c for c in configs if dag_id in c.dag_ids.values()), None)
