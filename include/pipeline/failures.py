"""Errors a retry cannot fix fail their task at once: the retry policy every task of the pipelines gets.

A retry runs the same code on the same config, params and data, so these fail the same way again;
retrying them only holds the DAG (max_active_runs=1) through minutes of backoff. Named by dotted
path so the policy is built without importing what raises them.
"""

from __future__ import annotations

PERMANENT_ERRORS = (
    # the YAML config is invalid
    "include.pipeline.config.ConfigError",
    "include.pipeline.mapping.MappingError",
    "include.pipeline.rules.SchemaError",
    # the app database's data breaks the rules beyond datasets.max_rejected_share
    "include.pipeline.extract_result.RejectedShareExceeded",
    # the import plan cannot be made (e.g. one file over the import size limit)
    "include.pipeline.imports.ImportPlanError",
    # a Personalize resource exists with other, unchangeable settings (schema, recipe, filter)
    "personalize.errors.PersonalizeResourceConflictError",
)


def no_retry_policy():
    """An ExceptionRetryPolicy failing PERMANENT_ERRORS at once; anything else retries as configured."""
    from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=list(PERMANENT_ERRORS),
                action=RetryAction.FAIL,
                reason="a retry cannot fix this (config, params or data): fix what the error names, then rerun",
            )
        ]
    )
