"""Config of the lifecycle DAGs (dags/personalize_lifecycle.py): user erasure and dataset export.

Keys `erasure:` and `export:` of a pipeline config; validated with the rest of the file, so an error
names the file and the dotted key like every other config error. Kept apart from config.py because
these DAGs are optional additions to the three core ones.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from include.pipeline.config_types import Cron

# A table (optionally schema-qualified) or a column: quoted into SQL, so only plain identifiers.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=63)]
TableName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", max_length=127)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeletionRequestsConfig(_Strict):
    """The app's table of deletion requests: one row per user to erase, pending while `done_column` is NULL."""

    table: TableName
    user_id_column: Identifier = "user_id"
    # Set to the UTC time the erasure finished (ISO 8601 text on SQLite, the column's type on PostgreSQL).
    done_column: Identifier = "erased_at"
    # A connection that may UPDATE the table; default the pipeline's app_db_conn_id (which, for
    # SQLite, extraction opens read-only but erasure opens for writing).
    conn_id: str | None = None


class ErasureConfig(_Strict):
    """`<name>_erase_users`: manual (a form of user IDs) and, with `schedule`, reading `requests`."""

    schedule: Cron | None = None
    requests: DeletionRequestsConfig | None = None

    @model_validator(mode="after")
    def _schedule_reads_requests(self) -> ErasureConfig:
        if self.schedule is not None and self.requests is None:
            raise ValueError(
                "schedule is set but requests is not: scheduled runs read the deletion-requests table "
                "named in erasure.requests (table, user_id_column, done_column)"
            )
        return self


class ExportConfig(_Strict):
    """`<name>_export`: every dataset of the group exported to S3 once a month (a backup)."""

    # Monthly by default; a run exports under its month, so more runs in a month adopt the same jobs.
    schedule: Cron = "0 5 1 * *"
    # BULK: imported records; PUT: recorded by PutEvents/PutItems/PutUsers; ALL: both.
    ingestion_mode: Literal["BULK", "PUT", "ALL"] = "ALL"
