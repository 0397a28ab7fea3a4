"""Calendar and rolling windows, including DST changes and month ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.windows import (
    floor_hour,
    hours_in,
    next_window,
    time_left,
    window_at,
)

UTCZ = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def test_day_in_utc() -> None:
    w = window_at("day", utc(2026, 11, 24, 14, 5), UTCZ)
    assert (w.start, w.end, w.rolling) == (utc(2026, 11, 24), utc(2026, 11, 25), False)
    assert len(hours_in(w)) == 24


def test_day_in_berlin_is_cut_at_local_midnight() -> None:
    w = window_at("day", utc(2026, 11, 24, 23, 30), BERLIN)  # 00:30 on the 25th in Berlin
    assert w.start == utc(2026, 11, 24, 23)
    assert w.end == utc(2026, 11, 25, 23)


def test_spring_forward_day_has_23_hours() -> None:
    w = window_at("day", utc(2026, 3, 29, 12), BERLIN)
    assert (w.start, w.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert len(hours_in(w)) == 23


def test_fall_back_day_has_25_hours() -> None:
    w = window_at("day", utc(2026, 11, 1, 5, 30), NEW_YORK)  # 01:30 EDT, the first one
    assert (w.start, w.end) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert len(hours_in(w)) == 25


def test_repeated_local_hour_is_two_windows() -> None:
    first = window_at("hour", utc(2026, 11, 1, 5, 30), NEW_YORK)  # 01:30 EDT
    second = window_at("hour", utc(2026, 11, 1, 6, 30), NEW_YORK)  # 01:30 EST
    assert (first.start, first.end) == (utc(2026, 11, 1, 5), utc(2026, 11, 1, 6))
    assert (second.start, second.end) == (utc(2026, 11, 1, 6), utc(2026, 11, 1, 7))


def test_lord_howe_half_hour_shift() -> None:
    # DST ends 2026-04-05 02:00 LHDT (+11) -> 01:30 LHST (+10:30), i.e. 15:00Z
    w = window_at("day", utc(2026, 4, 5, 1), LORD_HOWE)
    assert w.end - w.start == timedelta(hours=24, minutes=30)


def test_a_skipped_local_date_makes_the_day_before_end_two_dates_later() -> None:
    # Samoa skipped 2011-12-30 (UTC-10 -> UTC+14)
    apia = ZoneInfo("Pacific/Apia")
    w = window_at("day", utc(2011, 12, 29, 20), apia)
    assert (w.start, w.end) == (utc(2011, 12, 29, 10), utc(2011, 12, 30, 10))
    assert next_window(w, apia).start == w.end


def test_week_starts_monday() -> None:
    w = window_at("week", utc(2026, 11, 29, 20), UTCZ)  # a Sunday
    assert (w.start, w.end) == (utc(2026, 11, 23), utc(2026, 11, 30))
    assert w.start.weekday() == 0


def test_week_across_dst_change_has_169_hours() -> None:
    w = window_at("week", utc(2026, 10, 22, 12), BERLIN)  # clocks go back on Sunday the 25th
    assert len(hours_in(w)) == 7 * 24 + 1


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (utc(2026, 2, 28, 23, 59), utc(2026, 2, 1), utc(2026, 3, 1)),
        (utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1)),
        (utc(2026, 12, 31, 23, 59, 59), utc(2026, 12, 1), utc(2027, 1, 1)),
        (utc(2026, 1, 1), utc(2026, 1, 1), utc(2026, 2, 1)),
    ],
)
def test_month_ends(now: datetime, start: datetime, end: datetime) -> None:
    w = window_at("month", now, UTCZ)
    assert (w.start, w.end) == (start, end)


def test_month_in_new_york_at_utc_month_start_is_previous_month() -> None:
    w = window_at("month", utc(2026, 12, 1, 3), NEW_YORK)  # still Nov 30 in New York
    assert (w.start, w.end) == (utc(2026, 11, 1, 4), utc(2026, 12, 1, 5))


def test_kolkata_day_owns_buckets_starting_inside_it() -> None:
    w = window_at("day", utc(2026, 11, 24, 12), KOLKATA)
    assert (w.start, w.end) == (utc(2026, 11, 23, 18, 30), utc(2026, 11, 24, 18, 30))
    hours = hours_in(w)
    assert hours[0] == utc(2026, 11, 23, 19)
    assert hours[-1] == utc(2026, 11, 24, 18)
    assert len(hours) == 24


def test_rolling_window_covers_current_partial_hour_and_previous_hours() -> None:
    w = window_at("6h", utc(2026, 11, 24, 14, 5), UTCZ)
    assert (w.start, w.end, w.rolling) == (utc(2026, 11, 24, 9), utc(2026, 11, 24, 15), True)
    assert len(hours_in(w)) == 6
    week = window_at("7d", utc(2026, 11, 24, 14, 5), BERLIN)  # zone plays no part
    assert (week.start, week.end) == (utc(2026, 11, 17, 15), utc(2026, 11, 24, 15))
    assert len(hours_in(week)) == 168


def test_time_left_and_floor_hour() -> None:
    w = window_at("day", utc(2026, 11, 24, 14, 30), UTCZ)
    assert time_left(w, utc(2026, 11, 24, 14, 30)) == timedelta(hours=9, minutes=30)
    assert time_left(w, utc(2026, 11, 26)) == timedelta(0)
    assert floor_hour(datetime(2026, 11, 24, 15, 59, tzinfo=BERLIN)) == utc(2026, 11, 24, 14)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        window_at("day", datetime(2026, 11, 24), UTCZ)


# --------------------------------------------------------------------------- properties

ZONES = [UTCZ, BERLIN, NEW_YORK, LORD_HOWE, KOLKATA, ZoneInfo("America/Santiago")]
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    now=instants,
    zone=st.sampled_from(ZONES),
    size=st.sampled_from(["hour", "day", "week", "month"]),
)
def test_calendar_window_contains_now_starts_on_local_boundary_and_tiles(
    now: datetime, zone: ZoneInfo, size: str
) -> None:
    w = window_at(size, now, zone)
    assert w.start <= now < w.end
    local = w.start.astimezone(zone)
    assert (local.minute, local.second, local.microsecond) == (0, 0, 0)
    before = (w.start - timedelta(minutes=15)).astimezone(zone)
    if size == "hour":
        assert before.hour != local.hour or before.date() != local.date()
    else:
        # the first instant of its local day (midnight, or the DST transition
        # when midnight does not exist)
        assert before.date() < local.date()
        if size == "week":
            assert local.weekday() == 0
        if size == "month":
            assert local.day == 1
    after = next_window(w, zone)
    assert after.start == w.end  # no gap, no overlap
    assert after.end > after.start
    assert window_at(size, w.end - timedelta(microseconds=1), zone) == w
    assert window_at(size, w.start, zone) == w


@settings(max_examples=200, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), hours=st.integers(1, 24 * 31))
def test_rolling_window_spans_exactly_n_buckets(now: datetime, zone: ZoneInfo, hours: int) -> None:
    w = window_at(f"{hours}h", now, zone)
    assert w.rolling
    assert w.start <= now < w.end
    assert w.end == floor_hour(now) + timedelta(hours=1)
    assert len(hours_in(w)) == hours


@settings(max_examples=200, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES))
def test_days_partition_the_hour_buckets(now: datetime, zone: ZoneInfo) -> None:
    day = window_at("day", now, zone)
    nxt = next_window(day, zone)
    a, b = hours_in(day), hours_in(nxt)
    assert not set(a) & set(b)
    assert b[0] - a[-1] == timedelta(hours=1)
    assert 22 <= len(a) <= 26
