from __future__ import annotations

import io
import json
import re

import matplotlib.image
import pytest

from include.pipeline import report
from include.pipeline.gate import decide
from include.pipeline.history import append_record, history_key, read_history

ARN = "arn:aws:personalize:us-east-1:000000000000:solution/demo-user-personalization"


def metrics(precision: float, coverage: float) -> dict[str, float]:
    return {
        "coverage": coverage,
        "mean_reciprocal_rank_at_25": round(precision * 2.1, 4),
        "normalized_discounted_cumulative_gain_at_5": round(precision * 1.5, 4),
        "normalized_discounted_cumulative_gain_at_10": round(precision * 1.4, 4),
        "normalized_discounted_cumulative_gain_at_25": round(precision * 1.3, 4),
        "precision_at_5": round(precision * 1.2, 4),
        "precision_at_10": round(precision * 1.1, 4),
        "precision_at_25": precision,
    }


HISTORY = [
    {
        "run_id": "scheduled__2026-11-01T00:00:00+00:00",
        "solution_version_arn": f"{ARN}/aaaa1111",
        "metrics": metrics(0.0812, 0.3121),
        "decision": "ACCEPTED",
        "reason": "first deployment",
        "created_at": "2026-11-01T00:40:00+00:00",
    },
    {
        "run_id": "scheduled__2026-11-08T00:00:00+00:00",
        "solution_version_arn": f"{ARN}/bbbb2222",
        "metrics": metrics(0.0611, 0.2874),
        "decision": "REJECTED",
        "reason": "precision_at_25 0.0611 trails the champion's 0.0812 by more than 0.005",
        "created_at": "2026-11-08T00:40:00+00:00",
    },
    {
        "run_id": "manual__2026-11-15T09:30:00+00:00",
        "solution_version_arn": f"{ARN}/cccc3333",
        "metrics": metrics(0.0934, 0.3377),
        "decision": "ACCEPTED",
        "reason": "precision_at_25 0.0934 >= 0.0812 - 0.005",
        "created_at": "2026-11-15T10:10:00+00:00",
    },
]


def table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| metric")
    ]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)}


def test_metrics_table_shows_the_recorded_numbers_and_the_last_deployed_champion():
    built = report.build_report(HISTORY)
    rows = table_rows(built.markdown, "## Metrics")
    challenger, champion = HISTORY[2]["metrics"], HISTORY[0]["metrics"]  # run 2 was rejected: not champion
    assert set(rows) == set(challenger)
    for name, (mine, theirs, change) in rows.items():
        assert float(mine) == challenger[name]
        assert float(theirs) == champion[name]
        assert float(change) == pytest.approx(challenger[name] - champion[name], abs=5e-5)
    assert list(rows)[:2] == ["coverage", "mean_reciprocal_rank_at_25"]
    assert f"`{ARN}/aaaa1111`" in built.markdown and f"`{ARN}/cccc3333`" in built.markdown
    assert "**ACCEPTED**: precision_at_25 0.0934 >= 0.0812 - 0.005" in built.markdown
    assert built.summary["metrics"] == challenger and built.summary["champion_metrics"] == champion


def test_history_table_lists_every_run_up_to_the_reported_one():
    built = report.build_report(HISTORY, run_id=HISTORY[1]["run_id"])
    history = built.markdown.split("## History", 1)[1]
    assert "bbbb2222" in history and "cccc3333" not in history
    assert (
        "| 2 | scheduled__2026-11-08T00:00:00+00:00 (this run) | `bbbb2222` | REJECTED | no | 0.0611 |"
        in history
    )
    assert "**REJECTED**" in built.markdown
    assert [h["decision"] for h in built.summary["history"]] == ["ACCEPTED", "REJECTED"]


def test_an_accepted_version_that_was_not_deployed_never_becomes_champion():
    records = [dict(r) for r in HISTORY]
    records[0] |= {"deployed": True, "dag_id": "demo_retail_train_deploy", "training_mode": "FULL"}
    records[2] |= {"deployed": False, "campaign_name": "demo-retail-home"}  # e.g. smoke test rolled back
    records.append({**HISTORY[2], "run_id": "r4", "solution_version_arn": f"{ARN}/dddd4444"})
    built = report.build_report(records)
    assert built.run.champion_arn == f"{ARN}/aaaa1111"
    assert built.summary["champion_metrics"] == HISTORY[0]["metrics"]
    third = report.build_report(records, run_id=HISTORY[2]["run_id"])
    assert "- Deployed: no (campaign demo-retail-home)" in third.markdown
    first = report.build_report(records, run_id=HISTORY[0]["run_id"])
    assert (
        "- Dag id: demo_retail_train_deploy" in first.markdown and "- Training mode: FULL" in first.markdown
    )


def test_first_run_has_no_champion():
    built = report.build_report(HISTORY[:1])
    assert "Champion: none" in built.markdown
    rows = table_rows(built.markdown, "## Metrics")
    assert all(theirs == "-" and change == "-" for _, theirs, change in rows.values())


