"""Plain data shared by every layer: what RunPod tells us and what we decide.

Everything here is immutable and free of IO. Times are timezone-aware UTC
``datetime`` objects unless a field says otherwise; money is USD as ``float``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal, NamedTuple

#: A billing family: one stream of spend per account. ``account`` is the whole
#: account's total (v2 ``GET /billing``; v1 the sum of its three billing calls),
#: kept with one point per component family (``resource`` = ``total``, ``pods``,
#: ``serverless``, ``storage``, ``clusters``, ``public_endpoints``). The others
#: hold one point per resource (pod, serverless endpoint, network volume,
#: cluster) and bucket; ``public_endpoints`` has no ids (``resource`` = ``""``).
Family = Literal["account", "pods", "serverless", "storage", "clusters", "public_endpoints"]
#: The resource families a budget's ``resources:`` may name, in display order.
RESOURCE_FAMILIES: tuple[str, ...] = (
    "pods", "serverless", "storage", "clusters", "public_endpoints",
)
TOTAL = "total"  # the ``resource`` of an account point holding ``totalAmount``


class PodStatus(StrEnum):
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    TERMINATED = "TERMINATED"
    PROVISIONING = "PROVISIONING"
    STARTING = "STARTING"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class SpendRecord:
    """One billing record, the same whichever API version sent it.

    ``[start, end)`` is the bucket (UTC); ``resource`` as in :data:`Family`;
    ``components`` are the named parts of ``amount`` that the daemon keeps
    (for ``account``: spend per resource family; empty elsewhere).
    """

    family: Family
    resource: str
    start: datetime
    end: datetime
    amount: float
    components: tuple[tuple[str, float], ...] = ()

    @property
    def hours(self) -> int:
        return round((self.end - self.start).total_seconds() / 3600)


@dataclass(frozen=True, slots=True)
class Resource:
    """A named serverless endpoint or network volume from RunPod's listings."""

    family: Literal["serverless", "storage"]
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Pod:
    """The parts of ``GET /pods`` the daemon uses, whichever API version sent them.

    ``gpu_type`` is RunPod's GPU type id (e.g. "NVIDIA H100 80GB HBM3"), ``None``
    for CPU pods. ``cost_per_hr`` is the live burn rate in USD/hour. ``locked``
    pods and pods whose ``can_stop`` is False (v2 ``actions`` lack ``stop``) are
    never stopped. ``gpu_util`` holds each GPU's utilisation in percent (v2
    ``runtime.gpus[].util``), ``None`` when unknown (v1, or not RUNNING).
    ``started_at`` is when the current run began (v2 ``startedAt``).
    """

    id: str
    name: str
    desired_status: PodStatus
    cost_per_hr: float
    gpu_type: str | None = None
    gpu_count: int = 0
    locked: bool = False
    can_stop: bool = True
    gpu_util: tuple[float, ...] | None = None
    started_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.desired_status is PodStatus.RUNNING

    @property
    def status(self) -> PodStatus:
        return self.desired_status


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod as the registry remembers it, also after RunPod stopped listing it."""

    id: str
    name: str
    gpu_type: str | None
    gpu_count: int
    first_seen: datetime
    last_seen: datetime
    last_status: str
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """GraphQL ``myself { clientBalance currentSpendPerHr spendLimit }``."""

    balance: float
    spend_per_hr: float
    spend_limit: float | None = None

    @property
    def runway_hours(self) -> float | None:
        """Hours until $0 at the current burn; None when nothing burns."""
        return None if self.spend_per_hr <= 0 else self.balance / self.spend_per_hr


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One stream of stored spend: an account's billing family."""

    account: str
    family: Family


class SpendPoint(NamedTuple):
    """Spend of one resource in one bucket ``[time, time + hours)``.

    ``hours`` is 1 for an hour bucket and 24 for a whole UTC day; the planner
    never stores both for the same hour, so summing the points that lie inside
    a window counts every hour once.

    A named tuple (as :class:`InstanceStatus`): a poll reads ~40,000 points
    back from the store, and a frozen dataclass's ``__init__`` cost a third
    of that read.
    """

    time: datetime  # bucket start, UTC
    resource: str  # pod / endpoint / volume / cluster id; account: TOTAL or a family
    amount: float
    hours: int = 1

    @property
    def end(self) -> datetime:
        from datetime import timedelta

        return self.time + timedelta(hours=self.hours)


