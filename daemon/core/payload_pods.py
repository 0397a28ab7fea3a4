"""Payloads of the pod guards (``idle``, ``uptime``) and of ``balance``.

Contract ("Guards", "Balance"): the fields sit at the top level beside ``id``,
``kind``, ``account`` and ``fired_at``; times are ISO-8601 UTC with ``Z``.
Extra keys (``uptime_over``; ``text`` for balance) only come after the
contract's. Builders raise ``PayloadError`` on a non-finite number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from daemon.core.model import Balance, Pod, fmt_num, iso_z
from daemon.core.payload import Payload, check_finite, usd
from daemon.core.wording import ZERO_BALANCE_WARNING, duration, money, rate

#: stands for a run start RunPod did not report (``startedAt`` missing)
UNKNOWN_START = "unknown"


def _start(t: datetime | None) -> str:
    return UNKNOWN_START if t is None else iso_z(t)


@dataclass(frozen=True, slots=True)
class _PodFields:
    """What both guards say about the pod."""

    account: str
    guard: str
    pod_id: str
    pod_name: str | None
    gpu_type: str | None
    cost_per_hr: float
    run_started_at: datetime | None

    @classmethod
    def of(cls, account: str, guard: str, pod: Pod) -> _PodFields:
        return cls(
            account, guard, pod.id, pod.name or None, pod.gpu_type, pod.cost_per_hr, pod.started_at
        )

    def prefix(self) -> str:
        """``{account}:{guard}:pod={ID}:{run start}``."""
        return f"{self.account}:{self.guard}:pod={self.pod_id}:{_start(self.run_started_at)}"

    def json(self, alert_id: str, kind: str) -> Payload:
        return {
            "id": alert_id,
            "kind": kind,
            "account": self.account,
            "guard": self.guard,
            "pod_id": self.pod_id,
            "pod_name": self.pod_name,
            "gpu_type": self.gpu_type,
            "cost_per_hr": round(float(self.cost_per_hr), 4),
            "run_started_at": (None if self.run_started_at is None else iso_z(self.run_started_at)),
        }


# --------------------------------------------------------------------------- idle


@dataclass(frozen=True, slots=True)
class IdlePayload:
    """Kind ``idle``: id ``{account}:{guard}:pod={ID}:{run start}:idle:{idle since}``.
    ``gpu_util`` is the highest utilisation among the pod's GPUs in the last
    sample (percent)."""

    pod: _PodFields
    gpu_util: float
    idle_since: datetime
    fired_at: datetime

    def __post_init__(self) -> None:
        check_finite(self, self.id)

    @property
    def id(self) -> str:
        return f"{self.pod.prefix()}:idle:{iso_z(self.idle_since)}"

    @property
    def kind(self) -> Literal["idle"]:
        return "idle"

    def to_json(self) -> Payload:
        p = self.pod.json(self.id, "idle")
        p["gpu_util"] = round(float(self.gpu_util), 2)
        p["idle_since"] = iso_z(self.idle_since)
        p["fired_at"] = iso_z(self.fired_at)
        return p


def idle_payload(
    *, account: str, guard: str, pod: Pod, gpu_util: float, idle_since: datetime, fired_at: datetime
) -> IdlePayload:
    """The record of an idle pod (run start: ``pod.started_at``; ``unknown`` in the
    id when RunPod did not report it). Raises ``PayloadError``."""
    return IdlePayload(_PodFields.of(account, guard, pod), gpu_util, idle_since, fired_at)


# --------------------------------------------------------------------------- uptime


@dataclass(frozen=True, slots=True)
class UptimePayload:
    """Kind ``uptime``: id ``{account}:{guard}:pod={ID}:{run start}:uptime``;
    ``uptime_over`` is the configured limit as written (``12h``)."""

    pod: _PodFields
    uptime_hours: float
    uptime_over: str
    fired_at: datetime

    def __post_init__(self) -> None:
        check_finite(self, self.id)

    @property
    def id(self) -> str:
        return f"{self.pod.prefix()}:uptime"

    @property
    def kind(self) -> Literal["uptime"]:
        return "uptime"

    def to_json(self) -> Payload:
        p = self.pod.json(self.id, "uptime")
        p["uptime_hours"] = round(float(self.uptime_hours), 2)
        p["fired_at"] = iso_z(self.fired_at)
        p["uptime_over"] = self.uptime_over
        return p


def uptime_payload(
    *, account: str, guard: str, pod: Pod, uptime_over: str, fired_at: datetime
) -> UptimePayload:
    """The record of a pod running longer than ``uptime_over``: its uptime is
    ``fired_at - pod.started_at``. Raises ``PayloadError``; ``ValueError`` when
    the pod has no ``started_at`` (an uptime guard cannot judge such a pod)."""
    if pod.started_at is None:
        raise ValueError(f"pod {pod.id} has no start time; uptime is unknown")
    hours = (fired_at - pod.started_at).total_seconds() / 3600
    return UptimePayload(_PodFields.of(account, guard, pod), hours, uptime_over, fired_at)


# --------------------------------------------------------------------------- balance

BalanceLevelType = Literal["below_usd", "runway_below"]


@dataclass(frozen=True, slots=True)
class BalanceLevel:
    """A configured level: ``below_usd`` with a USD amount, or ``runway_below``
    with the duration as written (``6h``)."""

    type: BalanceLevelType
    value: float | str

    @property
    def key(self) -> str:
        """``below_usd:25`` / ``runway_below:6h``: the level part of a balance id."""
        v = fmt_num(float(self.value)) if self.type == "below_usd" else str(self.value)
        return f"{self.type}:{v}"

    def json_value(self) -> int | float | str:
        if self.type == "runway_below":
            return str(self.value)
        f = float(self.value)
        return int(f) if f.is_integer() else f


@dataclass(frozen=True, slots=True)
class BalancePayload:
    """Kind ``balance``: id ``{account}:balance:{level key}:{crossed at}``.
    ``runway_hours`` is None when nothing burns. ``text`` (an extra key) says
    what happened and, always, what RunPod does at $0."""

    account: str
    balance_usd: float
    spend_per_hr_usd: float
    runway_hours: float | None
    level: BalanceLevel
    crossed_at: datetime
    fired_at: datetime

    def __post_init__(self) -> None:
        check_finite(self, self.id)
        if self.level.type == "below_usd":
            check_finite(float(self.level.value), self.id)

    @property
    def id(self) -> str:
        return f"{self.account}:balance:{self.level.key}:{iso_z(self.crossed_at)}"

    @property
    def kind(self) -> Literal["balance"]:
        return "balance"

    def text(self) -> str:
        runway = (
            "nothing is burning"
            if self.runway_hours is None
            else f"runway {duration(self.runway_hours * 3600)}"
        )
        return (
            f"RunPod balance of account {self.account} is {money(self.balance_usd)} "
            f"at {rate(self.spend_per_hr_usd)} ({runway}). {ZERO_BALANCE_WARNING}"
        )

    def to_json(self) -> Payload:
        return {
            "id": self.id,
            "kind": "balance",
            "account": self.account,
            "balance_usd": usd(self.balance_usd),
            "spend_per_hr_usd": round(float(self.spend_per_hr_usd), 4),
            "runway_hours": None if self.runway_hours is None else round(self.runway_hours, 2),
            "level": {"type": self.level.type, "value": self.level.json_value()},
            "fired_at": iso_z(self.fired_at),
            "text": self.text(),
        }


def balance_payload(
    *,
    account: str,
    balance: Balance,
    level: BalanceLevel,
    crossed_at: datetime,
    fired_at: datetime,
) -> BalancePayload:
    """The record of a crossed balance level. Raises ``PayloadError``."""
    return BalancePayload(
        account=account,
        balance_usd=balance.balance,
        spend_per_hr_usd=balance.spend_per_hr,
        runway_hours=balance.runway_hours,
        level=level,
        crossed_at=crossed_at,
        fired_at=fired_at,
    )
