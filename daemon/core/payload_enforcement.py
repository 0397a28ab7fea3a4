"""The ``enforcement`` payload: what enforcement did to one pod of a budget
instance (stopped, would stop in a dry run, left running and why, a failed
stop, or a stop whose outcome is unknown). Raises ``PayloadError`` on a
non-finite number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from daemon.core.model import Contributor, InstanceStatus, iso_z
from daemon.core.payload import (
    InstanceFields,
    Payload,
    check_finite,
    contributors_json,
    num,
    usd,
)
from daemon.core.wording import refusal_text

#: what happened to the pod; ``unknown``: a stop was sent and its outcome could
#: not be confirmed (it is not retried blindly)
EnforcementAction = Literal["stopped", "would_stop", "refused", "failed", "unknown"]
#: why a pod was left running (``reason`` of ``refused``), each with a sentence
#: in ``wording.refusal_text``; ``locked`` and ``not_stoppable`` come from the
#: pod itself (RunPod's ``locked`` flag; ``actions`` without ``stop``)
REFUSAL_REASONS: tuple[str, ...] = (
    "stale_data", "pods_unavailable", "protected", "not_running", "cap_reached",
    "locked", "not_stoppable", "unknown_after_crash", "already_stopped",
    "retries_exhausted", "intent_exists",
)  # fmt: skip


def enforcement_alert_id(
    instance_key: str, pod_id: str | None, action: str, reason: str = ""
) -> str:
    """``{instance_key}:enforce:{pod_id or -}:{action}``, ``:{reason}`` appended
    for refusals: one announcement per instance, pod and outcome."""
    base = f"{instance_key}:enforce:{pod_id or '-'}:{action}"
    return f"{base}:{reason}" if action == "refused" else base


@dataclass(frozen=True, slots=True)
class EnforcementPayload:
    """Kind ``enforcement``: the budget keys (``threshold_percent`` is the enforce
    level), ``enforcement`` {at_percent, dry_run, pods: [the pod], detail when no
    pod}, then ``action``, ``reason``, ``pod_id``, ``pod_name``, ``dry_run``.

    ``detail`` is the human reason (a refusal's sentence, a failure's error),
    never empty for ``refused``, ``failed`` and ``unknown``."""

    id: str
    instance: InstanceFields
    enforce_at: float
    forecast_usd: float | None
    fired_at: datetime
    action: EnforcementAction
    reason: str
    pod_id: str | None
    pod_name: str | None
    dry_run: bool
    detail: str = ""
    top_contributors: tuple[Contributor, ...] = ()

    def __post_init__(self) -> None:
        check_finite(self, self.id)

    @property
    def kind(self) -> Literal["enforcement"]:
        return "enforcement"

    def to_json(self) -> Payload:
        p = self.instance.json(self.id, "enforcement")
        p["threshold_percent"] = num(self.enforce_at)
        p["forecast_usd"] = usd(self.forecast_usd)
        p["fired_at"] = iso_z(self.fired_at)
        if self.top_contributors:
            p["top_contributors"] = contributors_json(self.top_contributors)
        pods = []
        if self.pod_id is not None:
            pods.append(
                {
                    "pod_id": self.pod_id,
                    "pod_name": self.pod_name,
                    "result": self.action,
                    "detail": self.detail,
                }
            )
        enforcement: Payload = {
            "at_percent": num(self.enforce_at),
            "dry_run": self.dry_run,
            "pods": pods,
        }
        if self.pod_id is None:
            enforcement["detail"] = self.detail
        p["enforcement"] = enforcement
        p["action"] = self.action
        p["reason"] = self.reason
        p["pod_id"] = self.pod_id
        p["pod_name"] = self.pod_name
        p["dry_run"] = self.dry_run
        return p


def enforcement_payload(
    status: InstanceStatus,
    *,
    instance_key: str,
    enforce_at: float,
    action: EnforcementAction,
    reason: str,
    pod_id: str | None,
    pod_name: str | None,
    dry_run: bool,
    fired_at: datetime,
    error: str | None = None,
) -> EnforcementPayload:
    """The record of one enforcement outcome. ``instance_key`` names the budget
    instance (the enforcer's, which may differ from ``status.instance_key``);
    ``detail`` is ``error`` when given, else the reason's sentence for
    ``refused`` / ``unknown``. Raises ``PayloadError``."""
    detail = error or ""
    if not detail and action in ("refused", "unknown", "failed"):
        # never empty: an unrecorded reason reads "no reason recorded"
        detail = refusal_text(reason or ("unknown" if action == "unknown" else ""))
    return EnforcementPayload(
        id=enforcement_alert_id(instance_key, pod_id, action, reason),
        instance=InstanceFields.of(status),
        enforce_at=enforce_at,
        forecast_usd=status.forecast,
        fired_at=fired_at,
        action=action,
        reason=reason,
        pod_id=pod_id,
        pod_name=pod_name,
        dry_run=dry_run,
        detail=detail,
        top_contributors=status.top_contributors,
    )
