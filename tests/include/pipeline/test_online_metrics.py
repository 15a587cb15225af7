"""metric_attribution config errors name the key; online metrics per deployed version from running totals."""

from __future__ import annotations

import pytest

from include.pipeline.config import ConfigError, load_config
from include.pipeline.online_metrics import (
    campaign_totals,
    online_metrics_by_version,
    online_metrics_markdown,
)
from tests.include.pipeline.test_config import demo_dict, write

CAMPAIGN = "arn:aws:personalize:us-east-1:000000000000:campaign/home"


def test_the_demo_config_attributes_clicks_and_revenue(tmp_path):
    config = load_config(write(tmp_path, demo_dict()))
    assert [m.as_personalize() for m in config.metric_attribution.metrics] == [
        {"eventType": "click", "metricName": "CLICKS", "expression": "SAMPLECOUNT()"},
        {"eventType": "purchase", "metricName": "REVENUE", "expression": "SUM(Interactions.EVENT_VALUE)"},
    ]


@pytest.mark.parametrize(
    ("metrics", "key", "words"),
    [
        ([], "metric_attribution.metrics:", "at least 1"),
        ([{"name": "A", "event_type": "click"}] * 2, "metric_attribution: metrics:", "names repeated"),
        ([{"name": "A B", "event_type": "click"}], "metric_attribution.metrics.0.name:", "pattern"),
        (
            [{"name": "A", "event_type": "click", "function": "AVG"}],
            "metric_attribution.metrics.0.function:",
            "'SAMPLECOUNT' or 'SUM'",
        ),
        (
            [{"name": "A", "event_type": "buy", "function": "SUM", "column": "PRICE"}],
            "metric_attribution.metrics.0.column:",
            "not a field",
        ),
    ],
)
def test_bad_metric_attribution_names_the_key(tmp_path, metrics, key, words):
    data = demo_dict()
    data["metric_attribution"] = {"metrics": metrics}
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, data))
    message = str(error.value)
    assert key in message and words in message, message


def row(metric: str, value: float, source: str = CAMPAIGN) -> dict:
    return {
        "METRIC_NAME": metric,
        "EVENT_TYPE": "click",
        "VALUE": str(value),
        "EVENT_ATTRIBUTION_SOURCE": source,
    }


def test_totals_count_only_the_campaigns_rows():
    rows = [
        row("CLICKS", 3),
        row("CLICKS", 2),
        row("REVENUE", 10.5),
        row("CLICKS", 7, "SOURCE_NAME_UNDEFINED"),
    ]
    assert campaign_totals(rows, CAMPAIGN) == {"CLICKS": 5.0, "REVENUE": 10.5}


def record(version: str, deployed: bool, totals: dict | None, precision: float = 0.1) -> dict:
    return {
        "solution_version_arn": f"{CAMPAIGN}/{version}",
        "deployed": deployed,
        "online_totals": totals,
        "metrics": {"precision_at_25": precision},
    }


def test_a_version_earns_the_difference_until_the_next_deployed_version():
    records = [
        record("v1", True, {}),
        record("v2", False, {"CLICKS": 4.0}),  # rejected: v1 keeps serving
        record("v3", True, {"CLICKS": 10.0, "REVENUE": 50.0}),
        record("v4", False, {"CLICKS": 16.0, "REVENUE": 50.0}),
    ]
    assert online_metrics_by_version(records) == {
        f"{CAMPAIGN}/v1": {"CLICKS": 10.0, "REVENUE": 50.0},
        f"{CAMPAIGN}/v3": {"CLICKS": 6.0, "REVENUE": 0.0},
    }
    table = online_metrics_markdown(records)
    assert "| `v1` | 0.1000 | 10 | 50 |" in table and "| `v3` | 0.1000 | 6 | 0 |" in table
    # Records written before the metric attribution existed carry no totals and show nothing.
    assert online_metrics_markdown([record("v1", True, None)]) == ""
