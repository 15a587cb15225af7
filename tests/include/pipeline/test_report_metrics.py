"""The run report's numbers are GetSolutionMetrics' numbers, through the pipeline's own code path.

Two solution versions are trained on demo shop data in the local Personalize service; the
train_deploy task functions evaluate them (GetSolutionMetrics via the Airflow AWS connection) and
record them (metrics history + report on S3). The report's tables and report.json must then show
exactly what GetSolutionMetrics returns for the challenger and for the champion.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
import yaml

from include import demo_data
from include.local_personalize import seed
from tests.conftest import REPO_ROOT
from tests.demo_config import one_solution

SHOP = {"users": 200, "items": 120, "days": 30, "seed": 5, "end": datetime(2026, 3, 1, tzinfo=UTC)}
GROUP = "report-metrics"
BUCKET = "report-metrics-history"
SCHEMA = seed.avro_schema("INTERACTIONS", seed.USER_ID, seed.ITEM_ID, seed.TIMESTAMP)


@pytest.fixture(scope="module")
def versions(personalize_endpoint, s3_endpoint):
    """(user-personalization version, popularity-count version), both ACTIVE."""
    frame = demo_data.build(**SHOP).interactions()[["USER_ID", "ITEM_ID", "TIMESTAMP"]]
    personalize = boto3.client("personalize", endpoint_url=personalize_endpoint, region_name="us-east-1")
    seeder = seed.Seeder(
        personalize=personalize,
        s3=boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1"),
        bucket=BUCKET,
    )
    group = seeder.dataset_group(GROUP, {"INTERACTIONS": (SCHEMA, seed.csv_bytes(frame))})["group"]
    trained = [
        seeder.solution_version(seeder.solution(f"{GROUP}-{recipe}", group, seed.recipe_arn(recipe)))
        for recipe in ("aws-user-personalization", "aws-popularity-count")
    ]
    return personalize, trained


@pytest.fixture
def config(personalize_endpoint, s3_endpoint, monkeypatch):
    from include.pipeline.config import PipelineConfig

    services = {
        name: {"endpoint_url": personalize_endpoint}
        for name in ("personalize", "personalize-runtime", "personalize-events")
    }
    services["s3"] = {"endpoint_url": s3_endpoint}
    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORT_METRICS_AWS",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1", "service_config": services}}),
    )
    raw = one_solution(yaml.safe_load((REPO_ROOT / "include" / "config" / "demo_retail.yaml").read_text()))
    raw.update(name="report_metrics", aws_conn_id="report_metrics_aws", dataset_group=GROUP)
    raw["s3"] = {"bucket": BUCKET, "prefix": "pipeline"}
    return PipelineConfig.model_validate(raw)


def markdown_metrics(markdown: str) -> dict[str, tuple[str, str]]:
    section = markdown.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| metric")
    ]
    return {
        cells[0]: (cells[1], cells[2])
        for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows)
    }


def test_report_numbers_equal_get_solution_metrics(versions, config):
    from include.pipeline import solution_record
    from include.pipeline.clients import s3_client
    from include.pipeline.tasks import training

    personalize, (champion_arn, challenger_arn) = versions
    name = config.solutions[0].name
    first_plan = {"train": True, "champion_arn": None, "training_mode": "FULL"}
    first = training.evaluate_challenger(config, first_plan, champion_arn, {})
    solution_record.record_solution(
        config, name, plan=first_plan, decision=first.as_dict(), challenger_arn=champion_arn, deployed=True,
        run_id="run-1", dag_id="report_metrics_train",
    )  # fmt: skip
    plan = {"train": True, "champion_arn": champion_arn, "training_mode": "FULL"}
    decision = training.evaluate_challenger(config, plan, challenger_arn, {})
    recorded = solution_record.record_solution(
        config, name, plan=plan, decision=decision.as_dict(), challenger_arn=challenger_arn,
        deployed=decision.accepted, run_id="run-2", dag_id="report_metrics_train",
    )  # fmt: skip
    assert recorded["report"], "the report was not written"

    expected_challenger = personalize.get_solution_metrics(solutionVersionArn=challenger_arn)["metrics"]
    expected_champion = personalize.get_solution_metrics(solutionVersionArn=champion_arn)["metrics"]
    assert len(expected_challenger) == 8 and expected_challenger != expected_champion
    s3 = s3_client(config)
    key = recorded["report"].removeprefix(f"s3://{BUCKET}/")
    markdown = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    shown = markdown_metrics(markdown)
    assert set(shown) == set(expected_challenger)
    for name, (challenger, champion) in shown.items():
        assert float(challenger) == expected_challenger[name], name
        assert float(champion) == expected_champion[name], name
    summary = json.loads(
        s3.get_object(Bucket=BUCKET, Key=key.replace("report.md", "report.json"))["Body"].read()
    )
    assert summary["metrics"] == expected_challenger
    assert summary["champion_metrics"] == expected_champion
    assert summary["champion_solution_version_arn"] == champion_arn
    assert summary["decision"] == decision.verdict
    assert [h["metrics"] for h in summary["history"]] == [expected_champion, expected_challenger]
