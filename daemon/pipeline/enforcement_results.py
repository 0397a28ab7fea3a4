"""What enforcement did, as results, alerts and lines for people.

:class:`EnforcementResult` is one outcome for one pod (or a whole instance);
:func:`enforcement_alerts` turns the new ones into ``kind: enforcement``
alerts (budgets and guards alike); :func:`describe_results` and
:func:`audit_line` are what ``check`` and ``status`` print. The executor that
produces results is :mod:`daemon.pipeline.enforcer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from daemon.config.models import Config
from daemon.core.enforce import describe_reason
from daemon.core.model import Alert, Group, InstanceStatus, Window, fmt_num, iso_z
from daemon.core.payload import PayloadError, to_alert
from daemon.core.payload_enforcement import enforcement_payload

log = structlog.get_logger("daemon.enforcer")

Action = Literal["stopped", "would_stop", "refused", "failed"]

MAX_ATTEMPTS = 3

# Refusals that are the normal state of affairs after a stop: not alerted.
QUIET_REASONS = frozenset({"not_running", "intent_exists"})

# Refusals that need a person's attention: logged as warnings.
WARN_REASONS = frozenset({"unknown_after_crash", "cap_reached", "retries_exhausted"})

LOG_EVENT: dict[str, str] = {
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


def status_from_detail(d: Mapping[str, Any]) -> InstanceStatus:
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
