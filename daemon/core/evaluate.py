"""(config, spend, pods, now) -> where every budget instance stands, and what
is worth telling people (before dedupe).

* spend: the sum of the instance's buckets in the window, including the
  newest, provisional hour (RunPod bills every few minutes, so it only grows).
* forecast: spend so far + burn x hours left in the window. The burn is the
  live ``cost_per_hr`` of the RUNNING pods in scope plus, for resources with
  no live rate (serverless, storage, clusters, public endpoints), their
  recent hourly spend: the average of the (up to) two complete hours before
  the current one that lie in the window. When the pods list is unavailable
  the pods' burn is estimated the same way. In the first hour of a window
  there is no complete hour yet and an estimated forecast is unknown (``None``).
* findings: one ``threshold`` finding for the highest threshold crossed
  (spend >= threshold% of limit), and one ``forecast`` finding when forecasts
  are on, spend is still under the limit and the forecast reaches it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from daemon.config.models import Budget, Config
from daemon.core.model import (
    Contributor,
    Finding,
    Group,
    InstanceStatus,
    Pod,
    SeriesKey,
    Window,
)
from daemon.core.scopes import (
    Instance,
    PodFacts,
    instances_for,
    series_for,
    subtracts_pods,
)
from daemon.core.spend import SeriesView, SpendData, total
from daemon.core.windows import HOUR, floor_hour, time_left, window_at

TOP_CONTRIBUTORS = 5
RATE_HOURS = 2  # complete hours averaged when a live burn is unknown
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
    data: SpendData,
    pods: Mapping[str, Sequence[Pod] | None],
    now: datetime,
) -> Evaluation:
    """Evaluate every budget x account (``config.budget_accounts``) x instance.

    ``data`` holds the stored points per series (at least the budgets' windows),
    the pod registry and resource names; ``pods`` maps each account to its
    ``GET /pods`` list, or None when that call failed (a missing account counts
    as failed).
    """
    statuses: list[InstanceStatus] = []
    findings: list[Finding] = []
    caches: dict[str, dict[str, PodFacts]] = {}
    scopes: dict[str, dict[object, list[Instance]]] = {}
    rows: RowCache = {}
    for budget in config.budgets:
        for account in config.budget_accounts(budget):
            ev = evaluate_budget(
                config, budget, account, data, pods.get(account), now=now,
                facts_cache=caches.setdefault(account, {}),
                scope_cache=scopes.setdefault(account, {}),
                row_cache=rows,
            )  # fmt: skip
            statuses += ev.statuses
            findings += ev.findings
    return Evaluation(statuses, findings)


def evaluate_budget(
    config: Config,
    budget: Budget,
    account: str,
    data: SpendData,
    pods: Sequence[Pod] | None,
    *,
    now: datetime,
    facts_cache: dict[str, PodFacts] | None = None,
    scope_cache: dict[object, list[Instance]] | None = None,
    row_cache: RowCache | None = None,
) -> Evaluation:
    """Evaluate one budget for one account: its statuses and findings.

    ``facts_cache`` and ``scope_cache`` (one each per account, for one call of
    :func:`evaluate`) share pod lookups and pod instances between budgets;
    ``row_cache`` (one per call) shares per-pod spend and forecast between
    budgets over the same instances and window."""
    window = window_at(budget.window, now, config.zone)
    key = series_for(budget, account)
    view = data.view(key)
    sums = view.window(window.start, window.end)
    pod_view = data.view(SeriesKey(account, "pods")) if subtracts_pods(budget) else None
    scope = instances_for(
        budget,
        account,
        list(sums),
        pods,
        registry=data.registry.get(account, {}),
        names=data.names.get((account, key.family), {}),
        pod_spend=list(pod_view.window(window.start, window.end)) if pod_view else (),
        facts_cache=facts_cache,
        scope_cache=scope_cache,
    )
    # what every instance of the budget shares is worked out once (a per-pod
    # budget on 2,000 pods has 2,000 instances)
    shared = _Shared(config, budget, account, window, view, pods is not None, now, pod_view)
    statuses: list[InstanceStatus] = []
    findings: list[Finding] = []
    shared.run(scope.instances, statuses, findings, {} if row_cache is None else row_cache)
    return Evaluation(statuses, findings)


#: An instance's (group, spend, forecast, top contributors, pod ids): the part
#: of its status that does not depend on the budget's limit or thresholds.
_Row = tuple[Group, float, float | None, tuple[Contributor, ...], tuple[str, ...]]
#: (instances, sums, hours left, live) -> the instances and their rows
RowCache = dict[tuple[int, int, float, bool], tuple[Sequence[Instance], list[_Row]]]


class _Shared:
    """What every instance of one budget shares; :meth:`run` gives each
    instance's status (spend, forecast, contributors, pods at ``now``)."""

    __slots__ = (
        "account", "budget", "fc_enabled", "hours", "hours_left", "limit", "live",
        "minus_view", "sums", "thresholds", "view", "window",
    )  # fmt: skip

    def __init__(  # noqa: PLR0917  (private; what one budget's instances share)
        self,
        config: Config,
        budget: Budget,
        account: str,
        window: Window,
        view: SeriesView,
        live: bool,
        now: datetime,
        minus_view: SeriesView | None,
    ) -> None:
        self.account, self.budget, self.window, self.view = account, budget.name, window, view
        self.live, self.minus_view, self.limit = live, minus_view, budget.limit
        self.sums = view.window(window.start, window.end)
        self.hours_left = time_left(window, now) / HOUR
        self.hours = _rate_hours(window, now)
        self.thresholds = tuple(config.effective_thresholds(budget))
        self.fc_enabled = config.effective_forecast(budget)

    def rate(self, view: SeriesView, resources: Sequence[str]) -> float | None:
        """Average hourly spend of ``resources`` over the last ``RATE_HOURS``
        complete hours in the window, or None if it has no complete hour yet."""
        if not self.hours:
            return None
        return math.fsum(total(view.hour(h), resources) for h in self.hours) / len(self.hours)

    def rows(self, instances: Sequence[Instance]) -> list[_Row]:
        """The part of each instance's status that does not depend on the
        budget's limit or thresholds: group, spend, forecast, top contributors,
        pod ids. Per-pod instances take the general path's arithmetic inlined."""
        sums, hours_left, live = self.sums, self.hours_left, self.live
        out: list[_Row] = []
        for inst in instances:
            res = inst.resources
            if not (
                live and inst.burns_live and len(res) == 1
                and not (inst.minus_pods or inst.rate_resources or inst.contributors)
            ):  # fmt: skip
                out.append(self.general_row(inst))
                continue
            r = res[0]
            spend = sums.get(r, 0.0) + 0.0  # + 0.0: as fsum in total(), -0.0 becomes 0.0
            run = inst.running
            if not run:  # most pods are stopped
                forecast = spend + 0.0 * hours_left
                ids: tuple[str, ...] = (
                    (r,) if spend > 0 and inst.series.family == "pods" else ()
                )
            else:
                burn = run[0].cost_per_hr if len(run) == 1 else math.fsum(
                    p.cost_per_hr for p in run
                )
                forecast = spend + burn * hours_left
                ids = _pod_ids(inst, sums)
            out.append((inst.group, spend, forecast, (), ids))
        return out

    def run(
        self,
        instances: Sequence[Instance],
        statuses: list[InstanceStatus],
        findings: list[Finding],
        row_cache: RowCache,
    ) -> None:
        """Append each instance's status and findings (as :func:`findings_for`).

        A 2,000-pod account with forty ``per: pod`` budgets has ~80,000
        instances per poll. Their spend, forecast and contributors do not
        depend on the budget's limit, so budgets over the same instances and
        window share :meth:`rows` (``row_cache``); :func:`findings_for` is
        inlined (both pinned equal to the general path by
        tests/core/test_evaluate_fast.py)."""
        key = (id(instances), id(self.sums), self.hours_left, self.live)
        hit = row_cache.get(key)
        if hit is None or hit[0] is not instances:
            hit = row_cache[key] = (instances, self.rows(instances))
        account, name, window, limit = self.account, self.budget, self.window, self.limit
        thresholds, fc = self.thresholds, self.fc_enabled
        # crossed() tests spend * 100 >= t * limit - eps: the right side, once
        cuts = [(t * limit - _EPS, t) for t in thresholds]
        # InstanceStatus(...) goes through a generated __new__; tuple.__new__
        # builds the same named tuple without that call (80,000 times a poll)
        new, cls = tuple.__new__, InstanceStatus
        for group, spend, forecast, top_contributors, ids in hit[1]:
            st = new(cls, (account, name, group, window, spend, limit, forecast,
                           thresholds, fc, top_contributors, ids))  # fmt: skip
            statuses.append(st)
            top = None
            scaled = spend * 100.0
            for cut, t in cuts:
                if scaled >= cut and (top is None or t > top):
                    top = t
            if top is not None:
                findings.append(Finding(kind="threshold", status=st, threshold=top))
            if fc and forecast is not None and spend < limit and forecast >= limit:
                findings.append(Finding(kind="forecast", status=st, threshold=None))

    def general_row(self, inst: Instance) -> _Row:
        """``inst``'s row by the general path (the reference :meth:`rows` keeps
        to for per-pod instances)."""
        sums = self.sums
        spend = total(sums, inst.resources)
        minus = self.minus_view if inst.minus_pods else None
        if minus is not None:
            w = self.window
            spend = max(0.0, spend - total(minus.window(w.start, w.end), inst.minus_pods))
        if inst.burns_live and self.live:
            rate = self.rate(self.view, inst.rate_resources) if inst.rate_resources else 0.0
            run = inst.running
            burn = (
                (run[0].cost_per_hr if len(run) == 1 else math.fsum(p.cost_per_hr for p in run))
                + (rate or 0.0)
            )  # fmt: skip
            forecast: float | None = spend + burn * self.hours_left
        else:
            estimated = self.rate(self.view, inst.resources)
            if estimated is not None and minus is not None:
                gone = self.rate(minus, inst.minus_pods) or 0.0
                estimated = max(0.0, estimated - gone)
            forecast = None if estimated is None else spend + estimated * self.hours_left
        return (
            inst.group,
            spend,
            forecast,
            top_contributors(inst, sums) if inst.contributors else (),
            _pod_ids(inst, sums),
        )


def _rate_hours(window: Window, now: datetime) -> list[datetime]:
    current = floor_hour(now)
    return [
        current - k * HOUR
        for k in range(1, RATE_HOURS + 1)
        if window.start <= current - k * HOUR < window.end
    ]


def top_contributors(
    inst: Instance, sums: Mapping[str, float], n: int = TOP_CONTRIBUTORS
) -> tuple[Contributor, ...]:
    """The ``n`` biggest resources (pods, endpoints, volumes or resource
    families) of an aggregate instance, by spend in the window."""
    # nsmallest(n, it, key) is sorted(it, key)[:n] without sorting 2,000 pods
    ranked = heapq.nsmallest(
        n,
        ((sums.get(r, 0.0), label) for r, label in inst.contributors if sums.get(r, 0.0) > 0),
        key=lambda sl: (-sl[0], sl[1]),
    )
    return tuple(Contributor(label=label, spend=s) for s, label in ranked)


def _pod_ids(inst: Instance, sums: Mapping[str, float]) -> tuple[str, ...]:
    running, res = inst.running, inst.resources
    if len(res) == 1 and len(running) <= 1 and inst.series.family == "pods":
        # a per-pod instance (80,000 of them on 2,000 pods x 40 per-pod budgets)
        r = res[0]
        if not running:
            return (r,) if sums.get(r, 0.0) > 0 else ()
        rid = running[0].id
        if rid == r or sums.get(r, 0.0) <= 0:
            return (rid,)
        return (r, rid) if r < rid else (rid, r)
    ids = {p.id for p in running}
    if inst.series.family == "pods":
        ids |= {r for r in inst.resources if sums.get(r, 0.0) > 0}
    return tuple(sorted(ids))


def crossed(status: InstanceStatus) -> list[float]:
    """The thresholds ``status`` has reached, ascending."""
    return [t for t in status.thresholds if status.spend * 100.0 >= t * status.limit - _EPS]


def findings_for(status: InstanceStatus) -> list[Finding]:
    """At most one threshold finding (the highest crossed) and one forecast finding.

    The rule as a function of one status. :meth:`_Shared.run` applies it
    inline (80,000 statuses a poll on a large account, where a call each cost
    a tenth of the evaluation); tests/core/test_evaluate_fast.py holds the two
    equal, and the tests build findings from statuses with this."""
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
    "top_contributors",
]
