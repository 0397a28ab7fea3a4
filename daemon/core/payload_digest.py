"""The ``digest`` payload: spend today / week / month to date, top pods and GPU
types with an hourly series, and every budget's standing.

Id ``digest:{account or all}:{local date}``. Raises ``PayloadError`` on a
non-finite number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from daemon.core.model import InstanceStatus, iso_z
from daemon.core.payload import Payload, check_finite, usd
from daemon.core.wording import group_label


@dataclass(frozen=True, slots=True)
class DigestItem:
    """A pod or GPU type in the digest: total spend and an hourly series."""

    label: str
    spend: float
    hourly: tuple[float, ...] = ()

    def json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "spend_usd": usd(self.spend),
            "hourly_usd": [round(float(v), 4) for v in self.hourly],
        }


@dataclass(frozen=True, slots=True)
class DigestBudget:
    """One budget instance's standing in the digest."""

    name: str
    group: str  # a readable label ("GPU NVIDIA H100 …", "pod train-1 (abc)")
    window: str
    spend: float
    limit: float
    percent: float

    @classmethod
    def from_status(cls, s: InstanceStatus) -> DigestBudget:
        return cls(
            name=s.budget,
            group=group_label(s.group),
            window=s.window.size,
            spend=s.spend,
            limit=s.limit,
            percent=s.percent,
        )

    def json(self) -> dict[str, Any]:
        return {
            "budget": self.name,
            "group": self.group,
            "window": self.window,
            "spend_usd": usd(self.spend),
            "limit_usd": float(self.limit),
            "percent": round(float(self.percent), 2),
        }


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything a digest shows. ``date`` is the local date in ``timezone``."""

    period: str  # "daily", "weekly", ... (free text label)
    date: date
    timezone: str
    account: str | None  # None: every account
    spend_today: float
    spend_week: float  # ISO week to date
    spend_month: float  # month to date
    top_pods: tuple[DigestItem, ...] = ()
    top_gpu_types: tuple[DigestItem, ...] = ()
    budgets: tuple[DigestBudget, ...] = ()
    #: spend per resource family (pods, serverless, storage, clusters,
    #: public_endpoints): (family, today, week to date, month to date)
    families: tuple[tuple[str, float, float, float], ...] = ()
    top_endpoints: tuple[DigestItem, ...] = ()


def digest_id(account: str | None, local_date: date) -> str:
    return f"digest:{account or 'all'}:{local_date.isoformat()}"


@dataclass(frozen=True, slots=True)
class DigestPayload:
    """Kind ``digest``."""

    data: DigestData
    fired_at: datetime

    def __post_init__(self) -> None:
        check_finite(self, self.id)

    @property
    def id(self) -> str:
        return digest_id(self.data.account, self.data.date)

    @property
    def kind(self) -> Literal["digest"]:
        return "digest"

    def to_json(self) -> Payload:
        d = self.data
        return {
            "id": self.id,
            "kind": "digest",
            "account": d.account,
            "period": d.period,
            "date": d.date.isoformat(),
            "timezone": d.timezone,
            "spend_usd": {
                "today": usd(d.spend_today),
                "week_to_date": usd(d.spend_week),
                "month_to_date": usd(d.spend_month),
            },
            "top_pods": [i.json() for i in d.top_pods],
            "top_gpu_types": [i.json() for i in d.top_gpu_types],
            "budgets": [b.json() for b in d.budgets],
            "by_family": [
                {"family": f, "today": usd(t), "week_to_date": usd(w), "month_to_date": usd(m)}
                for f, t, w, m in d.families
            ],
            "top_endpoints": [i.json() for i in d.top_endpoints],
            "fired_at": iso_z(self.fired_at),
        }


def digest_payload(digest: DigestData, fired_at: datetime) -> Payload:
    """Kind ``digest`` as JSON. Raises ``PayloadError``."""
    return DigestPayload(digest, fired_at).to_json()
