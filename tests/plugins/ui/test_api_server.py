"""The Personalize view through the real `airflow api-server` process: mounted, listed, login required.

Runs the server with the simple auth manager's users (not the README's all-admins mode, whose
middleware makes every request an admin's, so nothing could be refused).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import httpx

from tests.plugins.ui.server import airflow_env, api_server, login, run_airflow
from tests.plugins.ui.world import TrainingRun, metrics, record


def test_the_api_server_mounts_the_view_lists_it_in_the_ui_and_refuses_requests_without_a_login(
    pipeline, serving_campaign, tmp_path
):
    record(
        pipeline,
        TrainingRun(
            "manual__api-server", serving_campaign["version_arn"], metrics(0.03, 0.4), True, datetime.now(UTC)
        ),
    )
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = airflow_env(
        home,
        all_admins=False,
        PERSONALIZE_PIPELINE_CONFIG_DIR=os.environ["PERSONALIZE_PIPELINE_CONFIG_DIR"],
        AIRFLOW_CONN_AWS_DEFAULT=os.environ["AIRFLOW_CONN_AWS_DEFAULT"],
    )
    run_airflow(env, "db", "migrate")  # a metadata DB of its own (SQLite, about 10 s)
    with api_server(env, tmp_path / "api-server.log") as url:
        for path in ("/personalize/", f"/personalize/pipelines/{pipeline.name}", "/personalize/dags/x"):
            assert httpx.get(url + path, timeout=30).status_code == 401, path
            bad = httpx.get(url + path, headers={"Authorization": "Bearer forged"}, timeout=30)
            assert bad.status_code in (401, 403), path

        token = login(url, env)
        headers = {"Authorization": f"Bearer {token}"}
        plugins = httpx.get(f"{url}/api/v2/plugins", headers=headers, timeout=30).json()["plugins"]
        ours = next(p for p in plugins if p["name"] == "personalize")
        assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/personalize"]
        views = {(v["destination"], v["name"], v["href"]) for v in ours["external_views"]}
        assert views == {
            ("nav", "Personalize", "personalize/"),
            ("dag", "Personalize", "personalize/dags/{DAG_ID}"),
        }

        overview = httpx.get(f"{url}/personalize/", headers=headers, timeout=60)
        assert overview.status_code == 200
        row = re.search(
            r'<tr class="pipeline solution" data-pipeline="demo_retail"[^>]*>(.*?)</tr>', overview.text, re.S
        )
        assert serving_campaign["version_arn"].rsplit("/", 1)[-1] in row.group(1)
        # The UI's cookie works as well as a bearer token (what the iframe in the UI sends).
        page = httpx.get(f"{url}/personalize/dags/demo_retail_ingest", cookies={"_token": token}, timeout=60)
        assert page.status_code == 200 and 'id="gate-metric"' in page.text
