"""Budget windows: calendar windows cut in an IANA zone, and rolling windows.

Every window is returned as a :class:`~daemon.core.model.Window` whose ``start``
and ``end`` are aware UTC datetimes, ``end`` exclusive.

Calendar windows (``hour``, ``day``, ``week`` = ISO week starting Monday,
``month``) start at the first instant whose local wall-clock time in the zone
is the start of that hour/day/week/month, and end where the next one starts.
They are correct across DST changes (a DST-change day lasts 23 or 25 hours;
in Australia/Lord_Howe 23.5 or 24.5) and month ends. When local midnight does
not exist (a DST gap at midnight), the day starts at the first instant of the
local date, i.e. at the transition.

Rolling windows (``6h``, ``24h``, ``7d``: any whole number of hours) cover the
current, partial hour plus the previous N-1 whole hours::

    start = floor_hour(now) - (N - 1) h
    end   = floor_hour(now) + 1 h        (rolling=True)

so a rolling window always spans exactly N hour buckets and moves forward one
bucket at each UTC hour boundary.

RunPod bills in UTC hour buckets. A window owns the buckets whose *start* lies
in ``[start, end)`` (see :func:`hours_in`). In zones whose offset is not a whole
number of hours (Asia/Kolkata +05:30, Asia/Kathmandu +05:45, Lord Howe in
winter) a calendar window therefore begins with the first whole UTC hour at or
after its local start: for Kolkata, the local day 00:00-24:00 (18:30Z-18:30Z)
owns the buckets 19:00Z ... 18:00Z, and spend between 18:30Z and 19:00Z is
counted in the previous day. This is a limit of RunPod's hourly buckets.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from daemon.config.models import CALENDAR_WINDOWS, parse_duration
from daemon.core.model import Window

HOUR = timedelta(hours=1)
_STEP = timedelta(minutes=15)  # every current UTC offset is a multiple of 15 minutes


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return t.astimezone(UTC)


def floor_hour(t: datetime) -> datetime:
    """The start of the UTC hour containing ``t`` (an aware datetime), in UTC."""
    return _utc(t).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    """The first UTC hour boundary at or after ``t``."""
    f = floor_hour(t)
    return f if f == _utc(t) else f + HOUR


def is_rolling(size: str) -> bool:
    return size not in CALENDAR_WINDOWS


def rolling_length(size: str) -> timedelta:
    """The length of a rolling window size ("24h" -> 24 hours)."""
    d = parse_duration(size)
    if d < HOUR or d.total_seconds() % 3600:
        raise ValueError(f"rolling window {size!r} must be a whole number of hours, at least 1h")
    return d


def window_at(size: str, now: datetime, zone: ZoneInfo) -> Window:
    """The window of ``size`` that contains ``now``. See the module docstring."""
    now = _utc(now)
    if is_rolling(size):
        n = rolling_length(size)
        end = floor_hour(now) + HOUR
        return Window(size=size, start=end - n, end=end, rolling=True)
    if size == "hour":
        start, end = _local_hour(now, zone)
        return Window(size=size, start=start, end=end, rolling=False)
    d = now.astimezone(zone).date()
    if size == "day":
        first, nxt = d, d + timedelta(days=1)
    elif size == "week":
        first = d - timedelta(days=d.weekday())
        nxt = first + timedelta(days=7)
    elif size == "month":
        first = d.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:  # pragma: no cover - CALENDAR_WINDOWS is exhausted above
        raise ValueError(f"unknown window size {size!r}")
    return Window(
        size=size, start=_day_start(first, zone), end=_day_start(nxt, zone), rolling=False
    )


def next_window(window: Window, zone: ZoneInfo) -> Window:
    """The window right after ``window`` (same size): it starts at ``window.end``."""
    return window_at(window.size, window.end, zone)


def hours_in(window: Window) -> list[datetime]:
    """Starts of the UTC hour buckets that belong to ``window`` (start in [start, end))."""
    out: list[datetime] = []
    h = ceil_hour(window.start)
    end = _utc(window.end)
    while h < end:
        out.append(h)
        h += HOUR
    return out


def time_left(window: Window, now: datetime) -> timedelta:
    """Time until the window ends; zero once it has ended."""
    return max(timedelta(0), _utc(window.end) - _utc(now))


def contains(window: Window, t: datetime) -> bool:
    """Whether the hour bucket (or instant) ``t`` belongs to ``window``."""
    return window.start <= _utc(t) < window.end


# --------------------------------------------------------------------------- internals


def _day_start(d: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``zone`` is ``d``."""
    # fold=0 maps a non-existent local midnight to the transition instant (PEP 495);
    # the loop covers gaps that straddle midnight (e.g. 23:30 -> 00:30).
    t = datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC)
    while (t - _STEP).astimezone(zone).date() >= d:
        t -= _STEP
    while t.astimezone(zone).date() < d:
        t += _STEP
    return t


def _on_local_hour(t: datetime, zone: ZoneInfo) -> bool:
    local = t.astimezone(zone)
    return local.minute == 0 and local.second == 0 and local.microsecond == 0


def _local_hour(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the local clock hour containing ``now``.

    Boundaries are the instants whose local time is HH:00; they lie on the
    15-minute UTC grid for every zone in use today. An hour next to a DST change
    may be shorter or longer than 60 minutes (Lord Howe's 30-minute shift).
    """
    grid = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    start = grid
    for _ in range(16):
        if _on_local_hour(start, zone):
            break
        start -= _STEP
    else:  # an exotic historical offset: fall back to the UTC hour
        return floor_hour(now), floor_hour(now) + HOUR
    end = grid + _STEP
    for _ in range(16):
        if _on_local_hour(end, zone):
            break
        end += _STEP
    else:  # pragma: no cover - see above
        return floor_hour(now), floor_hour(now) + HOUR
    return start, end
