"""The Personalize view, through Airflow's own API app (plugins mounted, auth manager, middlewares).

The data is what the pipeline writes (its own writers, on moto's S3 server) and a campaign on the
local Personalize service; requests carry Airflow JWTs made by the configured auth manager.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.plugins.ui.world import (
    TrainingRun,
    daily_runs,
    metrics,
    record,
    record_ingest,
    version_arn,
    write_config,
    write_demo_config,
    write_reconcile,
)

SECRET = "wJalrXUtnFEMI-NOT-A-REAL-SECRET-personalize-ui"


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    from airflow.api_fastapi.app import create_app

    return create_app("core")


@pytest.fixture
def view(airflow_app, pipeline):
    """The mounted Personalize app (caches emptied, the test's config read) and a client of the whole Airflow app."""
    from fastapi.testclient import TestClient
    from starlette.routing import Mount

    mounted = next(r.app for r in airflow_app.routes if isinstance(r, Mount) and r.path == "/personalize")
    from personalize_view.data import CLIENTS

    mounted.state.cache.clear()
    CLIENTS.clear()
    mounted.state.configs.get(refresh=True)
    return mounted, TestClient(airflow_app)


def token(role: str | None = "viewer") -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=f"ui-{role}", role=role))


def auth(role: str | None = "viewer") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}


def history(config, serving_version: str) -> list[TrainingRun]:
    """Three runs: the first deployed, the second rejected, the third deployed (the serving version)."""
    start = datetime.now(UTC) - timedelta(days=3)
    first = TrainingRun("scheduled__run-1", version_arn(config, 1), metrics(0.030, 0.41), True, start)
    second = TrainingRun(
        "scheduled__run-2",
        version_arn(config, 2),
        metrics(0.020, 0.38),
        False,
        start + timedelta(days=1),
        champion_arn=first.version_arn,
        champion_metrics=first.metrics,
    )
    third = TrainingRun(
        "manual__run-3",
        serving_version,
        metrics(0.034, 0.52),
        True,
        start + timedelta(days=2),
        champion_arn=first.version_arn,
        champion_metrics=first.metrics,
    )
    return [first, second, third]


def test_every_page_refuses_a_request_without_a_valid_airflow_login(view, pipeline):
    _, client = view
    paths = [
        "/personalize/",
        f"/personalize/pipelines/{pipeline.name}",
        f"/personalize/dags/{pipeline.dag_ids['ingest']}",
    ]
    paths.append(f"/personalize/pipelines/{pipeline.name}/reports/x/report.json")
    for path in paths:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403), path
        assert client.get(path, cookies={"_token": "not-a-jwt"}).status_code in (401, 403), path
    # The UI's cookie is a login too.
    client.cookies.set("_token", token())
    assert client.get("/personalize/").status_code == 200


def test_overview_lists_the_pipeline_with_its_serving_version_last_decision_and_ingest(
    view, pipeline, serving_campaign, s3_client
):
    _, client = view
    for run in history(pipeline, serving_campaign["version_arn"]):
        record(pipeline, run)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    record_ingest(s3_client, pipeline, [yesterday], read=1210, rejected=10)

    page = client.get("/personalize/", headers=auth())
    assert page.status_code == 200
    html = page.text
    row = re.search(r'<tr class="pipeline solution" data-pipeline="demo_retail"[^>]*>(.*?)</tr>', html, re.S)
    row = row.group(1)
    assert serving_campaign["version_arn"].rsplit("/", 1)[-1] in row
    assert "ACCEPTED" in row and "manual__run-3" in row
    # The last decision says how it was taken and by which rule; the champion's own metrics.
    assert '<span class="evaluation muted">offline</span>' in row
    assert "every rule passed: minimums precision_at_25 0.01; within tolerance 0.005 of the champion" in row
    assert re.search(r"precision_at_25 \(gate\)</span> 0\.0340<", row)
    assert "/dags/demo_retail_train_deploy/runs/manual__run-3" in row
    assert yesterday in row and "1,210 read / 1,200 written / 10 rejected" in row
    # Age: the version was created moments ago, so not red; no alerts.
    assert "too-old" not in row
    assert 'data-kind="rejections"' not in row and 'data-kind="freshness"' not in row
    assert "cached for 60 s" in html


