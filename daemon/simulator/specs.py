"""The resources of a simulated account (pods, volumes, serverless endpoints, clusters).

Each resource turns its scenario data into *meters*: ``(start, end, USD/h)``
segments in epoch seconds (``end`` may be ``inf``), cached until the data they
come from changes, so that billing for thousands of pods does not re-derive
them per request. Spend is ``rate x seconds / 3600`` over the segments, never
past "now".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: a scenario spend segment: [start, end) at a rate in USD/h (end None = open)
Segment = tuple[datetime, datetime | None, float]
#: a meter segment in epoch seconds: (start, end or inf, USD/h)
Seg = tuple[float, float, float]

#: running disk price, USD per GB-hour ($0.10/GB/month, RunPod's running-pod rate)
DISK_RATE_GB_HR = 0.10 / 730


def to_segs(segments: list[Segment]) -> list[Seg]:
    """Scenario segments as sorted epoch-second meter segments."""
    out = [(s.timestamp(), math.inf if e is None else e.timestamp(), r) for s, e, r in segments]
    return sorted(x for x in out if x[1] > x[0])


def rate_at(segs: list[Seg], t: float) -> float:
    """USD/h billed at epoch second ``t``."""
    return sum(r for s, e, r in segs if s <= t < e)


@dataclass
class PodSpec:
    """One pod. ``running`` holds [start, end) runs; ``end=None`` means running now.

    While running a pod costs ``cost_per_hr`` (its compute plus its own disk,
    see :attr:`disk_cost_per_hr`); while stopped it costs ``stopped_cost_per_hr``
    (default 0: opt in to RunPod's stopped-disk charge) until terminated.
    """

    id: str
    cost_per_hr: float
    name: str = ""
    gpu_type: str | None = None
    gpu_count: int = 1
    gpu_display_name: str | None = None
    running: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    status: str | None = None  # explicit override (e.g. TERMINATED, ERROR)
    image: str = "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04"
    container_disk_gb: int = 50
    volume_gb: int = 20
    data_center_id: str = "EU-RO-1"
    locked: bool = False
    gpu_util: list[tuple[datetime | None, float]] = field(default_factory=lambda: [(None, 90.0)])
    cpu_util: int = 35
    memory_util: int = 40
    stopped_cost_per_hr: float = 0.0
    created_at: datetime | None = None
    terminated_at: datetime | None = None
    network_volume: str | None = None
    vcpu_count: int = 16
    memory_gb: int = 62
    cluster_id: str | None = None
    cluster_rank: int | None = None
    _cache: tuple[Any, list[Seg], list[Seg]] | None = field(default=None, repr=False,
                                                              compare=False)

    @property
    def desired_status(self) -> str:
        if self.status:
            return self.status
        return "RUNNING" if self.is_running else "EXITED"

    @property
    def is_running(self) -> bool:
        return bool(self.running) and self.running[-1][1] is None

    @property
    def started_at(self) -> datetime | None:
        """Start of the current run (None unless running)."""
        return self.running[-1][0] if self.is_running else None

    @property
    def created(self) -> datetime | None:
        return self.created_at or (self.running[0][0] if self.running else None)

    @property
    def disk_gb(self) -> int:
        return self.container_disk_gb + self.volume_gb

    @property
    def disk_cost_per_hr(self) -> float:
        """The part of ``cost_per_hr`` that pays the pod's own disk while running."""
        return min(self.cost_per_hr, self.disk_gb * DISK_RATE_GB_HR)

    def util_at(self, t: datetime) -> float:
        """GPU utilisation (percent) at ``t``: the last step at or before ``t``."""
        value = self.gpu_util[0][1] if self.gpu_util else 0.0
        for since, v in self.gpu_util:
            if since is None or since <= t:
                value = v
        return value

    def meters(self) -> tuple[list[Seg], list[Seg]]:
        """(running segments at ``cost_per_hr``, stopped segments at ``stopped_cost_per_hr``)."""
        # the whole run list: comparing tuples is C-speed and catches any edit
        sig = (tuple(self.running), self.cost_per_hr, self.stopped_cost_per_hr,
               self.terminated_at, self.created_at)
        if self._cache is None or self._cache[0] != sig:
            run = to_segs([(s, e, self.cost_per_hr) for s, e in self.running])
            self._cache = (sig, run, self._stopped(run))
        return self._cache[1], self._cache[2]

    def _stopped(self, run: list[Seg]) -> list[Seg]:
        if self.stopped_cost_per_hr <= 0 or self.created is None:
            return []
        t = self.created.timestamp()
        end = math.inf if self.terminated_at is None else self.terminated_at.timestamp()
        out: list[Seg] = []
        for s, e, _ in run:
            if s > t:
                out.append((t, min(s, end), self.stopped_cost_per_hr))
            t = max(t, e)
        if t < end:
            out.append((t, end, self.stopped_cost_per_hr))
        return [x for x in out if x[1] > x[0]]


@dataclass
class VolumeSpec:
    """A network volume billed at ``cost_per_hr`` from ``since`` (until ``until``)."""

    id: str
    cost_per_hr: float
    since: datetime
    name: str = ""
    size_gb: int = 100
    type: str = "STANDARD"  # or HIGH_PERFORMANCE
    data_center_id: str = "EU-RO-1"
    until: datetime | None = None

    def meter(self) -> list[Seg]:
        return to_segs([(self.since, self.until, self.cost_per_hr)])


@dataclass
class ServerlessSpec:
    """A serverless endpoint whose spend runs at ``spend`` rates over time."""

    id: str
    spend: list[Segment]
    name: str = ""
    gpu_type: str | None = "NVIDIA L4"  # None: a CPU endpoint
    gpu_pool: str = "ADA_24"
    workers_max: int = 3
    data_center_id: str = "EU-RO-1"
    created_at: datetime | None = None
    _cache: tuple[Any, list[Seg]] | None = field(default=None, repr=False, compare=False)

    def meter(self) -> list[Seg]:
        sig = tuple(self.spend)
        if self._cache is None or self._cache[0] != sig:
            self._cache = (sig, to_segs(self.spend))
        return self._cache[1]

    @property
    def created(self) -> datetime | None:
        return self.created_at or (min(s for s, _, _ in self.spend) if self.spend else None)


@dataclass
class ClusterSpec:
    """An Instant Cluster of ``nodes`` member pods, billed as one cluster (v2 only)."""

    id: str
    cost_per_hr: float
    running: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    name: str = ""
    gpu_type: str = "NVIDIA H100 80GB HBM3"
    nodes: int = 2
    gpus_per_node: int = 8
    _members: list[PodSpec] | None = field(default=None, repr=False, compare=False)

    def meter(self) -> list[Seg]:
        return to_segs([(s, e, self.cost_per_hr) for s, e in self.running])

    def member_pods(self) -> list[PodSpec]:
        """The cluster's node pods (sharing its ``running`` list); stable objects."""
        if self._members is None:
            self._members = [
                PodSpec(id=f"{self.id}-node{i}", name=f"{self.name or self.id}-node{i}",
                        cost_per_hr=round(self.cost_per_hr / max(self.nodes, 1), 6),
                        gpu_type=self.gpu_type, gpu_count=self.gpus_per_node,
                        running=self.running, cluster_id=self.id, cluster_rank=i,
                        locked=False)
                for i in range(self.nodes)
            ]
        return self._members


@dataclass
class BalanceSpec:
    """The prepaid balance at the scenario's load instant, and the spend limit.

    ``stop_at_zero``: when the balance reaches $0 every pod stops at that
    instant, and pods without a network volume are terminated (RunPod's rule).
    """

    start: float = 1000.0
    spend_limit: float = 80.0
    top_ups: float = 0.0
    stop_at_zero: bool = False


def epoch(t: datetime) -> float:
    return t.astimezone(UTC).timestamp()
