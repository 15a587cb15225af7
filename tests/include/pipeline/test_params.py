"""The trigger forms submit as they open, and the first task refuses what JSON schema cannot see."""

from __future__ import annotations

import pytest

from include.pipeline.params import (
    BATCH_INFERENCE,
    INGEST,
    TRAIN_DEPLOY,
    check_run_params,
    dag_params,
    param_problems,
)


@pytest.fixture(scope="module")
def config():
    from include.pipeline.config import load_configs

    return load_configs()[0]


@pytest.mark.parametrize("kind", [INGEST, TRAIN_DEPLOY, BATCH_INFERENCE])
def test_every_form_validates_with_its_defaults_and_marks_nothing_required(config, kind):
    from airflow.sdk.definitions.param import ParamsDict

    params = dag_params(config, kind)
    resolved = ParamsDict(params).validate()  # what the form submits untouched
    assert set(resolved) == set(params)
    for name, param in params.items():
        types = param.schema.get("type")
        types = types if isinstance(types, list) else [types]
        # The React form marks a param required unless "null" is one of its types; a None default
        # on a non-null type cannot be submitted.
        if param.value is None:
            assert "null" in types, f"{name}: optional but not typed with null"
        assert None not in param.schema.get("enum", []), f"{name}: the dropdown would show 'null'"
    assert check_run_params(kind, set(params), {}, resolved) == dict(sorted(resolved.items()))


def test_train_deploy_form_refuses_bad_values_at_trigger_time(config):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(dag_params(config, TRAIN_DEPLOY))
    for name, bad in (("training_mode", "BOGUS"), ("gate_metric", "accuracy"), ("gate_threshold", 2)):
        with pytest.raises(ParamValidationError, match=name):
            _validate(params, name, bad)


def _validate(params, name, value):
    from airflow.sdk.definitions.param import ParamsDict

    fresh = ParamsDict(params)
    fresh[name] = value
    fresh.validate()


def test_update_is_offered_only_for_recipes_that_support_it(config):
    modes = dag_params(config, TRAIN_DEPLOY)["training_mode"].schema["enum"]
    assert modes == (["FULL", "UPDATE"] if config.solutions[0].supports_update else ["FULL"])
    other = config.model_copy(
        update={
            "solutions": [s.model_copy(update={"recipe": "aws-popularity-count"}) for s in config.solutions]
        }
    )
    assert dag_params(other, TRAIN_DEPLOY)["training_mode"].schema["enum"] == ["FULL"]


INGEST_DECLARED = {"start", "end", "full_import"}
TRAIN_DECLARED = {
    "training_mode",
    "force_deploy",
    "force_reason",
    "gate_metric",
    "gate_threshold",
    "gate_tolerance",
    "dry_run",
}


@pytest.mark.parametrize(
    ("kind", "declared", "conf", "expected"),
    [
        (
            TRAIN_DEPLOY,
            TRAIN_DECLARED,
            {"trainig_mode": "FULL"},
            "conf key(s) ['trainig_mode'] are not params",
        ),
        (BATCH_INFERENCE, set(), {"x": 1}, "this DAG takes no params"),
        (TRAIN_DEPLOY, TRAIN_DECLARED, {"force_deploy": True}, "force_deploy needs force_reason"),
        (
            TRAIN_DEPLOY,
            TRAIN_DECLARED,
            {"force_deploy": True, "force_reason": "  "},
            "force_deploy needs force_reason",
        ),
        (
            TRAIN_DEPLOY,
            TRAIN_DECLARED,
            {"force_reason": "why"},
            "force_reason is set but force_deploy is not",
        ),
        (INGEST, INGEST_DECLARED, {"start": "2026-01-01"}, "start and end: give both or neither"),
        (INGEST, INGEST_DECLARED, {"end": "2026-01-01"}, "start and end: give both or neither"),
        (
            INGEST,
            INGEST_DECLARED,
            {"start": "2026-01-02", "end": "2026-01-02"},
            "end 2026-01-02 must be after start",
        ),
        (INGEST, INGEST_DECLARED, {"start": "2026-01-02", "end": "2026-01-01"}, "must be after start"),
        (
            INGEST,
            INGEST_DECLARED,
            {"start": "2026-13-01", "end": "2026-01-01"},
            "param start='2026-13-01' is not a date",
        ),
    ],
)
def test_the_first_task_fails_without_retry_naming_the_params(kind, declared, conf, expected):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="bad run params") as raised:
        check_run_params(kind, declared, conf, conf)
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "conf"),
    [
        (INGEST, {"start": "2026-01-01", "end": "2026-01-08", "full_import": True}),
        (INGEST, {}),
        (TRAIN_DEPLOY, {"force_deploy": True, "force_reason": "hotfix", "dry_run": True}),
        (TRAIN_DEPLOY, {"training_mode": "UPDATE", "gate_threshold": 0.1}),
    ],
)
def test_good_conf_passes(kind, conf):
    declared = INGEST_DECLARED if kind == INGEST else TRAIN_DECLARED
    assert param_problems(kind, declared, conf, conf) == []


def test_errors_a_retry_cannot_fix_fail_at_once_and_others_retry():
    from airflow.sdk.definitions.retry_policy import RetryAction

    from include.pipeline.config import ConfigError
    from include.pipeline.extract_result import RejectedShareExceeded
    from include.pipeline.failures import PERMANENT_ERRORS, no_retry_policy
    from include.pipeline.imports import ImportPlanError

    policy = no_retry_policy()
    rejected = RejectedShareExceeded.__new__(RejectedShareExceeded)  # its fields do not matter here
    for error in (ConfigError("x"), rejected, ImportPlanError("x")):
        assert policy.evaluate(error, try_number=1, max_tries=3).action is RetryAction.FAIL, error
    assert policy.evaluate(ConnectionError("reset"), try_number=1, max_tries=3).action is RetryAction.DEFAULT
    # Every path names a class that exists: a typo would silently retry again.
    from airflow.sdk.module_loading import import_string

    for path in PERMANENT_ERRORS:
        assert isinstance(import_string(path), type), path


def test_every_pipeline_task_carries_the_policy_and_checks_params_first():
    from airflow.dag_processing.dagbag import DagBag

    from include.pipeline.config import load_configs
    from tests.dags.test_dag_integrity import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    for config in load_configs():
        for dag_id in config.dag_ids.values():
            dag = bag.dags[dag_id]
            assert [t.task_id for t in dag.roots] == ["check_params"], dag_id
            for task in dag.tasks:
                policy = getattr(task, "retry_policy", None) or task.partial_kwargs.get("retry_policy")
                assert policy is not None, f"{dag_id}.{task.task_id} retries errors a retry cannot fix"