BucketLen = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One planned billing call: ``family`` of ``series.account`` in buckets of
    ``bucket`` over ``[start, end)`` (aligned to the bucket)."""

    series: SeriesKey
    start: datetime
    end: datetime
    bucket: BucketLen = "hour"


@dataclass(frozen=True, slots=True)
class IdleState:
    """Where one running pod stands for idle guards, kept between polls.

    ``idle_since`` is the time of the first idle sample of the current idle
    stretch (None while busy); ``run_start`` is the pod's ``startedAt`` for the
    run the stretch belongs to; ``last_util`` is the highest GPU utilisation
    of the last sample, taken at ``last_sample_at``.
    """

    pod_id: str
    run_start: datetime | None
    idle_since: datetime | None
    last_sample_at: datetime
    last_util: float


@dataclass(frozen=True, slots=True)
class Window:
    """A concrete window instance: ``size`` is as configured ("day", "24h")."""

    size: str
    start: datetime  # UTC
    end: datetime  # UTC
    rolling: bool


@dataclass(frozen=True, slots=True)
class Group:
    """The group of a budget instance, as in the webhook payload."""

    pod_id: str | None = None
    pod_name: str | None = None
    gpu_type: str | None = None
    endpoint_id: str | None = None
    endpoint_name: str | None = None
    volume_id: str | None = None
    volume_name: str | None = None

    @property
    def key(self) -> str:
        """``pod=ID``, ``gpu=TYPE``, ``endpoint=ID``, ``volume=ID`` or ``all``:
        the group part of an alert id."""
        if self.pod_id is not None:
            return f"pod={self.pod_id}"
        if self.endpoint_id is not None:
            return f"endpoint={self.endpoint_id}"
        if self.volume_id is not None:
            return f"volume={self.volume_id}"
        if self.gpu_type is not None:
            return f"gpu={self.gpu_type}"
        return "all"


@dataclass(frozen=True, slots=True)
class Contributor:
    """A pod or GPU type's share of an aggregate instance's spend."""

    label: str
    spend: float


class InstanceStatus(NamedTuple):
    """Where one budget instance stands at ``now``: the basis of every decision.

    A named tuple, not a frozen dataclass like its neighbours: a cycle on a
    2,000-pod account builds ~80,000 of them and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) cost ~0.2 s of each
    poll (bench/scale.py). Immutable and hashable all the same.
    """

    account: str
    budget: str
    group: Group
    window: Window
    spend: float
    limit: float
    forecast: float | None  # projected spend at window end; None when unknown
    thresholds: tuple[float, ...]
    forecast_enabled: bool
    top_contributors: tuple[Contributor, ...] = ()
    pod_ids: tuple[str, ...] = ()  # pods in scope that have spend or are running

    @property
    def percent(self) -> float:
        return 0.0 if self.limit <= 0 else round(100.0 * self.spend / self.limit, 2)

    @property
    def instance_key(self) -> str:
        """``account:budget:group:windowstart``: the stable prefix of alert ids."""
        return instance_key(self.account, self.budget, self.group.key, self.window.start)


AlertKind = Literal[
    "threshold", "forecast", "enforcement", "digest", "test", "health", "idle", "uptime",
    "balance", "summary",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something worth telling people about, before dedupe.

    ``threshold`` is the highest threshold crossed (kind ``threshold``) or
    ``None`` (kind ``forecast``).
    """

    kind: Literal["threshold", "forecast"]
    status: InstanceStatus
    threshold: float | None

    @property
    def alert_id(self) -> str:
        """The contract's ``id``: stable across restarts and replicas."""
        suffix = f"threshold:{fmt_num(self.threshold)}" if self.kind == "threshold" else "forecast"
        return f"{self.status.instance_key}:{suffix}"


@dataclass(frozen=True, slots=True)
class Alert:
    """A decided notification: stored in the outbox before any send.

    ``payload`` is exactly the contract's webhook JSON body (``id``, ``kind``,
    ...); notifiers render from it, so a stored alert can be re-sent after a
    restart without re-evaluating anything.
    """

    id: str
    kind: AlertKind
    notifiers: tuple[str, ...]
    payload: dict[str, Any] = field(hash=False, compare=False)


def instance_key(account: str, budget: str, group_key: str, window_start: datetime) -> str:
    """``account:budget:group:windowstart``: one budget instance, as alert ids name it."""
    return f"{account}:{budget}:{group_key}:{iso_z(window_start)}"


@lru_cache(maxsize=8192)
def iso_z(t: datetime) -> str:
    """``2026-11-24T00:00:00Z`` for an aware datetime (seconds precision).
    Cached: every instance of a budget names the same window start."""
    return t.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def fmt_num(x: float | None) -> str:
    """80.0 -> "80", 87.5 -> "87.5": thresholds as people write them."""
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def fold_gpu(name: str) -> str:
    """``"NVIDIA  RTX a4500 "`` -> ``"nvidia rtx a4500"``: the key GPU type names
    compare by (RunPod's own list has ``NVIDIA  RTX A4500`` with two spaces)."""
    return " ".join(name.split()).casefold()
