"""Carrying out an ``EnforcementPlan``: re-check, intent, stop, result, audit, alerts.

For each real ``StopAction`` (highest burn first):

1. Re-read ``GET /pods`` right before the stop. If that fails the stop is
   refused (``pods_unavailable``); if the pod is no longer ``RUNNING`` (someone
   stopped it meanwhile) it is refused (``not_running``).
2. Write an intent row (``Store.record_intent``) *before* the call. The store
   refuses a second intent for the same (instance, pod), so a pod is stopped at
   most once per budget instance: not twice in one cycle, not again next cycle,
   not by a second replica. When the intent exists already, the earlier row
   decides:

   * intent without result: the daemon crashed (or was killed) between the
     intent and the result. Whether the stop reached RunPod is unknown, so the
     pod is *not* stopped again blindly: refused ``unknown_after_crash``
     (people are told and can decide).
   * result ``stopped``: the pod was stopped earlier in this window and someone
     started it again. That is a person's decision: refused ``already_stopped``.
   * result ``failed``: the earlier stop failed after the client's own retries.
     A failed stop may be retried in a later cycle while the pod still runs, up
     to ``MAX_ATTEMPTS`` attempts per (instance, pod); the n-th attempt's intent
     is keyed ``{instance_key}#attempt{n}`` (n >= 2) so each attempt keeps the
     same never-twice guarantee. After that: refused ``retries_exhausted``.
3. ``RunPodApi.stop_pod`` (the client retries 5xx itself). An ``ApiError``
   records result ``failed`` with the error; success records ``stopped``.

Dry-run actions stop nothing: they are reported as ``would_stop``.

Every outcome is logged (``enforce.stopped``, ``enforce.would_stop``,
``enforce.refused``, ``enforce.stop_failed`` with account/budget/pod_id/reason),
counted through ``on_event(action, reason)``, written to the audit (stops in
the intent/result rows; refusals and dry runs through the store's
``record_audit`` when it has one) and turned into ``kind: enforcement`` alerts
by :meth:`Enforcer.alerts`. Alert ids are ``{instance_key}:enforce:{pod}:{action}``
(``:{reason}`` appended for refusals), so an outcome is announced once per
instance. Refusals and dry runs that were already announced in an earlier cycle
(their alert id is in the ledger) are *repeats*: logged at debug level only, not
audited, counted or alerted again. Stops and failed stops are always reported.

``not_running`` refusals and ``intent_exists`` (another replica holds the
intent right now) are quiet: after a stop they are the normal state, so they
are logged at debug level only and not audited, counted or alerted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog

from daemon.config.models import Config
from daemon.core.enforce import (
    EnforcementPlan,
    Refusal,
    StopAction,
    describe_plan,
    describe_reason,
    unstoppable,
)
from daemon.core.model import Alert, Group, InstanceStatus, Pod, Window, fmt_num, iso_z
from daemon.core.payload import PayloadError, to_alert
from daemon.core.payload_enforcement import enforcement_payload
from daemon.core.ports import ApiError, Store

log = structlog.get_logger("daemon.enforcer")

Action = Literal["stopped", "would_stop", "refused", "failed"]

MAX_ATTEMPTS = 3

# Refusals that are the normal state of affairs after a stop: not alerted.
QUIET_REASONS = frozenset({"not_running", "intent_exists"})

# Refusals that need a person's attention: logged as warnings.
_WARN_REASONS = frozenset({"unknown_after_crash", "cap_reached", "retries_exhausted"})

_LOG_EVENT: dict[str, str] = {
    "stopped": "enforce.stopped",
    "would_stop": "enforce.would_stop",
    "refused": "enforce.refused",
    "failed": "enforce.stop_failed",
}

_EXTRA_REASONS: dict[str, str] = {
    "unknown_after_crash": "an earlier stop was interrupted; not stopping again blindly",
    "already_stopped": "already stopped once in this window (restarted since)",
    "retries_exhausted": f"stop failed {MAX_ATTEMPTS} times; giving up for this window",
    "intent_exists": "another replica is stopping it",
}


def _reason_text(reason: str) -> str:
    return _EXTRA_REASONS.get(reason) or describe_reason(reason)


@dataclass(frozen=True, slots=True)
class EnforcementResult:
    """What happened to one pod (or, ``pod_id=None``, to a whole instance)."""

    action: Action
    reason: str  # refusal reason; ApiError.reason for failed; "" otherwise
    account: str
    budget: str
    instance_key: str
    pod_id: str | None
    pod_name: str | None
    dry_run: bool
    at: datetime
    status: InstanceStatus = field(compare=False)
    error: str | None = None
    attempt: int = 0
    repeat: bool = False  # announced in an earlier cycle already
    late: bool = False  # an earlier cycle's stop whose announcement was lost

    @property
    def alert_id(self) -> str:
        """``{instance_key}:enforce:{pod_id}:{action}`` (``:{reason}`` for refusals);
        ``-`` stands for the pod of an instance-wide refusal."""
        base = f"{self.instance_key}:enforce:{self.pod_id or '-'}:{self.action}"
        return f"{base}:{self.reason}" if self.action == "refused" else base

    @property
    def alertable(self) -> bool:
        return not (self.action == "refused" and self.reason in QUIET_REASONS)

    def describe(self) -> str:
        """One line for ``check`` / ``status`` output."""
        pod = f"pod {self.pod_id}" if self.pod_id else "no pod"
        if self.pod_id and self.pod_name:
            pod += f" ({self.pod_name})"
        where = f"[{self.account}/{self.budget} {self.status.group.key}]"
        if self.action == "stopped":
            return f"stopped {pod} {where}"
        if self.action == "would_stop":
            return f"would stop {pod} {where} (dry run)"
        if self.action == "failed":
            return f"failed to stop {pod} {where}: {self.error or self.reason}"
        return f"not stopping {pod} {where}: {self.reason} ({_reason_text(self.reason)})"

    def audit_detail(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "account": self.account,
            "budget": self.budget,
            "instance": self.instance_key,
            "pod_id": self.pod_id,
            "pod_name": self.pod_name,
            "action": self.action,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "spend_usd": round(self.status.spend, 2),
            "limit_usd": self.status.limit,
            "percent": self.status.percent,
        }
        if self.error:
            d["error"] = self.error
        if self.attempt:
            d["attempt"] = self.attempt
        return d


class PodControl(Protocol):
    """The part of ``RunPodApi`` the enforcer uses (any ``RunPodApi`` is one)."""

    def list_pods(self) -> list[Pod]: ...

    def stop_pod(self, pod_id: str) -> None: ...


def _status_from_detail(d: Mapping[str, Any]) -> InstanceStatus:
    """The budget instance of an intent, rebuilt from what the intent stored."""
    w = d.get("window") or {}
    start = _parse_z(w.get("start"))
    window = Window(
        size=str(w.get("size", "")),
        start=start,
        end=_parse_z(w.get("end")) if w.get("end") else start,
        rolling=bool(w.get("rolling", False)),
    )
    group = Group(**{k: v for k, v in (d.get("group") or {}).items() if k in Group.__slots__})
    return InstanceStatus(
        account=str(d.get("account", "")),
        budget=str(d.get("budget", "")),
        group=group,
        window=window,
        spend=float(d.get("spend_usd", 0.0)),
        limit=float(d.get("limit_usd", 0.0)),
        forecast=None,
        thresholds=(),
        forecast_enabled=False,
    )


def _parse_z(v: object) -> datetime:
    if isinstance(v, str) and v:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    return datetime.fromtimestamp(0, UTC)


def attempt_key(instance_key: str, attempt: int) -> str:
    """The intent's instance id of the n-th stop attempt (1-based)."""
    return instance_key if attempt <= 1 else f"{instance_key}#attempt{attempt}"


