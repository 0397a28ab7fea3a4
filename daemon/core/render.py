"""Transitional re-exports of the old ``daemon.core.render`` names.

Payloads moved to ``daemon.core.payload`` (+ ``payload_enforcement``,
``payload_digest``, ``payload_pods``, ``summary``), shared words to ``daemon.core.wording`` and
``daemon.core.headline``; rendering moved next to each notifier
(``daemon.adapters.slack_blocks.slack_blocks(payload, zone, console_url)``,
``daemon.adapters.console_text.console_text(payload, zone)``). Import from
those modules; this one goes once no caller uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from daemon.core.headline import headline, severity_emoji
from daemon.core.model import InstanceStatus
from daemon.core.payload import (
    HealthState,
    Payload,
    PayloadError,
    alert_from_finding,
    alert_from_payload,
    health_id,
    health_payload,
    test_payload,
    threshold_payload,
)
from daemon.core.payload_digest import (
    DigestBudget,
    DigestData,
    DigestItem,
    digest_id,
    digest_payload,
)
from daemon.core.payload_enforcement import EnforcementAction
from daemon.core.payload_enforcement import enforcement_payload as _enforcement_record
from daemon.core.wording import (
    BAR_EMPTY,
    BAR_FULL,
    DEFAULT_CONSOLE_URL,
    SPARK_CHARS,
    console_link,
    group_label,
    money,
    pct,
    progress_bar,
    sparkline,
)

__all__ = [
    "BAR_EMPTY", "BAR_FULL", "DEFAULT_CONSOLE_URL", "SPARK_CHARS", "DigestBudget",
    "DigestData", "DigestItem", "EnforcementResult", "HealthState", "Payload",
    "PayloadError", "PodAction", "alert_from_finding", "alert_from_payload",
    "console_link", "digest_id", "digest_payload", "enforcement_payload", "group_label",
    "headline", "health_id", "health_payload", "money", "pct", "progress_bar",
    "severity_emoji", "sparkline", "test_payload", "threshold_payload",
]  # fmt: skip

EnforcementResult = EnforcementAction


@dataclass(frozen=True, slots=True)
class PodAction:
    """Old per-pod outcome; use ``payload.enforcement_payload`` instead."""

    pod_id: str
    result: EnforcementAction
    pod_name: str | None = None
    detail: str = ""


def enforcement_payload(
    status: InstanceStatus,
    *,
    enforce_at: float,
    dry_run: bool,
    actions: Sequence[PodAction],
    fired_at: datetime,
) -> Payload:
    """Old shape: one enforcement payload for the first of ``actions`` (the
    enforcer only ever passes one). Use ``payload.enforcement_payload``."""
    a = actions[0] if actions else None
    return _enforcement_record(
        status,
        instance_key=status.instance_key,
        enforce_at=enforce_at,
        action=a.result if a else "refused",
        reason="",
        pod_id=a.pod_id if a else None,
        pod_name=a.pod_name if a else None,
        dry_run=dry_run,
        fired_at=fired_at,
        error=a.detail if a and a.detail else None,
    ).to_json()
