"""A stand-in for ``daemon.core.payload.summarize`` until that lands.

The integrator deletes this module once ``daemon/core/payload.py`` provides
``summarize(alerts, notifier, now) -> Alert``; ``daemon.pipeline.outbox``
imports that one first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from daemon.core.model import Alert, iso_z


def summarize(alerts: Sequence[Alert], notifier: str, now: datetime) -> Alert:
    """One ``summary`` alert standing for ``alerts`` (decided in one cycle).

    Its id is derived from the members' ids, so a retried summary keeps it.
    """
    digest = hashlib.sha256("\n".join(a.id for a in alerts).encode()).hexdigest()[:16]
    aid = f"summary:{notifier}:{digest}"
    payload = {
        "id": aid,
        "kind": "summary",
        "count": len(alerts),
        "alert_ids": [a.id for a in alerts],
        "alerts": [a.payload for a in alerts],
        "fired_at": iso_z(now),
    }
    return Alert(id=aid, kind="summary", notifiers=(notifier,), payload=payload)