def test_gate_decision_dicts_are_understood():
    decision = decide(
        metrics(0.09, 0.3), metrics(0.1, 0.31), metric="precision_at_25", thresholds={}, tolerance=0.005
    )
    record = {"run_id": "r1", "solution_version_arn": f"{ARN}/dddd", "metrics": metrics(0.09, 0.3)}
    built = report.build_report([{**record, "decision": decision.as_dict()}])
    assert built.run.verdict == "REJECTED"
    assert built.run.champion_metrics == metrics(0.1, 0.31)
    assert "trails the champion's 0.1000" in built.markdown


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"solution_version_arn": "x", "metrics": {}, "decision": "ACCEPTED"}, "record 1 has no run_id"),
        (
            {"run_id": "r", "metrics": {}, "decision": "ACCEPTED"},
            r"record 1 \(run r\) has no solution_version_arn",
        ),
        (
            {
                "run_id": "r",
                "solution_version_arn": "x",
                "metrics": {"coverage": "high"},
                "decision": "ACCEPTED",
            },
            "coverage is not a number",
        ),
        (
            {"run_id": "r", "solution_version_arn": "x", "metrics": {}, "decision": "MAYBE"},
            "decision must be",
        ),
    ],
)
def test_bad_records_are_named(record, message):
    with pytest.raises(report.ReportError, match=message):
        report.build_report([record])


def test_unknown_run_and_empty_history_are_errors():
    with pytest.raises(report.ReportError, match="'nope' is not in the metrics history"):
        report.build_report(HISTORY, run_id="nope")
    with pytest.raises(report.ReportError, match="empty"):
        report.build_report([])


def test_format_number_never_changes_a_value():
    assert report.format_number(0.1234) == "0.1234"
    assert report.format_number(0.5) == "0.5000"
    assert float(report.format_number(0.123456789)) == 0.123456789


def test_write_report_uploads_next_to_the_history_and_pngs_are_images(s3_client, s3_bucket, tmp_path):
    prefix = "pipelines/demo"
    key = history_key(prefix)
    for record in HISTORY:
        append_record(s3_client, s3_bucket, key, record)
    keys = report.write_report(s3_client, s3_bucket, prefix, read_history(s3_client, s3_bucket, key))
    folder = "pipelines/demo/history/reports/manual__2026-11-15T09_30_00_00_00"
    assert keys == {
        "markdown": f"{folder}/report.md",
        "json": f"{folder}/report.json",
        "metrics_history_png": f"{folder}/metrics_history.png",
        "coverage_png": f"{folder}/coverage.png",
    }
    assert re.sub(r"/[^/]+$", "", key) + "/reports" in folder
    summary = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=keys["json"])["Body"].read())
    assert summary["metrics"] == HISTORY[2]["metrics"]
    markdown = s3_client.get_object(Bucket=s3_bucket, Key=keys["markdown"])["Body"].read().decode()
    assert "(metrics_history.png)" in markdown and "(coverage.png)" in markdown
    for kind in ("metrics_history_png", "coverage_png"):
        obj = s3_client.get_object(Bucket=s3_bucket, Key=keys[kind])
        assert obj["ContentType"] == "image/png"
        body = obj["Body"].read()
        image = matplotlib.image.imread(io.BytesIO(body), format="png")
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 500
        # Not a blank canvas: lines, bars and text put many distinct colours on it.
        assert len({tuple(p) for p in image.reshape(-1, image.shape[2])[::7]}) > 20
        (tmp_path / f"{kind}.png").write_bytes(body)
    # Writing again replaces the same objects instead of adding new ones.
    assert report.write_report(s3_client, s3_bucket, prefix, HISTORY) == keys
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=folder)["KeyCount"]
    assert listed == 4


def test_write_report_accepts_an_airflow_s3_hook(s3_endpoint, s3_client, s3_bucket, monkeypatch):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    keys = report.write_report(S3Hook(aws_conn_id=None), s3_bucket, "p", HISTORY[:1])
    assert keys["markdown"] == "p/history/reports/scheduled__2026-11-01T00_00_00_00_00/report.md"
    assert s3_client.head_object(Bucket=s3_bucket, Key=keys["coverage_png"])["ContentLength"] > 1000


def has_colour(png: bytes, hex_colour: str) -> bool:
    import numpy as np

    image = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    target = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(image - target).max(axis=-1) < 0.01).sum() > 500)


def test_coverage_bars_are_coloured_by_what_happened_to_each_version():
    records = [dict(r) for r in HISTORY]
    built = report.build_report(records)
    assert has_colour(built.coverage_png, report.COLOURS["ACCEPTED"])
    assert has_colour(built.coverage_png, report.COLOURS["REJECTED"])
    assert not has_colour(built.coverage_png, report.NOT_SERVED)
    records[2]["deployed"] = False  # accepted, then rolled back
    assert has_colour(report.build_report(records).coverage_png, report.NOT_SERVED)
