"""The digest's numbers: spend today, week and month to date, top pods and GPU
types with an hourly trend, and every budget's standing. Pure: data in, data out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from daemon.config.models import Config
from daemon.core.model import InstanceStatus, SpendPoint
from daemon.core.render import DigestBudget, DigestData, DigestItem
from daemon.core.windows import hours_in, window_at


def _top(
    points: Iterable[SpendPoint], hours: Sequence[datetime], n: int, label: Callable[[str], str]
) -> tuple[DigestItem, ...]:
    by_group: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    for p in points:
        by_group[p.group][p.time] += p.amount
    totals = sorted(
        ((sum(h.values()), g) for g, h in by_group.items() if sum(h.values()) > 0),
        key=lambda x: (-x[0], x[1]),
    )[:n]
    return tuple(
        DigestItem(label(g), total, tuple(by_group[g].get(h, 0.0) for h in hours))
        for total, g in totals
    )


def summarize(
    config: Config,
    gpu_points: Sequence[SpendPoint],
    pod_points: Sequence[SpendPoint],
    statuses: Sequence[InstanceStatus],
    now: datetime,
    *,
    pod_label: Callable[[str], str] = str,
) -> DigestData:
    """Build the digest for every account together.

    ``gpu_points`` are the account-wide hourly points grouped by GPU type (their
    sum is the account's spend); ``pod_points`` the same grouped by pod. Top
    lists rank today's spend and carry today's hourly series for a sparkline.
    """
    zone = config.zone
    day, week, month = (window_at(s, now, zone) for s in ("day", "week", "month"))

    def spend(w_start: datetime, w_end: datetime) -> float:
        return sum(p.amount for p in gpu_points if w_start <= p.time < w_end)

    hours = hours_in(day)
    today = [p for p in pod_points if day.start <= p.time < day.end]
    today_gpu = [p for p in gpu_points if day.start <= p.time < day.end]
    top_n = config.digest.top if config.digest is not None else 5
    return DigestData(
        period="daily",
        date=now.astimezone(zone).date(),
        timezone=config.timezone,
        account=None,
        spend_today=spend(day.start, day.end),
        spend_week=spend(week.start, week.end),
        spend_month=spend(month.start, month.end),
        top_pods=_top(today, hours, top_n, pod_label),
        top_gpu_types=_top(today_gpu, hours, top_n, str),
        budgets=tuple(
            DigestBudget.from_status(s)
            for s in sorted(statuses, key=lambda s: (-s.percent, s.budget, s.group.key))
        ),
    )
