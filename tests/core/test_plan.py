"""Fetch planning: day buckets for settled UTC days, hours where windows need
them, the settle period and current hour on every poll, chunking.

The properties at the end run the planner against a tiny in-memory store
that applies each request the way the real one does (delete the points whose
start lies in ``[start, end)``, insert that range's buckets of the request's
size) and check the contract: every hour of every current window is counted
exactly once by "sum of the buckets lying wholly inside the window"."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.model import FetchRequest, SeriesKey, SpendPoint, Window
from daemon.core.plan import MAX_DAYS, MAX_HOURS, plan_fetch, plan_series
from daemon.core.spend import SeriesView
from daemon.core.windows import floor_hour, hours_in, window_at

H = timedelta(hours=1)
D = timedelta(days=1)
NOW = datetime(2026, 11, 24, 14, 7, tzinfo=UTC)
CUR = datetime(2026, 11, 24, 14, tzinfo=UTC)  # current hour bucket
TODAY = datetime(2026, 11, 24, tzinfo=UTC)
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
ACC = SeriesKey("acc", "account")
PODS = SeriesKey("acc", "pods")
UTCZ = ZoneInfo("UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Held:
    start: datetime
    end: datetime
    hours: int


def hours_held(start: datetime, end: datetime) -> Held:
    return Held(start, end, 1)


def days_held(start: datetime, end: datetime) -> Held:
    return Held(start, end, 24)


def month(now: datetime = NOW, zone: ZoneInfo = UTCZ) -> list[Window]:
    return [window_at("month", now, zone)]


def req(
    start: datetime, end: datetime, bucket: str = "hour", series: SeriesKey = ACC
) -> FetchRequest:
    return FetchRequest(series, start, end, bucket)  # type: ignore[arg-type]


def test_cold_start_of_a_month_is_settled_days_then_todays_hours() -> None:
    reqs = plan_series(ACC, month(), [], NOW)
    # 23 settled days (one chunk of at most MAX_DAYS), then today's 15 hours
    assert reqs == [
        req(MONTH, TODAY, "day"),
        req(TODAY, CUR + H),
    ]


def test_first_poll_plans_every_series_in_order() -> None:
    reqs = plan_fetch({PODS: month(), ACC: month()}, {}, NOW)
    assert [r.series for r in reqs] == [ACC] * 2 + [PODS] * 2


def test_steady_state_refetches_settle_hours_and_current_hour_only() -> None:
    held = [days_held(MONTH, TODAY), hours_held(TODAY, CUR + H)]  # last poll in this hour
    assert plan_series(ACC, month(), held, NOW) == [req(CUR - 2 * H, CUR + H)]


def test_first_poll_of_a_new_hour_is_also_three_hours() -> None:
    held = [days_held(MONTH, TODAY), hours_held(TODAY, CUR)]  # last poll in the previous hour
    assert plan_series(ACC, month(), held, NOW) == [req(CUR - 2 * H, CUR + H)]


def test_restart_after_ten_hours_down_is_one_request_over_the_gap() -> None:
    # the hours that were still provisional at the last poll come again with the gap
    held = [days_held(MONTH, TODAY), hours_held(TODAY, CUR - 10 * H)]
    assert plan_series(ACC, month(), held, NOW) == [req(CUR - 12 * H, CUR + H)]


def test_restart_after_ten_hours_down_refetches_what_was_provisional() -> None:
    # the last poll ran in hour CUR-11H and stored it while RunPod was still
    # billing it; the old planner refetched from CUR-12H for this reason
    held = [days_held(MONTH, TODAY), hours_held(TODAY, CUR - 10 * H)]
    reqs = plan_series(ACC, month(), held, NOW)
    assert reqs[0].start <= CUR - 11 * H


def test_new_longer_window_backfills_settled_days_as_days() -> None:
    held = [hours_held(TODAY, CUR + H)]  # so far only a day budget used the series
    assert plan_series(ACC, month(), held, NOW) == [
        req(MONTH, TODAY, "day"),
        req(CUR - 2 * H, CUR + H),
    ]


def test_hours_of_today_are_fetched_in_one_request_with_the_settle_period() -> None:
    held = [days_held(MONTH, TODAY), hours_held(CUR - 2 * H, CUR + H)]
    assert plan_series(ACC, month(), held, NOW) == [req(TODAY, CUR + H)]


def test_short_window_never_fetches_before_it_needs() -> None:
    held = [days_held(MONTH, TODAY), hours_held(TODAY, CUR + H)]
    hour = [window_at("hour", NOW, UTCZ)]
    assert plan_series(ACC, hour, held, NOW) == [req(CUR, CUR + H)]


def test_berlin_day_window_holds_the_hour_before_utc_midnight_as_an_hour() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    reqs = plan_series(ACC, [window_at("day", NOW, berlin)], [], NOW)
    assert reqs == [req(TODAY - H, CUR + H)]


def test_berlin_month_fetches_its_first_local_hour_as_an_hour() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    reqs = plan_series(ACC, month(zone=berlin), [], NOW)
    assert reqs[0] == req(MONTH - H, MONTH)  # 31 Oct 23:00Z = 1 Nov 00:00 Berlin
    assert [r.bucket for r in reqs] == ["hour", "day", "hour"]


def test_rolling_window_is_held_in_hours_and_a_day_held_whole_is_refetched_in_hours() -> None:
    # a config change: a 7d rolling window now needs hours of days stored as days
    held = [days_held(MONTH, TODAY), hours_held(TODAY, CUR + H)]
    reqs = plan_series(ACC, [window_at("7d", NOW, UTCZ)], held, NOW)
    # the seven days come again whole, in hours, in chunks of at most MAX_HOURS
    starts = [TODAY - 7 * D + i * MAX_HOURS * H for i in range(4)]
    assert reqs == [req(a, min(a + MAX_HOURS * H, TODAY)) for a in starts] + [
        req(CUR - 2 * H, CUR + H)
    ]


def test_chunks_respect_the_caps() -> None:
    reqs = plan_series(ACC, [window_at("7d", NOW, UTCZ)], [], NOW, max_hours=10)
    assert all(r.bucket == "hour" and r.end - r.start <= 10 * H for r in reqs)
    assert reqs[0].start == CUR - 167 * H and reqs[-1].end == CUR + H


def test_no_windows_no_requests() -> None:
    assert plan_series(ACC, [], [], NOW) == []


# --------------------------------------------------------------------------- simulation


def hix(t: datetime) -> int:
    """Hours since the epoch of an hour-aligned UTC time."""
    return int((t - EPOCH).total_seconds()) // 3600


class Store:
    """One series as the store keeps it: bucket start hour -> bucket length."""

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.settled_fetched: set[tuple[int, int]] = set()

    def held(self) -> list[Held]:
        out: list[Held] = []
        for k in sorted(self.buckets):
            size = self.buckets[k]
            start = EPOCH + k * H
            end = start + size * H
            if out and out[-1].end == start and out[-1].hours == size:
                out[-1] = Held(out[-1].start, end, size)
            else:
                out.append(Held(start, end, size))
        return out

    def apply(self, r: FetchRequest, current: int) -> None:
        """Apply ``r`` planned when ``current`` was the current hour, checking
        that no settled bucket is fetched a second time."""
        a, b = hix(r.start), hix(r.end)
        size = 24 if r.bucket == "day" else 1
        assert r.start < r.end and (b - a) % size == 0
        assert b <= current + 1, "a bucket in the future was asked for"
        if size == 24:
            assert a % 24 == 0
            assert b - a <= MAX_DAYS * 24
            for d in range(a, b, 24):
                held_hours = all(self.buckets.get(h) == 1 for h in range(d, d + 24))
                assert not held_hours, "a day held in hours was fetched again as a day"
        else:
            assert b - a <= MAX_HOURS
        for k in [k for k in self.buckets if a <= k < b]:
            del self.buckets[k]
        for k in range(a, b, size):
            self.buckets[k] = size
            if k + size <= current - 2:  # neither current nor settle period
                assert (k, size) not in self.settled_fetched, "settled bucket fetched twice"
                self.settled_fetched.add((k, size))

    def counted(self, w: Window) -> Counter[int]:
        """Hours covered by the buckets ``w`` counts: an hour bucket by its start
        (windows.hours_in), a day bucket only when it lies wholly inside."""
        c: Counter[int] = Counter()
        for k, size in self.buckets.items():
            t = EPOCH + k * H
            if w.start <= t < w.end and (size == 1 or t + size * H <= w.end):
                c.update(range(k, k + size))
        return c


EXAMPLES = int(os.environ.get("PLAN_EXAMPLES", "250"))  # raise it for a deeper search
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
SIZES = ["hour", "day", "week", "month", "1h", "6h", "24h", "36h", "7d"]
# just before DST changes and month ends in the zones above
ANCHORS = [
    datetime(2026, 3, 6, tzinfo=UTC),  # US DST starts 8 Mar
    datetime(2026, 3, 27, tzinfo=UTC),  # EU DST starts 29 Mar, month end
    datetime(2026, 4, 3, tzinfo=UTC),  # Lord Howe DST ends 5 Apr
    datetime(2026, 10, 2, tzinfo=UTC),  # Lord Howe DST starts 4 Oct
    datetime(2026, 10, 23, tzinfo=UTC),  # EU DST ends 25 Oct, month end
    datetime(2026, 10, 30, tzinfo=UTC),  # US DST ends 1 Nov
]
steps = st.one_of(
    st.integers(1, 70), st.integers(70, 6 * 60), st.integers(6 * 60, 9 * 24 * 60)
).map(lambda m: timedelta(minutes=m))


def check_windows(store: Store, windows: Sequence[Window], now: datetime) -> None:
    current = hix(floor_hour(now))
    for w in windows:
        want = [hix(h) for h in hours_in(w) if hix(h) <= current]
        assert store.counted(w) == Counter(want), f"{w.size} {w.start}..{w.end}"
        view = SeriesView(
            SpendPoint(EPOCH + k * H, "r", float(size), size) for k, size in store.buckets.items()
        )
        assert view.window(w.start, w.end).get("r", 0.0) == len(want)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    sizes=st.lists(st.sampled_from(SIZES), min_size=1, max_size=4, unique=True),
    zone=st.sampled_from(ZONES),
    anchor=st.sampled_from(ANCHORS),
    offset=st.integers(0, 4 * 24 * 60).map(lambda m: timedelta(minutes=m)),
    polls=st.lists(steps, min_size=1, max_size=10),
)
def test_every_hour_of_every_window_counts_exactly_once(
    sizes: list[str], zone: str, anchor: datetime, offset: timedelta, polls: list[timedelta]
) -> None:
    z = ZoneInfo(zone)
    store = Store()
    now = anchor + offset
    for step in [timedelta(0), *polls]:
        now += step
        windows = [window_at(s, now, z) for s in sizes]
        current = hix(floor_hour(now))
        for r in plan_series(ACC, windows, store.held(), now):
            store.apply(r, current)
        check_windows(store, windows, now)
        later = now + timedelta(minutes=5)
        if floor_hour(later) == floor_hour(now):  # steady state: one request
            # (a Kolkata "hour" window moves on at :30, so the windows are re-cut)
            moved = [window_at(s, later, z) for s in sizes]
            again = plan_series(ACC, moved, store.held(), later)
            assert len(again) == 1
            assert (again[0].start, again[0].end) == (
                max(floor_hour(now) - 2 * H, min(floor_hour(w.start) for w in moved)),
                floor_hour(now) + H,
            )


@settings(max_examples=200, deadline=None)
@given(
    at=st.integers(0, 365 * 24 * 60).map(
        lambda m: datetime(2026, 1, 1, tzinfo=UTC) + m * timedelta(minutes=1)
    )
)
def test_cold_start_of_a_utc_month_is_at_most_three_requests_before_chunking(
    at: datetime,
) -> None:
    reqs = plan_series(ACC, month(at), [], at, max_hours=10**6, max_days=10**6)
    assert 1 <= len(reqs) <= 3
    store = Store()
    for r in plan_series(ACC, month(at), [], at):
        store.apply(r, hix(floor_hour(at)))
    check_windows(store, month(at), at)
