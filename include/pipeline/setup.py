"""One-time Airflow setup the pipelines need: the pools that cap concurrent import jobs and trainings.

AWS allows at most 5 pending or in-progress dataset import jobs per region (a hard limit), shared
by every pipeline in the account, so one pool across all configs holds them; deferred import waits
count against it (include_deferred), because a deferred job is still running in Personalize.
Equivalent CLI: `airflow pools set personalize_import_jobs 5 "..." --include-deferred`.
"""

from __future__ import annotations

from include.pipeline.run_config import (
    DEFAULT_IMPORT_POOL,
    DEFAULT_IMPORT_POOL_SLOTS,
    DEFAULT_TRAINING_POOL,
    DEFAULT_TRAINING_POOL_SLOTS,
)

POOL_DESCRIPTION = "Amazon Personalize dataset import jobs (AWS: at most 5 pending or in progress per region)"


def ensure_import_pool(name: str = DEFAULT_IMPORT_POOL, slots: int = DEFAULT_IMPORT_POOL_SLOTS) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name=name, slots=slots, description=POOL_DESCRIPTION, include_deferred=True)


def ensure_training_pool(name: str = DEFAULT_TRAINING_POOL, slots: int = DEFAULT_TRAINING_POOL_SLOTS) -> None:
    """Trainings of every pipeline: AWS allows 20 pending or in-progress solution versions per region."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        name=name,
        slots=slots,
        description="Amazon Personalize trainings (AWS: 20 pending or in-progress solution versions per region)",
        include_deferred=True,
    )
