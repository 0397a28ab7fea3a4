"""The fetch planner: which billing calls a poll makes, at which bucket size,
given the windows each series must cover and what the store holds already.

RunPod v2 answers one record per resource and bucket, so a month of hour
buckets for 2,000 pods is about 1.5 M records. The planner therefore asks for
whole, settled UTC days as ``day`` buckets and for hours only where they are
needed (contract: "RunPod API versions"; docs/architecture.md "Billing series"):

* every hour of a rolling window (its start moves every hour);
* the edges of a calendar window that cut a UTC day (a ``day`` window in
  Europe/Berlin starts at 23:00Z; a month's first local day too);
* the settle period (the newest closed hours, which RunPod may still revise)
  and the current, provisional hour, fetched again on every poll.

A day already held as 24 hour buckets is never fetched again as a day. Closed
buckets are never fetched twice, except the settle period. When an hour must
be held as an hour but the store has its day as one day bucket (the config
changed), the whole day is fetched again in hours, so the store never holds a
day bucket and hour buckets for the same time: summing the buckets that lie
inside a window counts each hour once.

Requests are split into chunks of at most ``max_hours`` hour buckets or
``max_days`` day buckets so that no answer outgrows the client's body cap;
each chunk is stored as it arrives, so a failure mid-way refetches only what
was not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from daemon.core.model import BucketLen, FetchRequest, SeriesKey, Window
from daemon.core.windows import HOUR, floor_hour

SETTLE = timedelta(hours=2)
MAX_HOURS = 48  # hour buckets per request
MAX_DAYS = 31  # day buckets per request
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Held(Protocol):
    """A stored range of a series at one bucket length (``hours`` 1 or 24)."""

    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def hours(self) -> int: ...


def _h(t: datetime) -> int:
    """Hours since the epoch of an hour-aligned time."""
    return int((t - _EPOCH).total_seconds()) // 3600


def _t(h: int) -> datetime:
    return _EPOCH + timedelta(hours=h)


def _ceil_h(t: datetime) -> int:
    f = floor_hour(t)
    return _h(f) + (1 if f < t else 0)


def hourly_needs(windows: Iterable[Window], now: datetime) -> set[int]:
    """Hours (since the epoch) that must be held as hour buckets for ``windows``."""
    end = _h(floor_hour(now)) + 1
    need: set[int] = set()
    for w in windows:
        start = _h(floor_hour(w.start))
        if w.rolling:
            need.update(range(start, end))
            continue
        # from the window start to the next UTC midnight, unless it is one
        if start % 24 or w.start != floor_hour(w.start):
            need.update(range(start, min(end, (start // 24 + 1) * 24)))
        # a window ending mid-day (it is in the future for a current window,
        # but a past window could): its last day in hours
        stop = _ceil_h(w.end)
        if stop % 24 and stop <= end:
            need.update(range(max(start, stop // 24 * 24), stop))
    return need


def plan_series(
    series: SeriesKey,
    windows: Sequence[Window],
    held: Sequence[Held],
    now: datetime,
    *,
    settle: timedelta = SETTLE,
    max_hours: int = MAX_HOURS,
    max_days: int = MAX_DAYS,
) -> list[FetchRequest]:
    """The requests that bring one series up to date for ``windows`` at ``now``."""
    # Long on purpose: one walk over the hours and days of the series; the cases share its sets.
    if not windows:
        return []
    current = _h(floor_hour(now))
    end = current + 1
    first = min(_h(floor_hour(w.start)) for w in windows)
    first = min(first, current)
    settled = current - int(settle / HOUR)  # hours >= this are fetched every poll

    have_hour: set[int] = set()
    have_day: set[int] = set()
    hour_ends: list[tuple[int, int]] = []
    for c in held:
        a, b = _h(floor_hour(c.start)), _h(floor_hour(c.end))
        if c.hours >= 24:
            have_day.update(range(-(-a // 24), b // 24))
        else:
            have_hour.update(range(a, b))
            hour_ends.append((a, b))

    hourly = hourly_needs(windows, now)
    fetch_hours: set[int] = set(range(max(first, settled), end))
    fetch_days: set[int] = set()
    for day in range(first // 24, (end - 1) // 24 + 1):
        hours = range(max(day * 24, first), min(day * 24 + 24, end))
        whole = day * 24 >= first and day * 24 + 24 <= settled
        if whole and not any(h in hourly for h in hours):
            if day not in have_day and not all(h in have_hour for h in hours):
                fetch_days.add(day)
            continue
        missing = [h for h in hours if h not in have_hour and h not in fetch_hours]
        if not missing:
            continue
        if day in have_day:  # the day is stored whole: replace it by its hours
            fetch_hours.update(range(day * 24, day * 24 + 24))
        else:
            fetch_hours.update(missing)

    # A stored hour range that stops where the next fetch begins was cut off
    # by a gap (the daemon was down): its newest hours were still provisional
    # when they were stored, so they are fetched once more with the gap.
    provisional = int(settle / HOUR)
    for a, b in hour_ends:
        if b in fetch_hours:
            fetch_hours.update(h for h in range(max(a, b - provisional), b) if h >= first)
        elif b % 24 == 0 and b // 24 in fetch_days:
            day = (b - 1) // 24
            if (b - 1) >= first and day not in fetch_days:
                fetch_hours.update(range(max(a, b - provisional, first), b))

    out = [
        FetchRequest(series, _t(a), _t(b), "hour") for a, b in _runs(fetch_hours, max_hours)
    ]
    out += [
        FetchRequest(series, _t(a * 24), _t(b * 24), "day")
        for a, b in _runs(fetch_days, max_days)
    ]
    return sorted(out, key=lambda r: (r.start, r.bucket))


def plan_fetch(
    needed: Mapping[SeriesKey, Sequence[Window]],
    held: Mapping[SeriesKey, Sequence[Held]],
    now: datetime,
    *,
    settle: timedelta = SETTLE,
    max_hours: int = MAX_HOURS,
    max_days: int = MAX_DAYS,
) -> list[FetchRequest]:
    """Every series' requests, ordered by series (account, family), then time."""
    out: list[FetchRequest] = []
    for series in sorted(needed, key=lambda k: (k.account, k.family)):
        out += plan_series(
            series,
            needed[series],
            held.get(series, ()),
            now,
            settle=settle,
            max_hours=max_hours,
            max_days=max_days,
        )
    return out


def _runs(units: set[int], size: int) -> list[tuple[int, int]]:
    """Contiguous runs of ``units`` as ``[a, b)``, each at most ``size`` long."""
    out: list[tuple[int, int]] = []
    for u in sorted(units):
        if out and out[-1][1] == u and u - out[-1][0] < size:
            out[-1] = (out[-1][0], u + 1)
        else:
            out.append((u, u + 1))
    return out


def bucket_hours(bucket: BucketLen) -> int:
    return 24 if bucket == "day" else 1