def test_pipeline_page_has_one_chart_point_per_version_the_gate_table_and_the_report(
    view, pipeline, serving_campaign, s3_client
):
    _, client = view
    runs = history(pipeline, serving_campaign["version_arn"])
    for run in runs:
        record(pipeline, run)

    for path in (
        f"/personalize/pipelines/{pipeline.name}",
        f"/personalize/dags/{pipeline.dag_ids['train_deploy']}",
    ):
        html = client.get(path, headers=auth()).text
        gate_chart = re.search(r'<svg class="chart" id="gate-metric".*?</svg>', html, re.S).group(0)
        points = re.findall(r'<circle class="point (\w+) ([\w-]+)"[^>]*data-run-id="([^"]+)"', gate_chart)
        assert points == [
            ("accepted", "deployed", "scheduled__run-1"),
            ("rejected", "not-deployed", "scheduled__run-2"),
            ("accepted", "deployed", "manual__run-3"),
        ]
        assert 'aria-labelledby="gate-metric-title gate-metric-desc"' in gate_chart
        assert '<polyline class="baseline"' in gate_chart and '<polyline class="champion"' in gate_chart
        coverage = re.search(r'<svg class="chart" id="coverage".*?</svg>', html, re.S).group(0)
        assert coverage.count("<circle") == 3
        decisions = re.findall(r'<tr class="decision" data-run-id="([^"]+)"', html)
        assert decisions == ["manual__run-3", "scheduled__run-2", "scheduled__run-1"]  # newest first
        findings = dict(
            re.findall(
                r'<tr class="decision" data-run-id="([^"]+)".*?<td class="reason"[^>]*>([^<]*)<', html, re.S
            )
        )
        assert findings["manual__run-3"] == "every rule passed"
        assert "trails the champion" in findings["scheduled__run-2"]
        assert "No reconcile data yet" in html

    report = client.get(f"/personalize/pipelines/{pipeline.name}/reports/scheduled__run-2", headers=auth())
    assert report.status_code == 200
    assert "REJECTED" in report.text and "# Training run report: scheduled__run-2" in report.text
    png = client.get(
        f"/personalize/pipelines/{pipeline.name}/reports/scheduled__run-2/metrics_history.png", headers=auth()
    )
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    summary = client.get(
        f"/personalize/pipelines/{pipeline.name}/reports/scheduled__run-2/report.json", headers=auth()
    )
    assert json.loads(summary.content)["decision"] == "REJECTED"
    assert (
        client.get(
            f"/personalize/pipelines/{pipeline.name}/reports/x/secrets.txt", headers=auth()
        ).status_code
        == 404
    )


def test_reconcile_table_and_alerts_for_shrink_stale_model_and_repeated_rejections(
    view, pipeline, serving_campaign, s3_client
):
    mounted, client = view
    runs = history(pipeline, serving_campaign["version_arn"])
    for run in runs:
        record(pipeline, run)
    # Two more rejected challengers after the serving one.
    champion = runs[-1]
    for number in (4, 5):
        record(
            pipeline,
            TrainingRun(
                f"scheduled__run-{number}",
                version_arn(pipeline, number),
                metrics(0.015, 0.3),
                False,
                champion.at + timedelta(hours=number),
                champion_arn=champion.version_arn,
                champion_metrics=champion.metrics,
            ),
        )
    write_reconcile(
        s3_client,
        pipeline,
        [
            {"day": "2026-11-28", "app_db": 1000, "imported": 990, "quarantined": 10, "ok": True},
            {"day": "2026-11-29", "app_db": 1000, "imported": 500, "quarantined": 0, "ok": False},
        ],
    )
    html = client.get(f"/personalize/pipelines/{pipeline.name}", headers=auth()).text
    assert 'data-kind="rejections">the last 2 challengers were rejected' in html
    assert (
        'data-kind="shrink">shrink guard: Personalize holds 1490 imported records where the app DB has 1990 valid ones'
        in html
    )
    assert 'data-kind="reconcile">reconcile: 1 day(s)' in html
    table = re.search(r'<table id="reconcile">.*?</table>', html, re.S).group(0)
    assert re.findall(r"<td>(2026-11-\d\d)</td>", table) == ["2026-11-29", "2026-11-28"]
    assert '<tr class="mismatch"><td>2026-11-29</td>' in table

    # Freshness: the newest ingested day is 5 days old.
    old_day = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    record_ingest(s3_client, pipeline, [old_day], read=100, rejected=0)
    mounted.state.cache.clear()
    html = client.get(f"/personalize/pipelines/{pipeline.name}", headers=auth()).text
    assert f'data-kind="freshness">data: the newest ingested day is {old_day}' in html

    # Stale: the same page a month later (the serving version's age is computed at render time).
    later = datetime.now(UTC) + timedelta(days=30)
    snapshot = mounted.state.cache.get(pipeline)
    assert any(a.kind == "stale" for a in snapshot.alerts(later))
    assert not any(a.kind == "stale" for a in snapshot.alerts(datetime.now(UTC)))