class Enforcer:
    """Executes plans against one ``RunPodApi`` (or any ``PodControl``; route
    several accounts through one that knows them all) and one ``Store``.

    ``on_event(action, reason)`` is called once per new outcome (metrics).
    """

    def __init__(
        self,
        api: PodControl,
        store: Store,
        *,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.on_event = on_event

    # ------------------------------------------------------------------ public

    def describe(self, plan: EnforcementPlan) -> list[str]:
        """What the plan would do, without doing anything (``check --dry-run``)."""
        return describe_plan(plan)

    def execute(
        self, plan: EnforcementPlan, config: Config, now: datetime
    ) -> list[EnforcementResult]:
        """Carry the plan out; returns one result per action and refusal, refusals
        of the plan first, then the actions in plan order. ``config`` is not
        needed today (the plan carries every decision). Raises only
        ``StoreError`` (the stop is then not attempted, or its result unknown:
        the intent row makes the next cycle report ``unknown_after_crash``)."""
        announced = self._announced(plan)
        results: list[EnforcementResult] = []
        for r in plan.refusals:
            results.append(self._refused(r, now))
        for a in plan.actions:
            results.append(self._would_stop(a, now) if a.dry_run else self._stop(a, now))
        out = [
            self._catch_up(
                replace(
                    r, repeat=r.action in ("refused", "would_stop") and r.alert_id in announced
                ),
                announced,
            )
            for r in results
        ]
        for res in out:
            self._report(res, now)
        return out

    def alerts(
        self, results: Sequence[EnforcementResult], config: Config, now: datetime
    ) -> list[Alert]:
        """``kind: enforcement`` alerts for the results worth telling people about."""
        return enforcement_alerts(results, config, now)

    # ------------------------------------------------------------------ steps

    def _refused(self, r: Refusal, now: datetime) -> EnforcementResult:
        return self._result(r, "refused", now, r.reason)

    def _result(
        self,
        a: StopAction | Refusal,
        action: Action,
        now: datetime,
        reason: str = "",
        **kw: Any,
    ) -> EnforcementResult:
        return EnforcementResult(
            action=action,
            reason=reason,
            account=a.account,
            budget=a.budget,
            instance_key=a.instance_key,
            pod_id=a.pod_id,
            pod_name=a.pod_name,
            dry_run=a.dry_run,
            at=now,
            status=a.status,
            **kw,
        )

    def _catch_up(self, r: EnforcementResult, announced: set[str]) -> EnforcementResult:
        """A pod this daemon stopped in an earlier cycle that died before its
        announcement reached the outbox shows up now as not running: turn the
        quiet refusal into that stop's announcement, once (the ledger knows)."""
        if r.action != "refused" or r.reason not in ("not_running", "already_stopped"):
            return r
        if r.pod_id is None:
            return r
        for attempt in range(1, MAX_ATTEMPTS + 1):
            row = self._prior(attempt_key(r.instance_key, attempt), r.pod_id)
            if row is None:
                break
            if row.get("result") == "stopped":
                late = replace(r, action="stopped", reason="", attempt=attempt, late=True)
                return r if late.alert_id in announced else late
        return r

    def _would_stop(self, a: StopAction, now: datetime) -> EnforcementResult:
        return self._result(a, "would_stop", now, "dry_run")

    def _stop(self, a: StopAction, now: datetime) -> EnforcementResult:
        # 1. re-check that the pod still runs, right before stopping it
        try:
            live = {p.id: p for p in self.api.list_pods()}
        except ApiError as e:
            return self._result(a, "refused", now, "pods_unavailable", error=str(e))
        pod = live.get(a.pod_id)
        if pod is None or not pod.running:
            return self._result(a, "refused", now, "not_running")
        blocked = unstoppable(pod)
        if blocked is not None:
            return self._result(a, "refused", now, blocked)

        # 2. the intent, before the call; the earlier rows decide when it exists
        attempt = 1
        while True:
            iid = attempt_key(a.instance_key, attempt)
            if self.store.record_intent(iid, a.pod_id, now, self._intent_detail(a, attempt)):
                break
            prior = self._prior(iid, a.pod_id)
            if prior is None:  # written by another replica just now
                return self._result(a, "refused", now, "intent_exists", attempt=attempt)
            result = prior.get("result")
            if result in (None, "unknown"):
                return self._result(a, "refused", now, "unknown_after_crash", attempt=attempt)
            if result == "not_stoppable":
                # RunPod said 409 earlier: the same refusal (a repeat, so it is
                # not announced again), not "already stopped", which it never was
                return self._result(a, "refused", now, "not_stoppable", attempt=attempt)
            if result != "failed":
                return self._result(a, "refused", now, "already_stopped", attempt=attempt)
            if attempt >= MAX_ATTEMPTS:
                return self._result(a, "refused", now, "retries_exhausted", attempt=attempt)
            attempt += 1

        # 3. the stop itself
        try:
            self.api.stop_pod(a.pod_id)
        except ApiError as e:
            detail = {"error": str(e), "status": e.status, "reason": e.reason, "attempt": attempt}
            if e.reason == "conflict":  # 409: no longer stoppable; a retry cannot help
                self.store.record_result(iid, a.pod_id, now, "not_stoppable", detail)
                return self._result(
                    a, "refused", now, "not_stoppable", error=str(e), attempt=attempt
                )
            self.store.record_result(iid, a.pod_id, now, "failed", detail)
            return self._result(
                a, "failed", now, e.reason or "error", error=str(e), attempt=attempt
            )
        self.store.record_result(iid, a.pod_id, now, "stopped", {"attempt": attempt})
        return self._result(a, "stopped", now, attempt=attempt)

    @staticmethod
    def _intent_detail(a: StopAction, attempt: int) -> dict[str, Any]:
        s = a.status
        return {
            "account": a.account,
            "budget": a.budget,
            "instance": a.instance_key,
            "pod_name": a.pod_name,
            "burn_per_hr": a.burn_per_hr,
            "spend_usd": round(s.spend, 2),
            "limit_usd": s.limit,
            "percent": s.percent,
            "attempt": attempt,
            # enough to announce the stop after a crash (reconcile)
            "window": {
                "size": s.window.size,
                "start": iso_z(s.window.start),
                "end": iso_z(s.window.end),
                "rolling": s.window.rolling,
            },
            "group": {k: getattr(s.group, k) for k in s.group.__slots__},
        }

    def reconcile(
        self, pods: Mapping[str, Sequence[Pod] | None], config: Config, now: datetime
    ) -> list[EnforcementResult]:
        """Settle intents left without a result (a crash between a stop call
        and its result): a pod that is not running now was stopped (recorded
        and announced ``stopped``); one still running gets result ``unknown``
        (announced, and never stopped again blindly). Intents of an account
        whose pods list is unavailable wait for a cycle that has it."""
        out: list[EnforcementResult] = []
        for row in self.store.open_intents():
            detail = dict(row.get("detail") or {})
            account = str(detail.get("account", ""))
            listing = pods.get(account)
            if listing is None:
                continue
            pod_id = str(row["pod_id"])
            live = {p.id: p for p in listing}.get(pod_id)
            result = "unknown" if live is not None and live.running else "stopped"
            iid = str(row["instance_id"])
            self.store.record_result(iid, pod_id, now, result, {"reconciled": True})
            status = _status_from_detail(detail)
            res = EnforcementResult(
                action="stopped" if result == "stopped" else "refused",
                reason="" if result == "stopped" else "unknown_after_crash",
                account=account,
                budget=str(detail.get("budget", "")),
                instance_key=str(detail.get("instance", iid.partition("#")[0])),
                pod_id=pod_id,
                pod_name=detail.get("pod_name"),
                dry_run=False,
                at=now,
                status=status,
                attempt=int(detail.get("attempt", 1) or 1),
            )
            log.warning("enforce.reconciled", pod_id=pod_id, instance=iid, result=result)
            out.append(res)
        return out

    def _prior(self, instance_id: str, pod_id: str) -> dict[str, Any] | None:
        """The stored intent/result row of (instance_id, pod_id), if any."""
        row = self.store.enforcement_row(instance_id, pod_id)
        return None if row is None else dict(row)

    def _announced(self, plan: EnforcementPlan) -> set[str]:
        """Alert ids already in the ledger for the plan's instances."""
        statuses = [a.status for a in plan.actions] + [r.status for r in plan.refusals]
        if not statuses:
            return set()
        since = min(s.window.start for s in statuses)
        ids: set[str] = set()
        for account in sorted({s.account for s in statuses}):
            ids.update(e.id for e in self.store.ledger(account, since) if e.kind == "enforcement")
        return ids

    def _report(self, res: EnforcementResult, now: datetime) -> None:
        fields: dict[str, Any] = {
            "account": res.account,
            "budget": res.budget,
            "pod_id": res.pod_id,
            "reason": res.reason,
            "instance": res.instance_key,
            "dry_run": res.dry_run,
        }
        if res.error:
            fields["error"] = res.error
        if res.attempt:
            fields["attempt"] = res.attempt
        event = _LOG_EVENT[res.action]
        if res.late:  # logged, audited and counted when it happened
            log.info("enforce.stop_announced_late", **fields)
            return
        if res.repeat or not res.alertable:
            log.debug(event, repeat=res.repeat, **fields)
            return
        if res.action == "failed" or (res.action == "refused" and res.reason in _WARN_REASONS):
            log.warning(event, **fields)
        else:
            log.info(event, **fields)
        if res.action in ("refused", "would_stop"):
            self.store.record_audit(now, f"enforce.{res.action}", res.audit_detail())
        if self.on_event is not None:
            # a label is never empty: a stop that went through has no refusal reason
            self.on_event(res.action, res.reason or "none")


# --------------------------------------------------------------------------- alerts


def enforcement_alerts(
    results: Sequence[EnforcementResult], config: Config, now: datetime
) -> list[Alert]:
    """``kind: enforcement`` alerts to the budget's (or guard's) notifiers.

    Skipped: repeats (announced in an earlier cycle) and quiet refusals. A
    budget without notifiers still gets its alerts (with no notifiers) so the
    ledger remembers them. A guard's stop is announced like a budget's, with
    ``budget`` = the guard's name and ``threshold_percent`` 0 (a guard has no
    spend level). ``now`` is unused (each result carries its time) and kept
    for symmetry with the other alert builders."""
    del now
    levels: dict[str, tuple[float, list[str]]] = {
        g.name: (0.0, config.effective_notify(g)) for g in config.guards if g.stop is not None
    }
    for b in config.budgets:
        if b.enforce is not None:
            levels[b.name] = (b.enforce.at, config.effective_notify(b))
    out: list[Alert] = []
    seen: set[str] = set()
    for res in results:
        if res.repeat or not res.alertable or res.alert_id in seen:
            continue
        level = levels.get(res.budget)
        if level is None:
            continue
        seen.add(res.alert_id)
        try:
            record = enforcement_payload(
                res.status,
                instance_key=res.instance_key,
                enforce_at=level[0],
                action=res.action,
                reason=res.reason,
                pod_id=res.pod_id,
                pod_name=res.pod_name,
                dry_run=res.dry_run,
                fired_at=res.at,
                error=res.error,
            )
        except PayloadError as e:
            log.error("alert.render_failed", alert_id=res.alert_id, error=str(e))
            continue
        out.append(to_alert(record, level[1]))
    return out


def describe_results(results: Sequence[EnforcementResult]) -> list[str]:
    """Lines for ``check`` output: every result except the quiet ones
    (``not_running`` after a stop, ``intent_exists``)."""
    return [r.describe() for r in results if r.alertable]


def audit_line(row: dict[str, Any]) -> str:
    """One readable line for a ``Store.audit()`` row (``status``)."""
    at = row.get("at")
    when = iso_z(at) if isinstance(at, datetime) else str(at or "")
    d = row.get("detail") or {}
    who = f"{d.get('account', '?')}/{d.get('budget', '?')}"
    if row.get("event") == "stop":
        result = row.get("result") or "intent only (result unknown)"
        pod = row.get("pod_id")
        extra = f": {d['error']}" if d.get("error") else ""
        return f"{when} stop pod {pod} [{who}] {result}{extra}"
    event = str(row.get("event", "")).removeprefix("enforce.")
    pod = d.get("pod_id") or "-"
    reason = d.get("reason") or ""
    pct = fmt_num(d.get("percent")) if isinstance(d.get("percent"), int | float) else "?"
    return f"{when} {event} pod {pod} [{who} at {pct}%] {reason}".rstrip()
