"""train_deploy pieces every solution shares: the shrink guard, the gate against the champion, the
rollback of a failed smoke test and the most active users. Each solution runs
include/pipeline/solution_tasks.py (plan, evaluate, smoke test) and solution_record.py (record, keep
the champion, finish); a replay solution replay_tasks.py and replay_record.py."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from include.pipeline import notify
from include.pipeline.clients import personalize_hook, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.gate import GateDecision, decide
from include.pipeline.history import history_key, read_history
from include.pipeline.mapping import quote_identifier

log = logging.getLogger(__name__)


class SmokeTestFailed(RuntimeError):
    pass


def check_data_shrink(
    config: PipelineConfig, dataset_records: int, champion_arn: str | None, *, forced: bool = False
) -> None:
    """Refuse to train on a dataset that shrank by more than gate.max_data_shrink since the
    champion (else the newest recorded version) was trained: a lost or wiped import would
    otherwise train, pass a gate measured on the same small data, and deploy."""
    from airflow.sdk.exceptions import AirflowFailException

    history = read_history(s3_client(config), config.s3.bucket, history_key(config.s3.prefix))
    trained = [r for r in history if (r.get("training_data") or {}).get("dataset_records") is not None]
    baseline = next((r for r in reversed(trained) if r["solution_version_arn"] == champion_arn), None)
    baseline = baseline or (trained[-1] if trained else None)
    if baseline is None:
        log.info("shrink guard: no earlier training recorded its data; %d records now", dataset_records)
        return
    before = int(baseline["training_data"]["dataset_records"])
    limit = config.gate.max_data_shrink
    if before <= 0 or dataset_records >= before * (1 - limit):
        log.info(
            "shrink guard: %d records now, %d when %s was trained",
            dataset_records,
            before,
            baseline["solution_version_arn"],
        )
        return
    message = (
        f"the INTERACTIONS dataset holds {dataset_records} records now (manifests of its ACTIVE import jobs), "
        f"but {baseline['solution_version_arn']} was trained on {before}: it shrank by "
        f"{1 - dataset_records / before:.1%}, more than gate.max_data_shrink {limit:.1%}. Not training. See "
        f"`python -m include.pipeline.reconcile --config {config.name}`; re-import the missing days, or raise "
        "gate.max_data_shrink if the shrink is intended"
    )
    if forced:
        log.warning("SHRINK GUARD overridden by force_deploy: %s", message)
        return
    notify.data_shrink(config, message)
    raise AirflowFailException(message)


def evaluate_challenger(
    config: PipelineConfig, plan: Mapping[str, Any], challenger_arn: str, params: Mapping[str, Any]
) -> GateDecision:
    hook = personalize_hook(config)
    challenger = hook.conn.get_solution_metrics(solutionVersionArn=challenger_arn)["metrics"]
    champion = None
    if plan.get("champion_arn"):
        champion = hook.conn.get_solution_metrics(solutionVersionArn=plan["champion_arn"])["metrics"]
    metric = params.get("gate_metric") or config.gate.metric
    thresholds = dict(config.gate.thresholds)
    if params.get("gate_threshold") is not None:
        thresholds[metric] = float(params["gate_threshold"])
    tolerance = (
        config.gate.tolerance if params.get("gate_tolerance") is None else float(params["gate_tolerance"])
    )
    if tolerance == "auto":  # a replay gate's first version or forced run: no interval to be tolerant within
        tolerance = 0.0
    decision = decide(
        challenger,
        champion,
        metric=metric,
        thresholds=thresholds,
        tolerance=tolerance,
        forced_reason=plan.get("forced_reason"),
    )
    log.info("challenger %s vs champion %s\n%s", challenger_arn, plan.get("champion_arn"), decision.table())
    log.info(decision.summary())
    return decision


def roll_back_and_fail(config: PipelineConfig, plan: Mapping[str, Any], campaign_arn: str, message: str):
    """A failed smoke test: the campaign goes back to the version it served before, and the task
    fails without retries (a retry would smoke-test the same version again)."""
    previous = plan.get("champion_arn")
    if previous:
        from personalize.kinds import CAMPAIGN

        hook = personalize_hook(config)
        log.error("%s; rolling campaign %s back to %s", message, campaign_arn, previous)
        hook.conn.update_campaign(campaignArn=campaign_arn, solutionVersionArn=previous)
        hook.wait_until_active(CAMPAIGN, campaign_arn, waiter_delay=max(1, int(config.tasks.poll_seconds)))
        message += f"; campaign rolled back to {previous}"
    else:
        message += "; no previous version to roll back to"
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message)


def top_users(config: PipelineConfig, count: int) -> list[str]:
    """The most active users in the app database: real users the model has seen."""
    from include.pipeline.extract_sql import get_source_hook

    mapping = config.mappings["INTERACTIONS"]
    column = quote_identifier(next(f.column for f in mapping.fields if f.field == "USER_ID"))
    table = ".".join(quote_identifier(part) for part in mapping.table.split("."))
    sql = (
        f"SELECT {column} FROM {table} GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT {int(count)}"
    )
    return [str(row[0]) for row in get_source_hook(config.app_db_conn_id).get_records(sql)]
