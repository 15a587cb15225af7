"""What an extraction run returns, and the errors it raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from airflow.sdk.exceptions import AirflowFailException


class ExtractionError(RuntimeError):
    """Extraction could not produce a valid dataset; the message says why and what was kept."""


class ExtractionContractError(ExtractionError, AirflowFailException):
    """The app database does not hold what the config maps (a table, a column, a time type): a retry
    cannot fix it, so the task fails at once; the message names table, column and what to change."""


class RejectedShareExceeded(ExtractionError):
    """More rows broke the rules than the configured share allows; `result` holds the counts."""

    def __init__(self, message: str, result: ExtractionResult):
        super().__init__(message)
        self.result = result


@dataclass
class ExtractionResult:
    """What one extraction did. `to_dict()` is JSON-safe for XCom."""

    dataset_type: str
    bucket: str
    data_prefix: str  # the folder a dataset import job should read
    read: int = 0  # every row the query returned: written + rejected + erased
    written: int = 0
    # Rows of erased users (include/pipeline/erased_users.py): skipped, written nowhere.
    erased: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    quarantine_key: str | None = None
    bytes_written: int = 0
    start: str | None = None
    end: str | None = None
    content_hash: str | None = None  # snapshots: sha256 of the written CSV bytes, parts in order
    # Interactions whose time column is NULL or unreadable: in no interval, so this run quarantined
    # them with their reason in `untimed_quarantine_key` (outside the interval's counts and share).
    rows_without_time: int = 0
    untimed_quarantine_key: str | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def data_location(self) -> str:
        return f"s3://{self.bucket}/{self.data_prefix}"

    @property
    def empty(self) -> bool:
        return self.read == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "rejected": self.rejected, "data_location": self.data_location}
