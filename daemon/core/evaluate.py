"""(config, points, pods, now) -> where every budget instance stands, and what
is worth telling people (before dedupe).

* spend: the sum of the instance's hour buckets in the window, including the
  newest, provisional hour (RunPod bills every few minutes, so it only grows).
* forecast: spend so far + live burn x hours left in the window, where live
  burn is the sum of ``cost_per_hr`` of the RUNNING pods in scope. When the
  pods list is unavailable the burn is estimated from recent spend instead:
  the average hourly spend of the (up to) two complete hours before the
  current one that lie in the window. In the first hour of a window there is
  no complete hour yet and the forecast is unknown (``None``).
* findings: one ``threshold`` finding for the highest threshold crossed
  (spend >= threshold% of limit), and one ``forecast`` finding when forecasts
  are on, spend is still under the limit and the forecast reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from daemon.config.models import Budget, Config
from daemon.core.model import (
    Contributor,
    Finding,
    InstanceStatus,
    Pod,
    SeriesKey,
    SpendPoint,
    Window,
)
from daemon.core.scopes import Instance, fold_gpu, instances_for, pod_label
from daemon.core.windows import HOUR, floor_hour, time_left, window_at

TOP_CONTRIBUTORS = 5
RATE_HOURS = 2  # complete hours averaged when live burn is unknown
_EPS = 1e-9  # tolerance (USD x 100) for float sums that land exactly on a threshold


class Skipped(NamedTuple):
    """A budget that could not be evaluated for an account this cycle."""

    account: str
    budget: str
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    statuses: list[InstanceStatus] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __add__(self, other: Evaluation) -> Evaluation:
        return Evaluation(
            self.statuses + other.statuses,
            self.findings + other.findings,
            self.skipped + other.skipped,
        )


def evaluate(
    config: Config,
    points: Mapping[SeriesKey, Sequence[SpendPoint]],
    pods: Mapping[str, Sequence[Pod] | None],
    now: datetime,
) -> Evaluation:
    """Evaluate every budget x account (``config.budget_accounts``) x instance.

    ``points`` holds the stored hourly points per series (at least the budgets'
    windows; points outside a window are ignored). ``pods`` maps each account to
    its ``GET /pods`` list, or None when that call failed (a missing account
    counts as failed).
    """
    out = Evaluation()
    for budget in config.budgets:
        for account in config.budget_accounts(budget):
            out = out + evaluate_budget(config, budget, account, points, pods.get(account), now=now)
    return out


def evaluate_budget(
    config: Config,
    budget: Budget,
    account: str,
    points: Mapping[SeriesKey, Sequence[SpendPoint]],
    pods: Sequence[Pod] | None,
    *,
    now: datetime,
) -> Evaluation:
    """Evaluate one budget for one account: its statuses and findings."""
    window = window_at(budget.window, now, config.zone)
    scope = instances_for(
        budget,
        account,
        points,
        pods,
        start=window.start,
        end=window.end,
    )
    if scope.skipped is not None:
        return Evaluation(skipped=[Skipped(account, budget.name, scope.skipped)])
    pods_by_id = None if pods is None else {p.id: p for p in pods}
    statuses = [
        instance_status(config, budget, account, window, inst, pods_by_id=pods_by_id, now=now)
        for inst in scope.instances
    ]
    findings = [f for s in statuses for f in findings_for(s)]
    return Evaluation(statuses, findings)


def instance_status(
    config: Config,
    budget: Budget,
    account: str,
    window: Window,
    inst: Instance,
    *,
    pods_by_id: Mapping[str, Pod] | None,
    now: datetime,
) -> InstanceStatus:
    """Spend, forecast, contributors and pods of one instance at ``now``.

    ``pods_by_id`` is the account's pods list by id, None when it is unknown
    (the forecast then uses :func:`recent_rate`).
    """
    spend = math.fsum(p.amount for p in inst.points)
    hours_left = time_left(window, now) / HOUR
    forecast: float | None
    if pods_by_id is not None:
        burn = math.fsum(p.cost_per_hr for p in inst.running)
        forecast = spend + burn * hours_left
    else:
        rate = recent_rate(inst, window, now)
        forecast = None if rate is None else spend + rate * hours_left
    return InstanceStatus(
        account=account,
        budget=budget.name,
        group=inst.group,
        window=window,
        spend=spend,
        limit=budget.limit,
        forecast=forecast,
        thresholds=tuple(config.effective_thresholds(budget)),
        forecast_enabled=config.effective_forecast(budget),
        top_contributors=top_contributors(inst, pods_by_id or {}),
        pod_ids=_pod_ids(inst),
    )


def recent_rate(inst: Instance, window: Window, now: datetime) -> float | None:
    """Average hourly spend of the last ``RATE_HOURS`` complete hours in the window,
    or None if the window has no complete hour yet."""
    current = floor_hour(now)
    hours = [
        current - k * HOUR
        for k in range(1, RATE_HOURS + 1)
        if window.start <= current - k * HOUR < window.end
    ]
    if not hours:
        return None
    wanted = set(hours)
    return math.fsum(p.amount for p in inst.points if p.time in wanted) / len(hours)


def top_contributors(
    inst: Instance, pods_by_id: Mapping[str, Pod], n: int = TOP_CONTRIBUTORS
) -> tuple[Contributor, ...]:
    """The ``n`` biggest pods (or GPU types) of an aggregate instance, by spend."""
    if not inst.aggregate:
        return ()
    sums: dict[str, float] = {}
    spell: dict[str, str] = {}
    for p in inst.points:
        key = fold_gpu(p.group) if inst.by == "gpu_type" else p.group
        sums[key] = sums.get(key, 0.0) + p.amount
        spell[key] = min(spell.get(key, p.group), p.group)
    ranked = sorted(
        ((s, k) for k, s in sums.items() if s > 0), key=lambda sk: (-sk[0], spell[sk[1]])
    )
    return tuple(
        Contributor(label=spell[k] if inst.by == "gpu_type" else pod_label(k, pods_by_id), spend=s)
        for s, k in ranked[:n]
    )


def _pod_ids(inst: Instance) -> tuple[str, ...]:
    ids = {p.id for p in inst.running}
    if inst.by == "pod":
        ids |= {p.group for p in inst.points if p.amount > 0}
    return tuple(sorted(ids))


def crossed(status: InstanceStatus) -> list[float]:
    """The thresholds ``status`` has reached, ascending."""
    return [t for t in status.thresholds if status.spend * 100.0 >= t * status.limit - _EPS]


def findings_for(status: InstanceStatus) -> list[Finding]:
    """At most one threshold finding (the highest crossed) and one forecast finding."""
    out: list[Finding] = []
    hit = crossed(status)
    if hit:
        out.append(Finding(kind="threshold", status=status, threshold=max(hit)))
    if (
        status.forecast_enabled
        and status.forecast is not None
        and status.spend < status.limit
        and status.forecast >= status.limit
    ):
        out.append(Finding(kind="forecast", status=status, threshold=None))
    return out


__all__ = [
    "Evaluation",
    "Skipped",
    "crossed",
    "evaluate",
    "evaluate_budget",
    "findings_for",
    "instance_status",
    "recent_rate",
    "top_contributors",
]
