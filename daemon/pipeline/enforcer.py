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
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from daemon.config.models import Config
from daemon.core.enforce import (
    EnforcementPlan,
    Refusal,
    StopAction,
    describe_plan,
    unstoppable,
)
from daemon.core.model import Alert, Pod, iso_z
from daemon.core.ports import ApiError, RunPodApi, Store
from daemon.pipeline.enforcement_results import (
    LOG_EVENT,
    MAX_ATTEMPTS,
    QUIET_REASONS,
    WARN_REASONS,
    Action,
    EnforcementResult,
    audit_line,
    describe_results,
    enforcement_alerts,
    status_from_detail,
)

__all__ = [
    "MAX_ATTEMPTS",
    "QUIET_REASONS",
    "AccountRouter",
    "Action",
    "EnforcementResult",
    "Enforcer",
    "PodControl",
    "attempt_key",
    "audit_line",
    "describe_results",
    "enforcement_alerts",
]

log = structlog.get_logger("daemon.enforcer")

class PodControl(Protocol):
    """The part of ``RunPodApi`` the enforcer uses (any ``RunPodApi`` is one)."""

    def list_pods(self) -> list[Pod]: ...

    def stop_pod(self, pod_id: str) -> None: ...


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
        of the plan first, then the actions in plan order. ``config`` names
        who hears of a stop: its announcement is queued with its result, in
        one transaction (a crash keeps both or neither). Raises only
        ``StoreError`` (the stop is then not attempted, or its result unknown:
        the intent row makes the next cycle report ``unknown_after_crash``)."""
        announced = self._announced(plan)
        results: list[EnforcementResult] = []
        for r in plan.refusals:
            results.append(self._refused(r, now))
        for a in plan.actions:
            results.append(self._would_stop(a, now) if a.dry_run else self._stop(a, now, config))
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

    def _settle(
        self, iid: str, res: EnforcementResult, detail: dict[str, Any], config: Config
    ) -> EnforcementResult:
        """Record ``res`` as the stop's result, its announcement with it."""
        result = res.action if res.action in ("stopped", "failed") else res.reason
        alerts = enforcement_alerts([res], config, res.at)
        assert res.pod_id is not None
        self.store.record_result(iid, res.pod_id, res.at, result, detail, alerts=alerts)
        return res

    def _stop(self, a: StopAction, now: datetime, config: Config) -> EnforcementResult:
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
                refused = self._result(
                    a, "refused", now, "not_stoppable", error=str(e), attempt=attempt
                )
                return self._settle(iid, refused, detail, config)
            failed = self._result(
                a, "failed", now, e.reason or "error", error=str(e), attempt=attempt
            )
            return self._settle(iid, failed, detail, config)
        stopped = self._result(a, "stopped", now, attempt=attempt)
        return self._settle(iid, stopped, {"attempt": attempt}, config)

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
            status = status_from_detail(detail)
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
            alerts = enforcement_alerts([res], config, now)
            self.store.record_result(
                iid, pod_id, now, result, {"reconciled": True}, alerts=alerts
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
        event = LOG_EVENT[res.action]
        if res.late:  # logged, audited and counted when it happened
            log.info("enforce.stop_announced_late", **fields)
            return
        if res.repeat or not res.alertable:
            log.debug(event, repeat=res.repeat, **fields)
            return
        if res.action == "failed" or (res.action == "refused" and res.reason in WARN_REASONS):
            log.warning(event, **fields)
        else:
            log.info(event, **fields)
        if res.action in ("refused", "would_stop"):
            self.store.record_audit(now, f"enforce.{res.action}", res.audit_detail())
        if self.on_event is not None:
            # a label is never empty: a stop that went through has no refusal reason
            self.on_event(res.action, res.reason or "none")


# --------------------------------------------------------------------------- alerts


class AccountRouter:
    """The pods side of RunPod for the enforcer, across accounts.

    The enforcer only knows pod ids, and re-reads ``GET /pods`` right before
    every stop; that listing records which account's client owns each pod, so
    ``stop_pod`` goes to it without listing again."""

    def __init__(self, apis: Mapping[str, RunPodApi]) -> None:
        self.apis = apis
        self.owner: dict[str, RunPodApi] = {}

    def list_pods(self) -> list[Pod]:
        out: list[Pod] = []
        for api in self.apis.values():
            pods = api.list_pods()
            self.owner.update((p.id, api) for p in pods)
            out += pods
        return out

    def stop_pod(self, pod_id: str) -> None:
        api = self.owner.get(pod_id)
        if api is None:
            raise ApiError(
                f"pod {pod_id} is not listed by any account", permanent=True, reason="not_found"
            )
        api.stop_pod(pod_id)
