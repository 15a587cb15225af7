"""Errors a retry cannot fix fail their task at once: the retry policy every task of the pipelines gets.

A retry runs the same code on the same config, params and data, so these fail the same way again;
retrying them only holds the DAG (max_active_runs=1) through minutes of backoff. Named by dotted
path, but Airflow 3.3's RetryRule imports every path when it is built (to warn of a typo), and that
is at parse, in every DAG's default_args: so each path names a module the parse loads anyway or a
light one. ImportPlanError lives here for that reason (its planner, imports.py with the S3 ledger,
cost ~10 ms a parse); imports.py raises it.
"""

from __future__ import annotations

PERMANENT_ERRORS = (
    # the YAML config is invalid
    "include.pipeline.config.ConfigError",
    "include.pipeline.mapping.MappingError",
    "personalize_contract.data_rules.SchemaError",
    # the app database's data breaks the rules beyond datasets.max_rejected_share
    "include.pipeline.extract_result.RejectedShareExceeded",
    # the import plan cannot be made (e.g. one file over the import size limit)
    "include.pipeline.failures.ImportPlanError",
    # a Personalize resource exists with other, unchangeable settings (schema, recipe, filter)
    "personalize.errors.PersonalizeResourceConflictError",
)


class ImportPlanError(ValueError):
    """The import plan cannot be made (e.g. one file over the import size limit): include/pipeline/imports.py."""


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
