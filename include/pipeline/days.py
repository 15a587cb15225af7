"""The day/partition convention, in one place.

Interactions are extracted, imported and reconciled in whole UTC days, each day one partition named
`dt=YYYY-MM-DD` (Hive style, so Athena/Glue read the layout as is). Every module that turns a moment
into UTC, checks an interval is whole days, or builds / parses a `dt=` name does it here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

PARTITION_PREFIX = "dt="
_PARTITION_IN_KEY = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")


def to_utc(value: Any, name: str = "moment", *, naive_is_utc: bool = True) -> datetime:
    """A stdlib UTC datetime from a datetime (pendulum included) or an ISO string.

    Airflow hands out pendulum datetimes, whose arithmetic mixes badly with stdlib UTC ones, so the
    result is always a plain `datetime` in `datetime.UTC`. A naive value is taken as UTC, unless
    `naive_is_utc` is False (callers where a missing zone is a bug), then it is refused naming `name`.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(f"{name}={value!r} is not an ISO date or timestamp") from err
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        if not naive_is_utc:
            raise ValueError(f"{name}={value.isoformat()} has no time zone; pass an aware UTC datetime")
        value = value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value.timestamp(), UTC)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def maybe_utc(value: Any) -> datetime | None:
    return None if value is None else to_utc(value)


def is_midnight(moment: datetime) -> bool:
    return to_utc(moment).time() == time(0)


def whole_days(start: Any, end: Any) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into whole UTC days, one per partition; refuses anything else, saying why."""
    if (
        isinstance(start, datetime)
        and isinstance(end, datetime)
        and (start.tzinfo is None or end.tzinfo is None)
    ):
        raise ValueError("interval bounds must be timezone-aware")
    start, end = to_utc(start, "start"), to_utc(end, "end")
    if end <= start:
        raise ValueError(f"empty or reversed interval: [{start.isoformat()}, {end.isoformat()})")
    for name, moment in (("start", start), ("end", end)):
        if not is_midnight(moment):
            raise ValueError(
                f"interval {name} {moment.isoformat()} is not midnight UTC: interactions are extracted "
                "in whole days (one dt=YYYY-MM-DD partition per day)"
            )
    days = []
    day = start
    while day < end:
        days.append((day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return days


def partition_name(day: date | datetime) -> str:
    """`dt=YYYY-MM-DD` of a day (a datetime is taken in UTC)."""
    if isinstance(day, datetime):
        day = to_utc(day).date()
    return f"{PARTITION_PREFIX}{day.isoformat()}"


def partition_day(name: str) -> date:
    """The day of a `dt=YYYY-MM-DD` partition name; raises naming the value otherwise."""
    if not name.startswith(PARTITION_PREFIX):
        raise ValueError(f"{name!r} is not a partition name (dt=YYYY-MM-DD)")
    try:
        return date.fromisoformat(name[len(PARTITION_PREFIX) :])
    except ValueError as err:
        raise ValueError(f"{name!r} is not a partition name (dt=YYYY-MM-DD)") from err


def partition_in_key(key: str) -> str | None:
    """The `dt=YYYY-MM-DD` folder an S3 key or URI lies in, if any."""
    match = _PARTITION_IN_KEY.search(key)
    return f"{PARTITION_PREFIX}{match.group(1)}" if match else None


def compact(name: str) -> str:
    """`dt=2026-03-01` -> `20260301`, for resource names (Personalize allows no `=`)."""
    return partition_day(name).strftime("%Y%m%d") if name.startswith(PARTITION_PREFIX) else name


def from_compact(text: str) -> str:
    """`20260301` -> `dt=2026-03-01` (the inverse of `compact`)."""
    return partition_name(datetime.strptime(text, "%Y%m%d").date())
