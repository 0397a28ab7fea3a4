"""Grouping many alerts into one message, like Alertmanager's ``group_by``.

When one cycle decides more alerts for a person-facing notifier (Slack,
console) than ``grouping.max_individual``, the outbox sends that notifier one
``kind: summary`` alert instead; machines (webhooks) still get one event per
alert. Pure: the members' payloads in, one alert out.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from daemon.core.model import Alert, iso_z
from daemon.core.payload import Payload, check_finite, to_alert
from daemon.core.wording import group_key, pod_of

TOP = 5


def summary_id(notifier: str, alert_ids: Sequence[str]) -> str:
    """``summary:{notifier}:{16 hex of sha256 of the sorted member ids}``: the
    same members give the same id (a re-decided cycle is deduplicated)."""
    digest = hashlib.sha256("\n".join(sorted(alert_ids)).encode("utf-8")).hexdigest()
    return f"summary:{notifier}:{digest[:16]}"


def _label(p: Mapping[str, Any]) -> str:
    """What an alert is about for ``by_budget``: its budget, guard, else its kind."""
    return str(p.get("budget") or p.get("guard") or p.get("kind") or "?")


def _group(p: Mapping[str, Any]) -> str | None:
    if isinstance(p.get("group"), Mapping):
        return group_key(p["group"])
    pod = pod_of(p)
    return f"pod={pod}" if pod else None


def _percent(p: Mapping[str, Any]) -> float | None:
    v = p.get("percent")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _top_item(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": p.get("id"),
        "kind": p.get("kind"),
        "account": p.get("account"),
        "budget": _label(p),
        "group": _group(p),
        "percent": _percent(p),
        "spend_usd": p.get("spend_usd"),
        "limit_usd": p.get("limit_usd"),
    }


@dataclass(frozen=True, slots=True)
class SummaryPayload:
    """Kind ``summary``: {id, kind, fired_at, count, top, by_budget, alert_ids}.

    ``top``: the 5 members with the highest ``percent`` (members without one,
    such as idle or balance alerts, come last), ties by id; ``by_budget``:
    [{budget, count}] by count, then name; ``alert_ids`` sorted."""

    notifier: str
    members: tuple[Payload, ...]
    fired_at: datetime

    def __post_init__(self) -> None:
        check_finite(list(self.members), self.id)

    @property
    def alert_ids(self) -> list[str]:
        return sorted(str(p["id"]) for p in self.members)

    @property
    def id(self) -> str:
        return summary_id(self.notifier, self.alert_ids)

    @property
    def kind(self) -> Literal["summary"]:
        return "summary"

    def to_json(self) -> Payload:
        ranked = sorted(
            self.members,
            key=lambda p: (_percent(p) is None, -(_percent(p) or 0.0), str(p["id"])),
        )
        counts = Counter(_label(p) for p in self.members)
        return {
            "id": self.id,
            "kind": "summary",
            "fired_at": iso_z(self.fired_at),
            "count": len(self.members),
            "top": [_top_item(p) for p in ranked[:TOP]],
            "by_budget": [
                {"budget": b, "count": n}
                for b, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "alert_ids": self.alert_ids,
        }


def summarize(alerts: Sequence[Alert], notifier: str, now: datetime) -> Alert:
    """One ``kind: summary`` alert for ``notifier`` standing for ``alerts``
    (each still recorded in the ledger by its own id). Raises ``ValueError``
    for an empty list, ``PayloadError`` for a non-finite number."""
    if not alerts:
        raise ValueError("summarize needs at least one alert")
    record = SummaryPayload(notifier, tuple(a.payload for a in alerts), now)
    return to_alert(record, [notifier])
