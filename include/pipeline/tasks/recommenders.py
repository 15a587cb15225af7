"""The recommenders DAGs' tasks: smoke test every recommender, record their modelMetrics, stop/start.

Recommenders (domain dataset groups) are trained by Personalize itself, so there is no gate: the
DAG ensures each configured recommender (include/pipeline/domain_config.py), waits until it is
ACTIVE, asks each for recommendations the way its use case is called (userId and/or itemId), and
appends their modelMetrics to `PREFIX/history/recommenders.jsonl` (one line per run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.pipeline.clients import personalize_hook, runtime_client, s3_client
from include.pipeline.config import PipelineConfig
from include.pipeline.extract_sql import most_active
from include.pipeline.history import append_record
from include.pipeline.online_metrics import OUTPUT_FOLDER, campaign_totals, read_rows

log = logging.getLogger(__name__)

HISTORY_KEY = "history/recommenders.jsonl"
ACTIVE = "ACTIVE"


class RecommenderSmokeTestFailed(RuntimeError):
    pass


def dataset_group_arn(config: PipelineConfig) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    arn = personalize_hook(config).find_dataset_group(config.dataset_group)
    if arn is None:
        raise AirflowFailException(
            f"dataset group {config.dataset_group} does not exist: run the ingest DAG first"
        )
    return arn


def smoke_test(config: PipelineConfig, arns: Mapping[str, str]) -> dict:
    """GetRecommendations from every ACTIVE recommender, with the inputs its use case takes."""
    hook, runtime = personalize_hook(config), runtime_client(config)
    # The app DB's most active user and item: ones the models have seen.
    user, item = (next(iter(most_active(config, field, 1)), None) for field in ("USER_ID", "ITEM_ID"))
    results = {}
    for recommender in config.recommenders:
        arn = arns[recommender.name]
        status = hook.conn.describe_recommender(recommenderArn=arn)["recommender"]["status"]
        if status != ACTIVE:
            log.warning(
                "recommender %s is %s (stopped for cost?): not smoke-tested", recommender.name, status
            )
            results[recommender.name] = {"arn": arn, "status": status, "items": None}
            continue
        use_case = recommender.definition
        request: dict[str, Any] = {"recommenderArn": arn, "numResults": config.smoke_test.num_results}
        if use_case.user_id != "unused" and user:
            request["userId"] = user
        if use_case.item_id != "unused" and item:
            request["itemId"] = item
        items = [entry["itemId"] for entry in runtime.get_recommendations(**request)["itemList"]]
        if not items:
            raise RecommenderSmokeTestFailed(
                f"recommender {recommender.name} ({use_case.title}) answered no items for "
                f"{ {k: v for k, v in request.items() if k in ('userId', 'itemId')} }"
            )
        log.info(
            "recommender %s (%s): %d items, e.g. %s", recommender.name, use_case.title, len(items), items[:5]
        )
        results[recommender.name] = {"arn": arn, "status": status, "items": len(items), "sample": items[:5]}
    return results


def record_metrics(config: PipelineConfig, smoke: Mapping[str, Any], run_id: str) -> dict:
    """One history line per run: every recommender's modelMetrics as DescribeRecommender reports them."""
    client = personalize_hook(config).conn
    s3 = s3_client(config)
    # Metric attribution output, when configured: each recommender's running online totals.
    attributed = (
        read_rows(s3, config.s3.bucket, config.s3.key(OUTPUT_FOLDER)) if config.metric_attribution else None
    )
    recommenders = {}
    for recommender in config.recommenders:
        arn = smoke[recommender.name]["arn"]
        described = client.describe_recommender(recommenderArn=arn)["recommender"]
        recommenders[recommender.name] = {
            "arn": arn,
            "use_case": recommender.use_case,
            "status": described["status"],
            "model_metrics": described.get("modelMetrics") or {},
            "smoke_test_items": smoke[recommender.name]["items"],
            "online_totals": None if attributed is None else campaign_totals(attributed, arn),
        }
    record = {"run_id": run_id, "recorded_at": datetime.now(UTC).isoformat(), "recommenders": recommenders}
    append_record(s3, config.s3.bucket, config.s3.key(HISTORY_KEY), record)
    return record


def stop_or_start(config: PipelineConfig, action: str) -> dict[str, str]:
    """StopRecommender / StartRecommender on every configured recommender not already there."""
    from personalize.kinds import RECOMMENDER

    hook = personalize_hook(config)
    group_arn = dataset_group_arn(config)
    found = {
        summary["name"]: summary["recommenderArn"]
        for summary in hook._paginate("list_recommenders", "recommenders", datasetGroupArn=group_arn)
    }
    done = {}
    for recommender in config.recommenders:
        arn = found.get(recommender.name)
        if arn is None:
            log.info("recommender %s does not exist yet: nothing to %s", recommender.name, action)
            continue
        status = hook.describe(RECOMMENDER, arn)["status"]
        if action == "stop" and status == ACTIVE:
            hook.conn.stop_recommender(recommenderArn=arn)
        elif action == "start" and status == "INACTIVE":
            hook.conn.start_recommender(recommenderArn=arn)
            poll = max(1, int(config.tasks.poll_seconds))
            hook.wait_until_active(
                RECOMMENDER,
                arn,
                waiter_delay=poll,
                waiter_max_attempts=config.tasks.wait_timeout_minutes * 60 // poll,
            )
        else:
            log.info("recommender %s is %s: no %s needed", recommender.name, status, action)
        done[recommender.name] = hook.describe(RECOMMENDER, arn)["status"]
    return done
