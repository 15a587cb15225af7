"""How a pipeline's runs behave, apart from what they do: task retries, waits and pools, and who
is notified. Part of the pipeline config (include/pipeline/config.py: `tasks:` and `notifications:`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from include.pipeline.config_types import StrictModel
from include.pipeline.notify import EVENTS as NOTIFICATION_EVENTS

# The pool that caps concurrent dataset import jobs across all pipelines: AWS allows at most 5
# pending or in-progress import jobs per region (a hard limit). Created by `ensure_import_pool()`.
DEFAULT_IMPORT_POOL = "personalize_import_jobs"
DEFAULT_IMPORT_POOL_SLOTS = 5
# The pool that caps concurrent trainings: AWS allows 20 pending or in-progress solution versions
# per region (adjustable; docs/PERSONALIZE_FACTS.md). Created by `ensure_training_pool()`.
DEFAULT_TRAINING_POOL = "personalize_training"
DEFAULT_TRAINING_POOL_SLOTS = 20


class NotificationsConfig(StrictModel):
    """Who hears about failures, rejections and stale models (include/pipeline/notify.py)."""

    # SNS topic published to through the Amazon provider's SnsNotifier.
    sns_topic_arn: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-]{1,256}(\.fifo)?$"
            ),
        ]
        | None
    ) = None
    # AWS connection for SNS; default: the pipeline's aws_conn_id.
    aws_conn_id: str | None = None
    # Addresses mailed through the SMTP provider's SmtpNotifier and connection `smtp_conn_id`.
    email: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []
    smtp_conn_id: str = "smtp_default"
    events: list[Literal[NOTIFICATION_EVENTS]] = list(NOTIFICATION_EVENTS)  # type: ignore[valid-type]
    # Notify when the gate has rejected this many challengers in a row.
    rejections_in_a_row: int = Field(3, ge=2)

    @field_validator("email")
    @classmethod
    def _smtp_provider_installed(cls, value: list[str]) -> list[str]:
        if value:
            try:
                import airflow.providers.smtp.notifications.smtp  # noqa: F401
            except ImportError as err:
                raise ValueError(
                    "e-mail needs apache-airflow-providers-smtp, which is not installed: use sns_topic_arn"
                ) from err
        return value


class TasksConfig(StrictModel):
    """Airflow task hygiene every task gets."""

    retries: int = Field(2, ge=1)
    retry_delay_seconds: float = Field(60, gt=0)
    max_retry_delay_seconds: float = Field(900, gt=0)
    # Upper bound on each wait (import job, training, campaign, batch job).
    wait_timeout_minutes: int = Field(360, ge=1)
    # Seconds between status polls while waiting.
    poll_seconds: float = Field(30, gt=0)
    import_pool: str = DEFAULT_IMPORT_POOL
    # Ingest extracts one task per day (include/pipeline/extract_days.py) in this pool, at most
    # extract_parallelism at once per run: a pool of your own caps the app DB's load across pipelines.
    extract_pool: str = "default_pool"
    extract_parallelism: int = Field(4, ge=1)
    # Pool of the train tasks (e.g. DEFAULT_TRAINING_POOL, made by setup.ensure_training_pool);
    # None: Airflow's default_pool. A pool named here must exist, or the trainings never start.
    training_pool: str | None = None
    # Wait in the triggerer (no worker slot held); false waits in the worker.
    deferrable: bool = True
    # Deferrable waits first poll in the worker this long and defer only if still in progress:
    # short waits never defer (see "Deferral race" in docs/DESIGN.md).
    defer_after_seconds: float = Field(30, ge=0)