def test_pages_never_show_connection_details_even_when_a_read_fails(view, pipeline, monkeypatch, tmp_path):
    mounted, client = view
    extra = {
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIANOTAREALKEY00000",
        "aws_secret_access_key": SECRET,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        "service_config": {
            "personalize": {"endpoint_url": "http://127.0.0.1:9/personalize-endpoint-detail"},
            "s3": {"endpoint_url": "http://127.0.0.1:9/s3-endpoint-detail"},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_BROKEN", json.dumps({"conn_type": "aws", "extra": extra}))
    broken = write_config(tmp_path, **{"aws_conn_id": "aws_broken", "s3.bucket": pipeline.s3.bucket})
    mounted.state.configs.get(refresh=True)
    for path in ("/personalize/", f"/personalize/pipelines/{pipeline.name}"):
        html = client.get(path, headers=auth()).text
        assert (
            f"could not read the metrics history of {broken.solutions[0].name}: EndpointConnectionError"
            in html
        )
        assert (
            f"could not read Personalize (campaign {broken.campaign.name}): EndpointConnectionError" in html
        )
        for detail in (SECRET, "AKIANOTAREALKEY", "endpoint-detail", "127.0.0.1:9", "aws_broken"):
            assert detail not in html, detail


def test_a_user_without_read_access_to_the_dags_sees_no_pipeline(view, pipeline):
    _, client = view
    overview = client.get("/personalize/", headers=auth(role=None))
    assert overview.status_code == 200
    assert "data-pipeline" not in overview.text
    assert "1 pipeline(s) whose DAGs you may not read" in overview.text
    assert client.get(f"/personalize/pipelines/{pipeline.name}", headers=auth(role=None)).status_code == 404
    tab = client.get(f"/personalize/dags/{pipeline.dag_ids['ingest']}", headers=auth(role=None))
    assert "is not one of a Personalize pipeline's DAGs you may read" in tab.text


def test_daily_runs_put_every_version_on_the_page(view, pipeline, serving_campaign):
    """bench/bench_personalize_ui.py times a year of these; here: every version is on the page once."""
    _, client = view
    start = datetime.now(UTC) - timedelta(days=12)
    runs = daily_runs(pipeline, start, 12, last_version=serving_campaign["version_arn"])
    for run in runs:
        record(pipeline, run)
    html = client.get(f"/personalize/pipelines/{pipeline.name}", headers=auth()).text
    gate_chart = re.search(r'<svg class="chart" id="gate-metric".*?</svg>', html, re.S).group(0)
    assert re.findall(r'data-run-id="([^"]+)"', gate_chart) == [r.run_id for r in runs]
    assert len(re.findall(r'class="point rejected not-deployed"', gate_chart)) == sum(
        1 for r in runs if not r.deployed
    )
    assert html.count('<tr class="decision"') == 12


def test_a_replay_pending_line_shows_as_a_not_deployed_point(view, pipeline, serving_campaign, s3_client):
    """gate.evaluation replay writes PENDING lines (include/pipeline/replay_tasks.py): no colour, not deployed."""
    from include.pipeline.history import append_record, history_key, read_history
    from include.pipeline.report import write_report

    _, client = view
    for run in history(pipeline, serving_campaign["version_arn"]):
        record(pipeline, run)
    pending = {
        "run_id": "manual__run-4",
        "solution_version_arn": version_arn(pipeline, 4),
        "created_at": datetime.now(UTC).isoformat(),
        "metrics": metrics(0.031, 0.5),
        "decision": {
            "verdict": "PENDING",
            "window": ["2026-03-04", "2026-03-11"],
            "summary": "PENDING replay",
        },
        "reason": "PENDING replay",
        "deployed": False,
    }
    key = history_key(pipeline.s3.prefix)
    append_record(s3_client, pipeline.s3.bucket, key, pending)
    history_lines = read_history(s3_client, pipeline.s3.bucket, key)
    write_report(s3_client, pipeline.s3.bucket, pipeline.s3.prefix, history_lines, "manual__run-4")
    html = client.get(f"/personalize/pipelines/{pipeline.name}", headers=auth()).text
    gate_chart = re.search(r'<svg class="chart" id="gate-metric".*?</svg>', html, re.S).group(0)
    points = re.findall(r'<circle class="point (\w*) ([\w-]+)"[^>]*data-run-id="([^"]+)"', gate_chart)
    assert points[-1] == ("", "not-deployed", "manual__run-4")
    report = client.get(f"/personalize/pipelines/{pipeline.name}/reports/manual__run-4", headers=auth())
    assert report.status_code == 200 and "Pending: scored against the champion" in report.text


def replay_line(config, solution: str, run_id: str, arn: str, champion, at: datetime) -> dict:
    """A replay gate's decision line (include/pipeline/replay_tasks.py), accepted by rule auto."""
    rule = "rule auto: 95% interval of challenger - champion +0.0010 [-0.0040, +0.0060] reaches 0, not shown worse"
    values = metrics(0.036, 0.47)
    return {
        "run_id": run_id,
        "solution": solution,
        "solution_version_arn": arn,
        "created_at": at.isoformat(),
        "metrics": values,
        "decision": {
            "evaluation": "replay",
            "accepted": True,
            "verdict": "ACCEPTED",
            "metric": "normalized_discounted_cumulative_gain_at_25",
            "rule": rule,
            "challenger": values,
            "champion": champion.metrics,
            "window": ["2026-11-20", "2026-11-27"],
            "failures": [],
            "summary": f"gate ACCEPTED (replay; {rule})",
        },
        "reason": f"gate ACCEPTED (replay; {rule})",
        "champion_solution_version_arn": champion.version_arn,
        "deployed": True,
        "replay_of": arn,
    }


def test_every_solution_of_a_pipeline_has_its_row_champion_last_decision_and_history(
    view, pipeline, serving_campaign, s3_client, tmp_path
):
    """The demo's three solutions: campaign + batch (serving), a campaign not created yet, batch only
    (its champion is its newest deployed version; its last decision came from the replay gate)."""
    from include.pipeline.history import append_record, history_key, read_history
    from include.pipeline.report import write_report

    mounted, client = view
    config = write_demo_config(
        tmp_path,
        bucket=pipeline.s3.bucket,
        first=pipeline.solutions[0].name,
        campaigns={0: serving_campaign["name"], 1: f"{serving_campaign['name']}-similar"},
        batch_crons={2: "0 5 * * 4"},
    )
    mounted.state.configs.get(refresh=True)
    first, similar, ranking = (e.name for e in config.solutions)
    for run in history(config, serving_campaign["version_arn"]):
        record(config, run)
    start = datetime.now(UTC) - timedelta(days=4)
    sim = TrainingRun("scheduled__sim-1", version_arn(config, 1, similar), metrics(0.03, 0.2), True, start)
    record(config, sim, solution=similar)
    for number in (2, 3):  # two rejected in a row: the similar-items solution's alert
        record(
            config,
            TrainingRun(f"scheduled__sim-{number}", version_arn(config, number, similar), metrics(0.001, 0.2), False,
                        start + timedelta(days=number), champion_arn=sim.version_arn, champion_metrics=sim.metrics),
            solution=similar,
        )  # fmt: skip
    offline = TrainingRun(
        "scheduled__rank-1", version_arn(config, 1, ranking), metrics(0.03, 0.4), True, start
    )
    record(config, offline, solution=ranking)
    key = history_key(config.s3.prefix, ranking)
    replayed = version_arn(config, 2, ranking)
    append_record(
        s3_client,
        config.s3.bucket,
        key,
        replay_line(config, ranking, "scheduled__rank-2", replayed, offline, start + timedelta(days=2)),
    )
    lines = read_history(s3_client, config.s3.bucket, key)
    write_report(s3_client, config.s3.bucket, config.s3.prefix, lines, "scheduled__rank-2", ranking)

    html = client.get("/personalize/", headers=auth()).text
    rows = re.findall(
        r'<tr class="([\w ]+)" data-pipeline="demo_retail" data-solution="([^"]+)">(.*?)</tr>', html, re.S
    )
    assert [(css, name) for css, name, _ in rows] == [
        ("pipeline solution", first),
        ("solution", similar),
        ("solution", ranking),
    ]
    cells = {name: body for _, name, body in rows}
    assert serving_campaign["version_arn"].rsplit("/", 1)[-1] in cells[first]
    # Batch: each solution's own cron, else the pipeline's schedule.batch_inference.
    assert (
        f'campaign {serving_campaign["name"]} + batch <span class="muted">(0 6 * * 1)</span>' in cells[first]
    )
    assert "no campaign yet" in cells[similar] and "REJECTED" in cells[similar]
    assert '<td class="serving-mode">batch <span class="muted">(0 5 * * 4)</span></td>' in cells[ranking]
    assert "<code>v00002</code>" in cells[ranking] and "newest accepted (batch)" in cells[ranking]
    assert re.search(r"normalized_discounted_cumulative_gain_at_25 \(gate\)</span> 0\.1440<", cells[ranking])
    assert '<span class="evaluation muted">replay</span>' in cells[ranking]
    assert "rule auto: 95% interval of challenger - champion" in cells[ranking]
    assert (
        f'href="/personalize/pipelines/demo_retail/solutions/{ranking}/reports/scheduled__rank-2"'
        in cells[ranking]
    )
    assert f'class="history" href="/personalize/pipelines/demo_retail#solution-{ranking}"' in cells[ranking]
    assert f'data-kind="rejections">{similar}: the last 2 challengers were rejected' in html

    page = client.get(f"/personalize/pipelines/{config.name}", headers=auth()).text
    sections = re.findall(r'<section class="solution" id="solution-([^"]+)"', page)
    assert sections == [first, similar, ranking]
    # The first solution keeps the plain element ids (the stack tier's browser test reads them).
    for chart_id, run_ids in (
        ("gate-metric", ["scheduled__run-1", "scheduled__run-2", "manual__run-3"]),
        (f"gate-metric-{similar}", ["scheduled__sim-1", "scheduled__sim-2", "scheduled__sim-3"]),
        (f"gate-metric-{ranking}", ["scheduled__rank-1", "scheduled__rank-2"]),
    ):
        chart = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', page, re.S).group(0)
        assert re.findall(r'data-run-id="([^"]+)"', chart) == run_ids, chart_id
    decisions = re.search(rf'<table id="gate-decisions-{ranking}".*?</table>', page, re.S).group(0)
    assert re.findall(r'<tr class="decision" data-run-id="([^"]+)"', decisions) == [
        "scheduled__rank-2",
        "scheduled__rank-1",
    ]

    report = client.get(
        f"/personalize/pipelines/{config.name}/solutions/{ranking}/reports/scheduled__rank-2", headers=auth()
    )
    assert report.status_code == 200 and "Training run scheduled__rank-2 of " + ranking in report.text
    summary = client.get(
        f"/personalize/pipelines/{config.name}/solutions/{ranking}/reports/scheduled__rank-2/report.json",
        headers=auth(),
    )
    assert json.loads(summary.content)["run_id"] == "scheduled__rank-2"
    # One address per report: the first solution's are under /reports/ only.
    assert (
        client.get(
            f"/personalize/pipelines/{config.name}/solutions/{first}/reports/manual__run-3", headers=auth()
        ).status_code
        == 404
    )
    assert (
        client.get(f"/personalize/pipelines/{config.name}/reports/manual__run-3", headers=auth()).status_code
        == 200
    )
