"""A pipeline's S3 history written by the pipeline's own writers, for the Personalize view's tests and bench.

- training runs: `include.pipeline.solution_record.record_solution` (the metrics history line and the run
  report) with a real `gate.decide` decision, at chosen times;
- ingest: `import_ledger.Ledger.record_partition`, as `extract_days.extract_day` records each day;
- reconcile: `reconcile/latest.json` through `reconcile.write_latest`, as the reconcile task writes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import yaml

from include.pipeline import solution_record
from include.pipeline.clients import ledger
from include.pipeline.config import CONFIG_DIR, PipelineConfig, load_config
from include.pipeline.gate import decide
from include.pipeline.import_ledger import Partition, describe_files
from include.pipeline.reconcile import DayRow, write_latest
from tests.demo_config import one_solution

ACCOUNT = "arn:aws:personalize:us-east-1:000000000000"


def write_config(directory: Path, **overrides) -> PipelineConfig:
    """The demo config with `overrides` (dotted keys), as a file in `directory`."""
    raw = one_solution(yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text()))
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = directory / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def write_demo_config(
    directory: Path,
    *,
    bucket: str,
    first: str,
    campaigns: dict[int, str],
    batch_crons: dict[int, str] | None = None,
) -> PipelineConfig:
    """The demo config with its three solutions (campaign + batch, campaign, batch only): the first
    named `first`, entry i's campaign named campaigns[i] and its batch schedule batch_crons[i]; its
    gates without the baseline (no popularity solution in these tests)."""
    raw = yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text())
    raw["s3"]["bucket"] = bucket
    raw["solutions"][0]["name"] = first
    for index, name in campaigns.items():
        raw["solutions"][index]["campaign"]["name"] = name
    for index, cron in (batch_crons or {}).items():
        raw["solutions"][index]["batch"]["schedule"] = cron
    for entry in raw["solutions"]:
        for key in ("baseline", "min_lift"):
            entry.get("gate", {}).pop(key, None)
    path = directory / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@contextlib.contextmanager
def frozen_now(moment: datetime) -> Iterator[None]:
    """`record_solution` stamps a record with datetime.now(UTC); a history over a year needs other times."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment if tz is not None else moment.replace(tzinfo=None)

    with mock.patch.object(solution_record, "datetime", Frozen):
        yield


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    version_arn: str
    metrics: dict[str, float]
    deployed: bool
    at: datetime
    champion_arn: str | None = None
    champion_metrics: dict[str, float] | None = None
    dry_run: bool = False


def version_arn(config: PipelineConfig, number: int, solution: str | None = None) -> str:
    return f"{ACCOUNT}:solution/{solution or config.solutions[0].name}/v{number:05d}"


def record(config: PipelineConfig, run: TrainingRun, solution: str | None = None) -> dict:
    """One training run of `solution` (default: the first) recorded exactly as a solution's record
    task of train_deploy does, gated by that solution's gate."""
    entry = config.solution_named(solution) if solution else config.solutions[0]
    decision = decide(
        run.metrics,
        run.champion_metrics,
        metric=entry.gate.metric,
        thresholds=dict(entry.gate.thresholds),
        tolerance=entry.gate.tolerance,
    ).as_dict()
    plan = {
        "training_mode": "FULL",
        "champion_arn": run.champion_arn,
        "dry_run": run.dry_run,
        "training_data": None,
    }
    with frozen_now(run.at):
        return solution_record.record_solution(
            config,
            entry.name,
            plan={**plan, "train": True},
            decision=decision,
            challenger_arn=run.version_arn,
            deployed=run.deployed,
            run_id=run.run_id,
            dag_id=config.dag_ids["train_deploy"],
        )


def metrics(precision: float, coverage: float) -> dict[str, float]:
    return {
        "precision_at_25": round(precision, 4),
        "normalized_discounted_cumulative_gain_at_25": round(precision * 4, 4),
        "mean_reciprocal_rank_at_25": round(precision * 3, 4),
        "coverage": round(coverage, 4),
    }


def daily_runs(
    config: PipelineConfig,
    start: datetime,
    days: int,
    *,
    every: int = 1,
    last_version: str | None = None,
    solution: str | None = None,
) -> list[TrainingRun]:
    """`days` training runs `every` days apart, each gated against the version deployed before it, as the DAG does.

    Quality drifts up and down; every fourth challenger is worse than its champion (rejected). The
    last run's version is `last_version` when given (the one a real campaign serves).
    """
    runs, champion, champion_metrics = [], None, None
    for day in range(days):
        precision = 0.02 + 0.01 * ((day * 7) % 11) / 10 - (0.008 if day % 4 == 3 else 0)
        values = metrics(precision, 0.3 + 0.4 * ((day * 5) % 13) / 13)
        arn = (
            last_version
            if last_version is not None and day == days - 1
            else version_arn(config, day + 1, solution)
        )
        is_last = last_version is not None and day == days - 1
        if is_last and champion_metrics and values[config.gate.metric] < champion_metrics[config.gate.metric]:
            # The version the campaign serves passed the gate: it beat the champion.
            values = metrics(champion_metrics[config.gate.metric] + 0.002, values["coverage"])
        verdict = decide(
            values,
            champion_metrics,
            metric=config.gate.metric,
            thresholds=dict(config.gate.thresholds),
            tolerance=config.gate.tolerance,
        )
        deployed = verdict.accepted
        runs.append(
            TrainingRun(
                run_id=f"scheduled__{(start + timedelta(days=day * every)).isoformat()}",
                version_arn=arn,
                metrics=values,
                deployed=deployed,
                at=start + timedelta(days=day * every, hours=3, minutes=40),
                champion_arn=champion,
                champion_metrics=champion_metrics,
            )
        )
        if deployed:
            champion, champion_metrics = arn, values
    return runs


def record_ingest(s3, config: PipelineConfig, days: Sequence[str], *, read: int, rejected: int) -> None:
    """The ledger records of one ingest run, one per day, as extract_days.extract_day writes them."""
    book = ledger(config)
    for day in days:
        key = f"{config.s3.key('interactions', f'dt={day}')}/part-00000.csv"
        s3.put_object(Bucket=config.s3.bucket, Key=key, Body=b"USER_ID,ITEM_ID,TIMESTAMP\n")
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        partition = Partition(
            f"dt={day}",
            read - rejected,
            describe_files(s3, config.s3.bucket, [key]),
            key.rsplit("/", 1)[0],
        )
        book.record_partition(
            s3, "INTERACTIONS", partition, start=start.isoformat(), end=(start + timedelta(days=1)).isoformat(),
            read=read, rejected_by_reason={"ITEM_ID is empty": rejected} if rejected else {}, quarantine_key=None,
        )  # fmt: skip


def write_reconcile(s3, config: PipelineConfig, rows: list[dict]) -> None:
    """`reconcile/latest.json` as the pipeline's reconcile task writes it, with these rows."""
    write_latest(config, [DayRow(**row) for row in rows], s3)
