"""Erased users: the list on S3 every extraction reads, and the filter that keeps their rows out.

The list is the set of USER_ID CSV files the erasure DAG writes, one per data deletion job, under
`PREFIX/erasure/users/` (each file is also that job's input). It is written before the job starts,
so from then on no extraction writes the users' rows anywhere: not to the data partitions, not to
the quarantine. Extraction counts them as `erased` instead, whatever the app DB still holds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

ERASED_USERS_FOLDER = "erasure/users"
USER_ID = "USER_ID"


def user_ids_csv(user_ids: Iterable[str]) -> bytes:
    """The data deletion job's input format: CSV with the single column USER_ID."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([USER_ID])
    writer.writerows([user] for user in user_ids)
    return buffer.getvalue().encode("utf-8")


def read_erased_users(s3: Any, bucket: str, folder_key: str) -> frozenset[str]:
    """Every USER_ID in the CSV files under `folder_key` (`PREFIX/erasure/users`)."""
    users: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder_key.rstrip("/") + "/"):
        for item in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8-sig")
            rows = csv.reader(io.StringIO(text, newline=""))
            header = next(rows, [])
            if [h.strip() for h in header] != [USER_ID]:
                raise ValueError(
                    f"s3://{bucket}/{item['Key']}: an erased-users file must have the single column "
                    f"USER_ID, found {header}"
                )
            users.update(row[0].strip() for row in rows if row and row[0].strip())
    return frozenset(users)


class ErasedUserFilter:
    """Drops the rows of erased users before validation, counting them in `erased`.

    A no-op (and no cost) for datasets without USER_ID and when nobody was erased.
    """

    def __init__(self, field_names: Sequence[str], users: Iterable[str]):
        self.users = frozenset(users)
        self.index = field_names.index(USER_ID) if self.users and USER_ID in field_names else None
        self.erased = 0

    @property
    def active(self) -> bool:
        return self.index is not None

    def keeps_row(self, row: Sequence[Any]) -> bool:
        if self.index is None or str(row[self.index]) not in self.users:
            return True
        self.erased += 1
        return False

    def keep_records(self, records: list[bytes]) -> list[bytes]:
        """Raw CSV records (PostgreSQL COPY), one per item, returned as they came."""
        if self.index is None:
            return records
        kept = []
        for record in records:
            if self._user_of(record) in self.users:
                self.erased += 1
            else:
                kept.append(record)
        return kept

    def _user_of(self, record: bytes | memoryview) -> str:
        record = bytes(record)  # psycopg's COPY yields memoryviews
        if self.index == 0 and not record.startswith(b'"'):
            return record.split(b",", 1)[0].rstrip(b"\r\n").decode("utf-8")
        return next(csv.reader([record.decode("utf-8")]))[self.index]
