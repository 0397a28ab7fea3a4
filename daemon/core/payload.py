"""Alert payloads: the contract's webhook JSON, built as typed records.

Pure: no IO, no clock. Every record is a frozen dataclass with ``id``,
``kind`` and ``to_json()``; ``to_json()`` is exactly the webhook body (the
contract's keys first, in the contract's order; extra keys only after them).
Renderers for people (Slack, console) read the JSON dict, never the record, so
an alert stored in the outbox can be re-rendered after a restart.

Numbers: a record refuses NaN and infinities when it is built
(:class:`PayloadError`, a ``ValueError``), so one bad number costs one alert,
which the pipeline can skip without consuming its threshold; every JSON
encoding here is strict (``allow_nan=False``).

This module holds the shared parts, ``threshold``, ``forecast``, ``test`` and
``health``; ``payload_enforcement`` holds ``enforcement``, ``payload_digest``
``digest``, ``payload_pods`` ``idle``, ``uptime`` and ``balance``, and
``summary`` the grouped ``summary`` alert.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from daemon.core.model import (
    Alert,
    AlertKind,
    Contributor,
    Finding,
    Group,
    InstanceStatus,
    Window,
    iso_z,
)

Payload = dict[str, Any]


class PayloadError(ValueError):
    """A payload cannot be built: a number is NaN or infinite. Catch it per
    alert; the message names the alert and the field, never a secret."""


# --------------------------------------------------------------------------- checks, JSON


def _bad_number(value: object, path: str) -> str | None:
    """The dotted path of the first non-finite float inside ``value``, else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _bad_number(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple record
        for name, v in zip(value._fields, value, strict=True):
            found = _bad_number(v, f"{path}.{name}" if path else name)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _bad_number(v, f"{path}[{i}]")
            if found:
                return found
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            found = _bad_number(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
            if found:
                return found
    return None


def check_finite(value: object, alert_id: str = "?") -> None:
    """Raises ``PayloadError`` when ``value`` (a record, dict, list, number)
    holds a NaN or an infinity anywhere; returns None otherwise."""
    bad = _bad_number(value, "")
    if bad is not None:
        raise PayloadError(f"alert {alert_id}: {bad or 'value'} is not a finite number")


def encode_json(payload: Mapping[str, Any]) -> str:
    """Compact, ASCII-only, strict JSON: the exact bytes a webhook signs and
    sends. Raises ``PayloadError`` on NaN/infinity (never writes ``NaN``)."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError:
        raise PayloadError(f"alert {payload.get('id', '?')}: not finite JSON") from None


class Record(Protocol):
    """What every payload record offers."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> AlertKind: ...

    def to_json(self) -> Payload: ...


def to_alert(record: Record, notifiers: Sequence[str]) -> Alert:
    """An ``Alert`` for the outbox from a record."""
    return Alert(
        id=record.id, kind=record.kind, notifiers=tuple(notifiers), payload=record.to_json()
    )


def alert_from_payload(payload: Payload, notifiers: Sequence[str]) -> Alert:
    """An ``Alert`` for a payload dict built here (``id`` and ``kind`` come from
    it). Raises ``PayloadError`` when it holds a non-finite number."""
    alert_id = str(payload["id"])
    check_finite(payload, alert_id)
    return Alert(id=alert_id, kind=payload["kind"], notifiers=tuple(notifiers), payload=payload)


# --------------------------------------------------------------------------- shared pieces


def num(x: float) -> int | float:
    """Whole numbers as ``int`` (80), others as ``float`` (87.5)."""
    f = float(x)
    return int(f) if f.is_integer() else f


def usd(x: float | None) -> float | None:
    """Money as the payload shows it: rounded to cents; None stays None."""
    return None if x is None else round(float(x), 2)


def group_json(g: Group) -> dict[str, str | None]:
    """The payload's ``group`` object: every key present, null where it does not apply."""
    return {
        "pod_id": g.pod_id,
        "pod_name": g.pod_name,
        "gpu_type": g.gpu_type,
        "endpoint_id": g.endpoint_id,
        "endpoint_name": g.endpoint_name,
        "volume_id": g.volume_id,
        "volume_name": g.volume_name,
    }


def window_json(w: Window) -> dict[str, str]:
    return {"size": w.size, "start": iso_z(w.start), "end": iso_z(w.end)}


def contributors_json(cs: Sequence[Contributor]) -> list[dict[str, Any]]:
    return [{"label": c.label, "spend_usd": usd(c.spend)} for c in cs]


@dataclass(frozen=True, slots=True)
class InstanceFields:
    """The keys every budget-instance payload shares, id to percent."""

    account: str
    budget: str
    group: Group
    window: Window
    spend_usd: float
    limit_usd: float
    percent: float

    @classmethod
    def of(cls, s: InstanceStatus) -> InstanceFields:
        return cls(s.account, s.budget, s.group, s.window, s.spend, s.limit, s.percent)

    def json(self, alert_id: str, kind: str) -> Payload:
        return {
            "id": alert_id,
            "kind": kind,
            "account": self.account,
            "budget": self.budget,
            "group": group_json(self.group),
            "window": window_json(self.window),
            "spend_usd": usd(self.spend_usd),
            "limit_usd": float(self.limit_usd),
            "percent": round(float(self.percent), 2),
        }


# --------------------------------------------------------------------------- threshold, forecast


@dataclass(frozen=True, slots=True)
class BudgetPayload:
    """Kind ``threshold`` or ``forecast``: exactly the contract's webhook payload,
    then ``top_contributors`` when the instance has any."""

    id: str
    kind: Literal["threshold", "forecast"]
    instance: InstanceFields
    threshold_percent: float | None
    forecast_usd: float | None
    fired_at: datetime
    top_contributors: tuple[Contributor, ...] = ()

    def __post_init__(self) -> None:
        check_finite(self, self.id)

    def to_json(self) -> Payload:
        p = self.instance.json(self.id, self.kind)
        p["threshold_percent"] = (
            None if self.threshold_percent is None else num(self.threshold_percent)
        )
        p["forecast_usd"] = usd(self.forecast_usd)
        p["fired_at"] = iso_z(self.fired_at)
        if self.top_contributors:
            p["top_contributors"] = contributors_json(self.top_contributors)
        return p


def budget_payload(finding: Finding, fired_at: datetime) -> BudgetPayload:
    """The record of a ``threshold`` / ``forecast`` finding. Raises ``PayloadError``."""
    s = finding.status
    return BudgetPayload(
        id=finding.alert_id,
        kind=finding.kind,
        instance=InstanceFields.of(s),
        threshold_percent=finding.threshold if finding.kind == "threshold" else None,
        forecast_usd=s.forecast,
        fired_at=fired_at,
        top_contributors=s.top_contributors,
    )


def threshold_payload(finding: Finding, fired_at: datetime) -> Payload:
    """The contract's webhook JSON of a finding (``budget_payload(...).to_json()``)."""
    return budget_payload(finding, fired_at).to_json()


def alert_from_finding(finding: Finding, notifiers: Sequence[str], fired_at: datetime) -> Alert:
    """An ``Alert`` ready for the outbox. Raises ``PayloadError``."""
    return to_alert(budget_payload(finding, fired_at), notifiers)


# --------------------------------------------------------------------------- test


@dataclass(frozen=True, slots=True)
class TestPayload:
    """Kind ``test``: sent by ``test-notify``; says plainly that it is a test."""

    __test__ = False  # not a pytest class

    notifier: str
    fired_at: datetime

    @property
    def id(self) -> str:
        return f"test:{self.notifier}:{iso_z(self.fired_at)}"

    @property
    def kind(self) -> Literal["test"]:
        return "test"

    def to_json(self) -> Payload:
        return {
            "id": self.id,
            "kind": "test",
            "notifier": self.notifier,
            "text": (
                f"This is a TEST message from runpod-budget to notifier '{self.notifier}'. "
                "No budget was crossed; nothing needs doing."
            ),
            "fired_at": iso_z(self.fired_at),
        }


def test_payload(notifier_name: str, fired_at: datetime) -> Payload:
    """Kind ``test`` as JSON (``TestPayload(...).to_json()``)."""
    return TestPayload(notifier_name, fired_at).to_json()


test_payload.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test


# --------------------------------------------------------------------------- health

HealthState = Literal["unusable", "recovered"]
#: the data source that cannot be read: billing, the pod list, the balance
HealthSource = Literal["billing", "pods", "balance"]
MAX_ERROR = 300
_SOURCE_TEXT: dict[str, str] = {
    "billing": "billing API",
    "pods": "pod list (GET /pods)",
    "balance": "balance (GraphQL myself)",
}


def health_id(
    state: HealthState, account: str, since: datetime, source: HealthSource = "billing"
) -> str:
    """``{account}:health:{state}:{since}`` for billing (the id it always had),
    ``{account}:health:{source}:{state}:{since}`` for the other sources."""
    part = state if source == "billing" else f"{source}:{state}"
    return f"{account}:health:{part}:{iso_z(since)}"


@dataclass(frozen=True, slots=True)
class HealthPayload:
    """Kind ``health``: ``source`` of ``account`` has been unreadable since
    ``since`` (or recovered from an outage that began then). ``last_error``
    must already be secret-free (``ApiError`` messages are); it is cut to
    300 characters."""

    state: HealthState
    account: str
    since: datetime
    last_error: str | None
    fired_at: datetime
    source: HealthSource = "billing"

    @property
    def id(self) -> str:
        return health_id(self.state, self.account, self.since, self.source)

    @property
    def kind(self) -> Literal["health"]:
        return "health"

    def to_json(self) -> Payload:
        what = f"RunPod {_SOURCE_TEXT[self.source]} for account {self.account}"
        if self.state == "unusable":
            text = f"{what} unusable since {iso_z(self.since)}"
        else:
            text = f"{what} recovered (outage began {iso_z(self.since)})"
        return {
            "id": self.id,
            "kind": "health",
            "account": self.account,
            "state": self.state,
            "since": iso_z(self.since),
            "last_error": None if self.last_error is None else self.last_error[:MAX_ERROR],
            "text": text,
            "fired_at": iso_z(self.fired_at),
            "source": self.source,
        }


def health_payload(
    state: HealthState,
    account: str,
    since: datetime,
    last_error: str | None,
    fired_at: datetime,
    *,
    source: HealthSource = "billing",
) -> Payload:
    """Kind ``health`` as JSON (``HealthPayload(...).to_json()``)."""
    return HealthPayload(state, account, since, last_error, fired_at, source).to_json()
