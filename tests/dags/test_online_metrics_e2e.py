"""Online metrics end to end: ingest creates the metric attribution; the demo's live traffic acts on
the campaign's recommendations (PutEvents with recommendationId); the next training run's history
and report show the first version's online metrics next to its offline ones."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.dags import e2e_support as support
from tests.dags.test_pipeline_e2e import START, day, run, seed
from tests.dags.test_pipeline_e2e import local_aws as local_aws  # the fixture


@pytest.fixture
def attributed_pipeline(s3_bucket, tmp_path, monkeypatch, request):
    name = "e2e_online"
    seed(
        "sqlite",
        tmp_path,
        monkeypatch,
        request,
        f"{name}_app",
        users=400,
        days=4,
        end=START + timedelta(days=4),
    )
    path = support.write_config(tmp_path / "configs", name=name, bucket=s3_bucket, app_conn_id=f"{name}_app")
    return support.load_dags(path, monkeypatch)


def test_the_report_shows_the_online_metric_of_the_deployed_version(
    local_aws, s3_bucket, personalize_endpoint, attributed_pipeline
):
    from include.demo import live_traffic
    from include.pipeline.report import report_prefix

    dags = attributed_pipeline
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]
    assert [m.name for m in config.metric_attribution.metrics] == ["CLICKS", "REVENUE"]

    _, states = run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(4)})
    assert states["ensure_metric_attribution"] == "success"
    group = next(
        g for g in personalize.list_dataset_groups()["datasetGroups"] if g["name"] == config.dataset_group
    )
    (attribution,) = personalize.list_metric_attributions(datasetGroupArn=group["datasetGroupArn"])[
        "metricAttributions"
    ]
    metrics = personalize.list_metric_attribution_metrics(
        metricAttributionArn=attribution["metricAttributionArn"]
    )
    assert {m["metricName"]: m["expression"] for m in metrics["metrics"]} == {
        "CLICKS": "SAMPLECOUNT()",
        "REVENUE": "SUM(Interactions.EVENT_VALUE)",
    }

    run(dags["train_deploy"], logical_date=None)
    sent = live_traffic(config, personalize_endpoint, users=60)
    assert sent["click"] == 60 and sent["purchase"] > 0

    _, states = run(
        dags["train_deploy"],
        logical_date=None,
        run_conf={"force_deploy": True, "force_reason": "retrain after live traffic"},
    )
    assert states[support.in_group(config, "deploy_campaign")] == "success"
    history_key = f"{config.s3.prefix}/history/metrics.jsonl"
    first, second = [
        json.loads(line)
        for line in s3.get_object(Bucket=s3_bucket, Key=history_key)["Body"].read().splitlines()
    ]
    assert first["online_totals"] == {}
    assert second["online_totals"]["CLICKS"] == sent["click"]
    assert second["online_totals"]["REVENUE"] == pytest.approx(sent["revenue"])

    report_key = f"{report_prefix(config.s3.prefix, second['run_id'])}/report.md"
    report = s3.get_object(Bucket=s3_bucket, Key=report_key)["Body"].read().decode()
    assert "## Online metrics (metric attribution, while deployed)" in report
    version = first["solution_version_arn"].rsplit("/", 1)[-1]
    row = next(line for line in report.splitlines() if line.startswith(f"| `{version}` |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == f"{first['metrics']['precision_at_25']:.4f}"
    assert float(cells[2]) == sent["click"] and float(cells[3]) == pytest.approx(sent["revenue"])
