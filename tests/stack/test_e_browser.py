"""(browser) Headless chromium opens train_deploy's trigger form: Trigger is enabled with the defaults, submits, the run shows."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack
UI_DEADLINE = 90


def test_the_trigger_form_submits_with_its_defaults_and_the_run_shows(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    train = stack.dag_ids()["train_deploy"]
    stack.unpause(train)
    before = {r["dag_run_id"] for r in stack.dag_runs(train)}
    wait = WebDriverWait(browser.driver, UI_DEADLINE)

    browser.open(f"/dags/{train}")
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
    dialog = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".chakra-dialog__content")))
    wait.until(lambda _: "force_reason" in dialog.text and "gate_metric" in dialog.text)
    submit = next(b for b in dialog.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Trigger")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", submit)
    browser.screenshot("train_deploy_trigger_form")
    assert submit.is_enabled(), "the form must submit with its defaults (no required field left empty)"
    # The defaults are shown: the configured training mode and gate metric are selected.
    assert stack.config.solutions[0].training_mode in dialog.text
    assert stack.config.gate.metric in dialog.text
    submit.click()

    def new_run():
        runs = [r for r in stack.dag_runs(train) if r["dag_run_id"] not in before]
        return runs[0] if runs else None

    run = stack.wait_for(new_run, UI_DEADLINE, "the run the form triggered")
    assert run["run_type"] == "manual"
    assert run["conf"].get("gate_metric") in (None, stack.config.gate.metric)
    browser.open(f"/dags/{train}/runs/{run['dag_run_id']}")
    wait.until(lambda driver: run["dag_run_id"] in driver.find_element(By.TAG_NAME, "body").text)
    browser.screenshot("train_deploy_triggered_run")
    finished = stack.wait_run(train, run["dag_run_id"])
    assert finished["state"] == "success"
