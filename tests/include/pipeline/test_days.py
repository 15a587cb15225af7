"""The day/partition convention: UTC normalising, whole days, dt= names built and parsed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pendulum
import pytest

from include.pipeline import days


def test_to_utc_gives_plain_utc_from_pendulum_strings_and_other_zones():
    plain = days.to_utc(pendulum.datetime(2026, 3, 1, tz="Europe/Paris"))
    assert type(plain) is datetime and plain.tzinfo is UTC and plain.hour == 23
    assert days.to_utc("2026-03-01T00:00:00Z") == datetime(2026, 3, 1, tzinfo=UTC)
    assert days.to_utc(datetime(2026, 3, 1, 5, tzinfo=timezone(timedelta(hours=5)))).hour == 0
    assert days.to_utc(datetime(2026, 3, 1)) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"start=.*has no time zone"):
        days.to_utc(datetime(2026, 3, 1), "start", naive_is_utc=False)
    with pytest.raises(ValueError, match="end='soon' is not an ISO"):
        days.to_utc("soon", "end")
    assert days.maybe_utc(None) is None


def test_whole_days_cut_and_refuse_partial_or_reversed_intervals():
    start = datetime(2026, 1, 30, tzinfo=UTC)
    cut = days.whole_days(start, "2026-02-02T00:00:00+00:00")
    assert [days.partition_name(d) for d, _ in cut] == ["dt=2026-01-30", "dt=2026-01-31", "dt=2026-02-01"]
    with pytest.raises(ValueError, match=r"end .* is not midnight UTC"):
        days.whole_days(start, datetime(2026, 1, 31, 6, tzinfo=UTC))
    with pytest.raises(ValueError, match="reversed"):
        days.whole_days(start, start)


def test_partition_names_round_trip_and_are_found_in_keys():
    assert days.partition_name(date(2026, 3, 1)) == "dt=2026-03-01"
    assert days.partition_day("dt=2026-03-01") == date(2026, 3, 1)
    assert days.compact("dt=2026-03-01") == "20260301" and days.from_compact("20260301") == "dt=2026-03-01"
    assert days.partition_in_key("s3://b/p/interactions/dt=2026-03-01/") == "dt=2026-03-01"
    assert days.partition_in_key("p/interactions/dt=2026-03-01/part-00000.csv") == "dt=2026-03-01"
    assert days.partition_in_key("p/imports/interactions/job/") is None
    for bad in ("2026-03-01", "dt=2026-13-01"):
        with pytest.raises(ValueError, match="not a partition name"):
            days.partition_day(bad)
