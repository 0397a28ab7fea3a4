"""Pure enforcement decisions: which pods to stop this cycle, and which not and why.

No IO here: the caller passes the budget statuses, the live pod lists and ``now``;
``daemon.pipeline.enforcer`` carries the plan out (re-check, intent, stop, audit).

Rules
-----

* Only budgets with ``enforce`` take part, and only their instances whose
  ``percent`` (spend as a percent of the limit) is ``>= enforce.at``.
* ``data_fresh=False`` (billing data is stale or partial): nothing is stopped;
  every triggered instance gets one ``Refusal(reason="stale_data")``.
* The account's pod list is ``None`` (``GET /pods`` failed): nothing is stopped
  in that account; ``Refusal(reason="pods_unavailable")`` per instance.
* A pod in the budget's ``except_pods`` (by id or by exact name) is never
  stopped: ``Refusal(reason="protected")`` when it is in scope and running.
* A pod that is not ``RUNNING`` in the pod list (or not listed at all) is never
  stopped. For a ``per: pod`` instance that gives ``Refusal(reason="not_running")``;
  an aggregate instance simply ignores pods that are not burning.
* A pod that RunPod reports ``locked``, or whose ``actions`` lack ``stop``
  (``can_stop`` False), is never stopped: ``Refusal(reason="locked")`` or
  ``Refusal(reason="not_stoppable")``; its burn still counts.
* ``per: pod`` instances stop their one pod.
* Aggregate instances (GPU type, account-wide, ``match`` without ``per``) stop
  running pods from ``status.pod_ids`` (minus ``except_pods``), highest burn
  (``cost_per_hr``) first, until the projected spend *fits*:

      spend + (burn of the pods left running in scope) x horizon <= limit

  where ``horizon`` is the time left in a calendar window, and the whole window
  length for a rolling window (an upper bound: a rolling window never ends, and
  the oldest hours dropping out can only lower its spend). ``except_pods`` are
  outside the budget (``evaluate`` leaves them out of spend, burn and
  ``pod_ids``); should one show up in ``pod_ids`` anyway it is refused as
  ``protected`` and its burn is not counted. Once
  spend >= limit nothing fits while anything burns, so every stoppable running
  pod in scope is stopped. The target is the limit itself, not ``at``% of it:
  by the time an instance triggers its spend is already >= ``at``% of the
  limit, so that target could never be met and would stop everything.
* A pod wanted by several instances is stopped once per cycle (by a real stop
  if any of them is real, else listed once as a dry run).
* Cap: at most ``config.enforcement.max_stops_per_cycle`` *real* stops per
  cycle across all accounts, highest burn first. Dry runs are listed but do not
  count (they stop nothing). Real stops beyond the cap become
  ``Refusal(reason="cap_reached")`` and the plan's ``cap_reached`` is set, so
  the pipeline raises an alert of its own; the next cycle may stop them.
* ``enforce.dry_run`` defaults to true: a dry run gives ``StopAction(dry_run=True)``,
  which the executor only reports ("would stop").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from daemon.core.model import InstanceStatus, Pod, fmt_num

if TYPE_CHECKING:
    from daemon.config.models import Budget, Config

RefusalReason = Literal[
    "stale_data", "pods_unavailable", "protected", "not_running", "cap_reached", "locked",
    "not_stoppable",
]

REFUSAL_REASONS: tuple[RefusalReason, ...] = (
    "stale_data",
    "pods_unavailable",
    "protected",
    "not_running",
    "cap_reached",
    "locked",
    "not_stoppable",
)

_REASON_TEXT: dict[str, str] = {
    "stale_data": "billing data is stale, nothing is stopped on it",
    "pods_unavailable": "the pod list could not be read",
    "protected": "pod is in except_pods",
    "not_running": "pod is not running",
    "cap_reached": "max_stops_per_cycle reached",
    "locked": "the pod is locked at RunPod and cannot be stopped",
    "not_stoppable": "RunPod does not offer a stop for this pod now",
}


@dataclass(frozen=True, slots=True)
class StopAction:
    """Stop ``pod_id`` because of ``status`` (a real stop unless ``dry_run``)."""

    account: str
    budget: str
    instance_key: str
    pod_id: str
    pod_name: str
    dry_run: bool
    burn_per_hr: float
    status: InstanceStatus = field(compare=False)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Enforcement was due for ``status`` but this pod (or, with ``pod_id=None``,
    the whole instance) is not stopped, for ``reason``."""

    account: str
    budget: str
    instance_key: str
    pod_id: str | None
    reason: RefusalReason
    status: InstanceStatus = field(compare=False)
    pod_name: str | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class StopRequest:
    """A guard asks to stop one pod it found idle or running too long. The
    guard's own checks (``match``, ``except_pods``) are done; the planner adds
    the shared ones (fresh pod state, locked, the cap). ``status`` describes the
    guard's instance (budget = the guard's name, window = the pod's run)."""

    account: str
    instance_key: str
    pod_id: str
    dry_run: bool
    status: InstanceStatus


