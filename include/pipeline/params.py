"""The trigger forms of the three DAGs and the checks their first task makes, in one place.

Airflow's React form marks a param required unless its type allows "null", and shows an enum's
`None` as a literal "null" item; so optional params are typed `["null", ...]` with default None,
and enums get a real default instead of None. Every form submits as it opens.

JSON-schema validation (at trigger time: the REST API answers 400, the form refuses) cannot see
across params and lets unknown conf keys through; `check_run_params`, the first task of every run,
refuses both with AirflowFailException (no retry: a retry gets the same conf), naming the params.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from include.pipeline.config import PipelineConfig, tolerance_text
from include.pipeline.metric_names import METRIC_NAMES

INGEST, TRAIN_DEPLOY, BATCH_INFERENCE = "ingest", "train_deploy", "batch_inference"


def ingest_params(config: PipelineConfig) -> dict:
    from airflow.sdk import Param

    return {
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Manual runs: first day to extract (UTC, inclusive). Leave empty to use the run's interval.",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Manual runs: day after the last one to extract (UTC, exclusive). Give both or neither.",
        ),
        "full_import": Param(
            False,
            type="boolean",
            description="Import every partition of the dataset's history in S3 with a FULL import (replaces the dataset's bulk data).",
        ),
        "allow_shrink": Param(
            False,
            type="boolean",
            description="Let a FULL import leave the dataset with fewer records than it holds now (otherwise it fails naming both counts).",
        ),
    }


def train_deploy_params(config: PipelineConfig) -> dict:
    from airflow.sdk import Param

    # UPDATE exists only for user-personalization recipes: offer it only where it can run.
    updatable = [s.name for s in config.solutions if s.supports_update]
    modes = ["FULL", "UPDATE"] if updatable else ["FULL"]
    return {
        "training_mode": Param(
            config.solutions[0].training_mode,
            type="string",
            enum=modes,
            description="FULL retrains on all data; UPDATE (user-personalization) folds in new items and "
            + f"interactions (UPDATE applies to {', '.join(updatable) or 'no solution'}; the others train FULL).",
        ),
        "force_deploy": Param(
            False,
            type="boolean",
            description="Train even without new data, and deploy whatever the gate says (needs force_reason).",
        ),
        "force_reason": Param(
            None,
            type=["null", "string"],
            description="Required with force_deploy: why the gate is overridden (kept in the metrics history).",
        ),
        "gate_metric": Param(
            config.gate.metric,
            type="string",
            enum=list(METRIC_NAMES),
            description=f"The metric the gate compares (configured: {config.gate.metric}).",
        ),
        "gate_threshold": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Override the minimum of the gate metric (empty: the configured thresholds).",
        ),
        "gate_tolerance": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Override how far the challenger may trail the champion "
            f"(default {tolerance_text(config.gate.tolerance)}).",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            description="Train and evaluate, show the gate's decision, but leave the campaign untouched.",
        ),
    }


def dag_params(config: PipelineConfig, kind: str) -> dict:
    return {INGEST: ingest_params, TRAIN_DEPLOY: train_deploy_params}.get(kind, lambda _: {})(config)


def param_problems(
    kind: str, declared: set[str], conf: Mapping[str, Any], params: Mapping[str, Any]
) -> list[str]:
    """Everything wrong with a run's conf and params, each naming the params; empty when fine."""
    problems = []
    unknown = sorted(set(conf) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none (this DAG takes no params)"
        problems.append(f"conf key(s) {unknown} are not params of this DAG (its params: {known})")
    if kind == INGEST:
        start, end = params.get("start"), params.get("end")
        if bool(start) != bool(end):
            problems.append("params start and end: give both or neither (neither: the run's own interval)")
        elif start and end:
            days = {}
            for name, value in (("start", start), ("end", end)):
                try:
                    days[name] = date.fromisoformat(str(value).strip())
                except ValueError:
                    problems.append(f"param {name}={value!r} is not a date (YYYY-MM-DD)")
            if len(days) == 2 and days["end"] <= days["start"]:
                problems.append(
                    f"param end {days['end']} must be after start {days['start']} (end is exclusive)"
                )
    if kind == TRAIN_DEPLOY:
        reason = (params.get("force_reason") or "").strip()
        if params.get("force_deploy") and not reason:
            problems.append("param force_deploy needs force_reason: say why the gate is being overridden")
        if reason and not params.get("force_deploy"):
            problems.append(
                "param force_reason is set but force_deploy is not: tick force_deploy or clear the reason"
            )
    return problems


def check_run_params(
    kind: str, declared: set[str], conf: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> dict:
    """The first task of every run: fail at once, without retry, on conf a retry would not fix."""
    problems = param_problems(kind, declared, conf or {}, params)
    if problems:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("bad run params: " + "; ".join(problems))
    return {name: params.get(name) for name in sorted(declared)}
