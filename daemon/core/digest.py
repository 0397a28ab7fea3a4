"""The digest's numbers: spend today, week and month to date (whole account,
and split by resource family), top pods, GPU types and serverless endpoints
with an hourly trend, and every budget's standing. Pure: data in, data out.

The account's totals come from the ``account`` series (every resource); pods
are attributed to GPU types through the pod registry, so a pod RunPod no
longer lists still counts under its GPU type (``unknown`` if never seen).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from daemon.config.models import Config
from daemon.core.model import RESOURCE_FAMILIES, TOTAL, Family, InstanceStatus, Pod, SeriesKey
from daemon.core.payload_digest import DigestBudget, DigestData, DigestItem
from daemon.core.scopes import UNKNOWN_GPU, pod_facts, pod_label
from daemon.core.spend import SpendData
from daemon.core.windows import hours_in, window_at


def _top(
    hourly: Mapping[str, Mapping[datetime, float]],
    hours: Sequence[datetime],
    n: int,
    label: Callable[[str], str],
) -> tuple[DigestItem, ...]:
    totals = sorted(
        ((sum(h.values()), k) for k, h in hourly.items() if sum(h.values()) > 0),
        key=lambda x: (-x[0], label(x[1])),
    )[:n]
    return tuple(
        DigestItem(label(k), s, tuple(hourly[k].get(h, 0.0) for h in hours)) for s, k in totals
    )


def _hourly(
    data: SpendData,
    accounts: Iterable[str],
    family: Family,
    hours: Sequence[datetime],
    key: Callable[[str, str], str],
) -> dict[str, dict[datetime, float]]:
    """Per (relabelled) resource, spend per hour of ``hours``."""
    out: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    for acc in accounts:
        view = data.view(SeriesKey(acc, family))
        for h in hours:
            for res, amount in view.hour(h).items():
                out[key(acc, res)][h] += amount
    return out


def family_split(
    data: SpendData, accounts: Sequence[str], start: datetime, end: datetime
) -> dict[str, float]:
    """Spend per resource family (and ``total``) of every account in ``[start, end)``."""
    sums = [data.view(SeriesKey(a, "account")).window(start, end) for a in accounts]
    return {
        fam: math.fsum(s.get(fam, 0.0) for s in sums) for fam in (TOTAL, *RESOURCE_FAMILIES)
    }


def summarize(
    config: Config,
    data: SpendData,
    statuses: Sequence[InstanceStatus],
    now: datetime,
    *,
    pods: Mapping[str, Sequence[Pod] | None] | None = None,
) -> DigestData:
    """Build the digest for every account together. Top lists rank today's
    spend and carry today's hourly series for a sparkline."""
    zone = config.zone
    accounts = [a.name for a in config.accounts]
    day, week, month = (window_at(s, now, zone) for s in ("day", "week", "month"))
    live = {a: {p.id: p for p in ps or ()} for a, ps in (pods or {}).items()}

    def facts(acc: str, pid: str) -> tuple[str | None, str]:
        f = pod_facts(pid, live.get(acc, {}), data.registry.get(acc, {}))
        return f.name, f.gpu_type or UNKNOWN_GPU

    names: dict[str, str] = {}

    def pod_key(acc: str, pid: str) -> str:
        names[pid] = pod_label(pid, facts(acc, pid)[0])
        return pid

    hours = hours_in(day)
    top_n = config.digest.top if config.digest is not None else 5
    by_pod = _hourly(data, accounts, "pods", hours, pod_key)
    by_gpu = _hourly(data, accounts, "pods", hours, lambda a, p: facts(a, p)[1])
    endpoint_names = {
        rid: f"{name} ({rid})"
        for a in accounts
        for rid, name in data.names.get((a, "serverless"), {}).items()
    }
    by_endpoint = _hourly(data, accounts, "serverless", hours, lambda a, r: r)
    split = [family_split(data, accounts, w.start, w.end) for w in (day, week, month)]
    families = tuple(
        (fam, split[0][fam], split[1][fam], split[2][fam])
        for fam in RESOURCE_FAMILIES
        if any(s[fam] for s in split)
    )
    return DigestData(
        period="daily",
        date=now.astimezone(zone).date(),
        timezone=config.timezone,
        account=None,
        spend_today=split[0][TOTAL],
        spend_week=split[1][TOTAL],
        spend_month=split[2][TOTAL],
        families=families,
        top_endpoints=_top(by_endpoint, hours, top_n, lambda r: endpoint_names.get(r, r)),
        top_pods=_top(by_pod, hours, top_n, lambda k: names.get(k, k)),
        top_gpu_types=_top(by_gpu, hours, top_n, str),
        budgets=tuple(
            DigestBudget.from_status(s)
            for s in sorted(statuses, key=lambda s: (-s.percent, s.budget, s.group.key))
        ),
    )