@dataclass(frozen=True, slots=True)
class EnforcementPlan:
    """What one cycle decided. ``actions`` are in execution order (highest burn
    first); ``cap`` is ``max_stops_per_cycle``; ``cap_reached`` is set when a real
    stop was refused for the cap."""

    actions: tuple[StopAction, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    cap: int = 0
    cap_reached: bool = False

    @property
    def stops(self) -> tuple[StopAction, ...]:
        """The real stops."""
        return tuple(a for a in self.actions if not a.dry_run)

    @property
    def dry_runs(self) -> tuple[StopAction, ...]:
        return tuple(a for a in self.actions if a.dry_run)

    @property
    def empty(self) -> bool:
        return not self.actions and not self.refusals


# --------------------------------------------------------------------------- helpers


def is_protected(budget: Budget, pod_id: str, pod_name: str | None = None) -> bool:
    """``except_pods`` lists pod ids; an exact pod name is accepted as well."""
    protected = set(budget.except_pods)
    return pod_id in protected or (pod_name is not None and pod_name in protected)


def triggered(budget: Budget, status: InstanceStatus) -> bool:
    """Is enforcement due for this instance (``percent >= enforce.at``)?"""
    return budget.enforce is not None and status.percent >= budget.enforce.at


def horizon_hours(status: InstanceStatus, now: datetime) -> float:
    """Hours over which remaining burn is projected (see the module docstring)."""
    w = status.window
    if w.rolling:
        return max((w.end - w.start).total_seconds(), 0.0) / 3600.0
    return max((w.end - now).total_seconds(), 0.0) / 3600.0


def fits(spend: float, burn_per_hr: float, hours: float, limit: float) -> bool:
    """Projected spend (spend + burn x hours) stays within the limit; nothing fits
    while something burns once the limit is reached."""
    if spend >= limit:
        return burn_per_hr <= 0
    return spend + burn_per_hr * hours <= limit + 1e-9


def unstoppable(pod: Pod) -> RefusalReason | None:
    """Why RunPod would refuse to stop ``pod`` (locked, no stop action), or None."""
    if pod.locked:
        return "locked"
    if not pod.can_stop:
        return "not_stoppable"
    return None


def _index(pods: Sequence[Pod]) -> dict[str, Pod]:
    return {p.id: p for p in pods}


# --------------------------------------------------------------------------- planning


def _refusal(
    status: InstanceStatus,
    reason: RefusalReason,
    pod_id: str | None,
    pod_name: str | None,
    dry_run: bool,
) -> Refusal:
    return Refusal(
        account=status.account,
        budget=status.budget,
        instance_key=status.instance_key,
        pod_id=pod_id,
        reason=reason,
        status=status,
        pod_name=pod_name,
        dry_run=dry_run,
    )


def _action(status: InstanceStatus, pod: Pod, dry_run: bool) -> StopAction:
    return StopAction(
        account=status.account,
        budget=status.budget,
        instance_key=status.instance_key,
        pod_id=pod.id,
        pod_name=pod.name,
        dry_run=dry_run,
        burn_per_hr=pod.cost_per_hr,
        status=status,
    )


def plan_enforcement(
    config: Config,
    statuses: Sequence[InstanceStatus],
    pods: Mapping[str, Sequence[Pod] | None],
    data_fresh: bool,
    now: datetime,
    *,
    requests: Sequence[StopRequest] = (),
) -> EnforcementPlan:
    """Decide this cycle's stops; see the module docstring for the rules.

    ``pods`` maps an account name to its live ``GET /pods`` list, or ``None``
    when that call failed (a missing account counts as ``None``). ``requests``
    are the guards' stops: they share the pod checks and the per-cycle cap.
    """
    budgets = {b.name: b for b in config.budgets if b.enforce is not None}
    refusals: list[Refusal] = []
    wanted: list[StopAction] = []

    ordered = sorted(
        (s for s in statuses if s.budget in budgets),
        key=lambda s: (s.account, s.budget, s.instance_key),
    )
    for status in ordered:
        budget = budgets.get(status.budget)
        if budget is None or budget.enforce is None or not triggered(budget, status):
            continue
        dry_run = budget.enforce.dry_run
        if not data_fresh:
            refusals.append(_refusal(status, "stale_data", None, None, dry_run))
            continue
        pod_list = pods.get(status.account)
        if pod_list is None:
            refusals.append(_refusal(status, "pods_unavailable", None, None, dry_run))
            continue
        live = _index(pod_list)

        if status.group.pod_id is not None:  # per: pod (or a single-pod group)
            pid = status.group.pod_id
            pod = live.get(pid)
            name = pod.name if pod is not None else status.group.pod_name
            if is_protected(budget, pid, name):
                refusals.append(_refusal(status, "protected", pid, name, dry_run))
            elif pod is None or not pod.running:
                refusals.append(_refusal(status, "not_running", pid, name, dry_run))
            elif (blocked := unstoppable(pod)) is not None:
                refusals.append(_refusal(status, blocked, pid, name, dry_run))
            else:
                wanted.append(_action(status, pod, dry_run))
            continue

        # aggregate: running pods in scope, highest burn first, until it fits
        in_scope = [live[p] for p in dict.fromkeys(status.pod_ids) if p in live and live[p].running]
        stoppable: list[Pod] = []
        burn_left = 0.0
        for pod in in_scope:
            if is_protected(budget, pod.id, pod.name):
                refusals.append(_refusal(status, "protected", pod.id, pod.name, dry_run))
            else:
                burn_left += max(pod.cost_per_hr, 0.0)
                stoppable.append(pod)
        stoppable.sort(key=lambda p: (-p.cost_per_hr, p.id))
        hours = horizon_hours(status, now)
        for pod in stoppable:
            if fits(status.spend, burn_left, hours, status.limit):
                break
            blocked = unstoppable(pod)
            if blocked is not None:  # keeps burning; the next pod has to make room
                refusals.append(_refusal(status, blocked, pod.id, pod.name, dry_run))
                continue
            wanted.append(_action(status, pod, dry_run))
            burn_left -= max(pod.cost_per_hr, 0.0)

    for req in requests:
        pod_list = pods.get(req.account)
        st = req.status
        if pod_list is None:
            refusals.append(_refusal(st, "pods_unavailable", req.pod_id, None, req.dry_run))
            continue
        pod = _index(pod_list).get(req.pod_id)
        if pod is None or not pod.running:
            refusals.append(_refusal(st, "not_running", req.pod_id, None, req.dry_run))
        elif (blocked := unstoppable(pod)) is not None:
            refusals.append(_refusal(st, blocked, pod.id, pod.name, req.dry_run))
        else:
            wanted.append(_action(st, pod, req.dry_run))

    # one action per pod: a real stop wins over a dry run, then the higher burn
    wanted.sort(key=lambda a: (a.dry_run, -a.burn_per_hr, a.instance_key, a.pod_id))
    seen: set[tuple[str, str]] = set()
    unique: list[StopAction] = []
    for a in wanted:
        k = (a.account, a.pod_id)
        if k in seen:
            continue
        seen.add(k)
        unique.append(a)

    cap = config.enforcement.max_stops_per_cycle
    actions: list[StopAction] = []
    real = 0
    cap_reached = False
    for a in unique:
        if a.dry_run:
            actions.append(a)
        elif real < cap:
            actions.append(a)
            real += 1
        else:
            cap_reached = True
            refusals.append(_refusal(a.status, "cap_reached", a.pod_id, a.pod_name, False))
    actions.sort(key=lambda a: (-a.burn_per_hr, a.dry_run, a.instance_key, a.pod_id))
    return EnforcementPlan(tuple(actions), tuple(refusals), cap, cap_reached)


# --------------------------------------------------------------------------- describing


def describe_reason(reason: str) -> str:
    """A short human sentence for a refusal or result reason."""
    return _REASON_TEXT.get(reason, reason)


def describe_plan(plan: EnforcementPlan) -> list[str]:
    """One line per decision, for ``check --dry-run`` and logs; empty when nothing
    was due. ``not_running`` refusals are summed up in one line: after a stop
    they are the normal state of every pod the window has stopped."""
    lines: list[str] = []
    for a in plan.actions:
        verb = "would stop" if a.dry_run else "stop"
        lines.append(
            f"{verb} pod {a.pod_id} ({a.pod_name}, ${a.burn_per_hr:.2f}/h) "
            f"[{a.account}/{a.budget} {a.status.group.key}: "
            f"${a.status.spend:.2f} of ${a.status.limit:.2f}, {fmt_num(a.status.percent)}%]"
            + (" (dry run)" if a.dry_run else "")
        )
    idle = 0
    for r in plan.refusals:
        if r.reason == "not_running":
            idle += 1
            continue
        what = f"not stopping pod {r.pod_id}" if r.pod_id is not None else "stopping no pod"
        lines.append(
            f"{what} [{r.account}/{r.budget} {r.status.group.key}]: "
            f"{r.reason} ({describe_reason(r.reason)})"
        )
    if idle:
        lines.append(f"{idle} pod(s) over budget are not running (nothing to stop)")
    if plan.cap_reached:
        lines.append(f"cap reached: at most {plan.cap} stops per cycle")
    return lines
