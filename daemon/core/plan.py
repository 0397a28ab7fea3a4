"""The fetch planner: which ``GET /billing/pods`` calls (bucketSize=hour) a poll
makes, given what each series must cover and what the store holds already.

Closed hours are stored and not fetched again, except the settle period: the
newest closed hours (two by default), which RunPod may still revise. The
current hour is provisional and fetched on every poll. A stored range that
ended long ago (the daemon was down) is refetched from its end, so the gap is
filled by the same single request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.config.models import Config
from daemon.core.model import FetchRequest, SeriesKey
from daemon.core.ports import Coverage
from daemon.core.scopes import series_for
from daemon.core.windows import HOUR, floor_hour, window_at

SETTLE = timedelta(hours=2)


def plan_fetch(
    needed: Mapping[SeriesKey, datetime],
    coverage: Mapping[SeriesKey, Coverage | None],
    now: datetime,
    settle: timedelta = SETTLE,
) -> list[FetchRequest]:
    """The fewest requests that bring every needed series up to date.

    ``needed`` maps a series to the earliest hour it must hold; ``coverage`` is
    the store's ``[start, end)`` for it (None or missing: nothing stored). Every
    request ends at ``floor_hour(now) + 1h`` except a backfill, which ends where
    the stored range begins. Requests are ordered by series, then start.
    """
    current = floor_hour(now)
    end = current + HOUR
    out: list[FetchRequest] = []
    for series in sorted(needed, key=lambda k: (k.account, k.grouping, k.gpu_filter)):
        start = min(floor_hour(needed[series]), current)
        cov = coverage.get(series)
        if cov is None or cov.end <= cov.start:
            out.append(FetchRequest(series, start, end))
            continue
        # the current hour is never "covered"; the newest closed hours settle
        forward = max(start, min(floor_hour(cov.end), current) - settle)
        forward = min(forward, current)
        cov_start = floor_hour(cov.start)
        if start >= cov_start:
            out.append(FetchRequest(series, forward, end))
        elif cov_start < forward:  # a longer window: backfill before the stored range
            out.append(FetchRequest(series, start, cov_start))
            out.append(FetchRequest(series, forward, end))
        else:  # the backfill would adjoin or overlap the forward request: one call
            out.append(FetchRequest(series, start, end))
    return out


def needed_start(
    config: Config, accounts: Iterable[str], now: datetime
) -> dict[SeriesKey, datetime]:
    """Each series the budgets need in ``accounts``, with the earliest hour it
    must hold at ``now``: the earliest window start among the budgets using it,
    floored to the hour."""
    wanted = set(accounts)
    out: dict[SeriesKey, datetime] = {}
    for budget in config.budgets:
        start = floor_hour(window_at(budget.window, now, config.zone).start)
        for account in config.budget_accounts(budget):
            if account not in wanted:
                continue
            for series in series_for(budget, account):
                prev = out.get(series)
                out[series] = start if prev is None else min(prev, start)
    return out


def month_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The first hour bucket the current calendar month (in ``zone``) needs: the
    digest's look-back, floored to the hour."""
    return floor_hour(window_at("month", now, zone).start)
