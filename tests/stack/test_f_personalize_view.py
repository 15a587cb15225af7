"""(view) The Personalize view inside the real Airflow UI shows what the stack's S3 and Personalize hold.

Runs after (a)-(e) (file order): the pipeline has deployed, so a campaign serves a version and the
metrics history has records. The stack runs the simple auth manager with every visitor admin, so a
user without access (the 401/403 side) cannot be shown here; tests/plugins/ui/test_api_server.py
checks it against a real API server with real users.
"""

from __future__ import annotations

import json

import pytest

from include.pipeline.history import history_key
from tests.stack.conftest import RUN_DEADLINE

pytestmark = pytest.mark.stack
UI_DEADLINE = 120


def quiet(stack) -> bool:
    """No run of any pipeline DAG queued or running: the history and the campaign hold still."""
    return not any(stack.dag_runs(dag_id, state=["queued", "running"]) for dag_id in stack.dag_ids().values())


def serving_version_id(stack) -> str:
    personalize = stack.personalize_client()
    (campaign,) = [
        c
        for c in personalize.list_campaigns()["campaigns"]
        if c["name"] == stack.config.solutions[0].campaign.name
    ]
    described = personalize.describe_campaign(campaignArn=campaign["campaignArn"])["campaign"]
    return described["solutionVersionArn"].rsplit("/", 1)[-1]


def history_lines(stack) -> int:
    body = stack.s3_client().get_object(
        Bucket=stack.config.s3.bucket, Key=history_key(stack.config.s3.prefix)
    )
    lines = [line for line in body["Body"].read().decode("utf-8").splitlines() if line.strip()]
    for line in lines:
        json.loads(line)  # each line one record: a count of lines is a count of training runs
    return len(lines)


def plugin_frame(browser, path: str, wait, ready, By):
    """Open a UI page that embeds the view and switch into its iframe (the external view's name is its title)."""
    browser.driver.switch_to.default_content()
    browser.open(path)
    wait.until(ready.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, 'iframe[title="Personalize"]')))


def test_the_personalize_view_shows_the_serving_version_and_every_training_run(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    stack.wait_for(lambda: quiet(stack), RUN_DEADLINE, "every run to finish before reading the view")
    name, train = stack.config.name, stack.dag_ids()["train_deploy"]
    version_id, records = serving_version_id(stack), history_lines(stack)
    assert records > 0, "the tier trained before this test: the metrics history must have records"
    wait = WebDriverWait(browser.driver, UI_DEADLINE)

    # (a) The overview under the UI's nav entry: the pipeline's row names the version the campaign serves.
    plugin_frame(browser, "/plugin/personalize", wait, ready, By)
    row = f'tr.pipeline[data-pipeline="{name}"]'
    cell = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"{row} td.serving-version code")))
    shown = cell.text.strip()
    browser.driver.switch_to.default_content()
    browser.screenshot("personalize_view_overview")
    assert shown == version_id

    # (b) The DAG tab of train_deploy: one gate-chart point and one decision row per history record.
    plugin_frame(browser, f"/dags/{train}/plugin/personalize-dag", wait, ready, By)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "svg#gate-metric")))
    points = browser.driver.find_elements(By.CSS_SELECTOR, "svg#gate-metric circle.point")
    decisions = browser.driver.find_elements(By.CSS_SELECTOR, "table#gate-decisions tr.decision")
    counts = {"points": len(points), "decisions": len(decisions)}
    browser.driver.switch_to.default_content()
    browser.screenshot("personalize_view_train_deploy_tab")
    assert counts == {"points": records, "decisions": records}, f"metrics.jsonl has {records} lines"
