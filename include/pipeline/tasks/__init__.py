"""What the DAGs' Python tasks do, one module per DAG: ingest, training (train_deploy),
batch (batch_inference). The DAG file only wires these together.

Each function takes the validated config and the task's inputs and does the work through
Airflow's hooks (the AWS connection decides whether that is AWS or the local service), logging
what it decided and why in plain words, since the task log is what a person reads in the UI.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def on_failure_summary(context: Mapping[str, Any]) -> None:
    """One line per failed task: the hook point for Slack / SNS / PagerDuty notifiers."""
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    log.error(
        "PIPELINE FAILURE dag=%s task=%s run=%s try=%s: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "run_id", "?"),
        getattr(ti, "try_number", "?"),
        (str(error).splitlines() or [type(error).__name__])[0] if error else "no exception recorded",
    )
