"""Ingest's metric attribution task and the online totals train_deploy records (include/pipeline/online_metrics.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from include.pipeline.clients import personalize_hook
from include.pipeline.config import PipelineConfig
from include.pipeline.online_metrics import OUTPUT_FOLDER, campaign_totals, read_rows

log = logging.getLogger(__name__)


def output_path(config: PipelineConfig) -> str:
    return config.s3.uri(OUTPUT_FOLDER) + "/"


def ensure_metric_attribution(config: PipelineConfig, resources: Mapping[str, Any]) -> str:
    """Create the dataset group's metric attribution, or bring its metrics in line with the config."""
    from airflow.sdk.exceptions import AirflowFailException
    from personalize.kinds import ResourceKind

    attribution = config.metric_attribution
    if not config.role_arn:
        raise AirflowFailException("role_arn is required: a metric attribution writes its reports with it")
    hook = personalize_hook(config)
    client = hook.conn
    group_arn = resources["dataset_group_arn"]
    wanted = {m.name: m.as_personalize() for m in attribution.metrics}
    output = {"s3DataDestination": {"path": output_path(config)}, "roleArn": config.role_arn}
    existing = client.list_metric_attributions(datasetGroupArn=group_arn).get("metricAttributions", [])
    if not existing:
        name = attribution.name or f"{config.dataset_group[:50]}-metrics"
        arn = client.create_metric_attribution(
            name=name, datasetGroupArn=group_arn, metrics=list(wanted.values()), metricsOutputConfig=output
        )["metricAttributionArn"]
        log.info("created metric attribution %s: %s", arn, sorted(wanted))
    else:
        arn = existing[0]["metricAttributionArn"]
        kind = ResourceKind(
            "metric attribution",
            "describe_metric_attribution",
            "metricAttributionArn",
            "metricAttribution",
            "metric_attribution_active",
        )
        hook.wait_until_active(kind, arn, waiter_delay=max(1, int(config.tasks.poll_seconds)))
        current = {
            m["metricName"]: {k: m[k] for k in ("eventType", "metricName", "expression")}
            for m in client.list_metric_attribution_metrics(metricAttributionArn=arn).get("metrics", [])
        }
        remove = sorted(n for n in current if current[n] != wanted.get(n))
        add = [m for n, m in wanted.items() if current.get(n) != m]
        if remove or add:
            params: dict[str, Any] = {"metricAttributionArn": arn, "metricsOutputConfig": output}
            if remove:
                params["removeMetrics"] = remove
            if add:
                params["addMetrics"] = add
            client.update_metric_attribution(**params)
            log.info(
                "updated metric attribution %s: removed %s, added %s",
                arn,
                remove,
                [m["metricName"] for m in add],
            )
        else:
            log.info("metric attribution %s already has %s", arn, sorted(wanted))
    return arn


def online_totals(config: PipelineConfig, s3: Any) -> dict[str, float] | None:
    """The campaign's running online totals now (None without a metric attribution or a campaign)."""
    if config.metric_attribution is None or config.campaign is None:
        return None
    campaign = personalize_hook(config).find_campaign(config.campaign.name)
    if campaign is None:
        return None
    rows = read_rows(s3, config.s3.bucket, config.s3.key(OUTPUT_FOLDER))
    return campaign_totals(rows, campaign["campaignArn"])
