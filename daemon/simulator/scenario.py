"""Scenarios for the RunPod simulator: what exists in the account, what it costs, when.

A scenario is plain data (dataclasses). It loads from a dict, a YAML/JSON file or
a built-in name (``demo``, ``month``). Times are absolute ISO-8601
(``2026-11-24T08:00:00Z``) or relative to the load instant: ``now``, ``-6h``,
``-30d``, ``+15m``, ``-1d2h`` (units ``s m h d w``). One scenario feeds REST v1,
REST v2 and GraphQL alike. File shape (only ids and prices are required)::

    pods:
      - id: pod-h100
        name: runaway-sweep
        gpu_type: NVIDIA H100 80GB HBM3   # omit for a CPU pod
        gpu_count: 1
        cost_per_hr: 1800                 # all-in running rate (compute + its disk)
        running: [["-2h", "-1h"], ["-30m", null]]  # runs; null end = running now;
                                          # v2 startedAt = start of the open run
        status: TERMINATED                # optional override (default RUNNING/EXITED)
        locked: false                     # v2: a locked pod cannot be stopped
        util: [["-2h", 0], ["-20m", 85]]  # GPU utilisation steps (or a constant)
        stopped_cost_per_hr: 0.0          # disk charged while not running (opt-in)
        network_volume: vol-1             # mount a network volume instead of a disk
    volumes:
      - {id: vol-1, name: datasets, size_gb: 500, cost_per_hr: 0.0486, since: -30d,
         type: STANDARD}                  # or HIGH_PERFORMANCE; optional until:
    serverless:                           # serverless endpoints
      - {id: ep-1, name: sdxl, cost_per_hr: 0.9, since: -2d}   # or:
      - {id: ep-2, spend: [["-1d", "-20h", 2.0], ["-1h", null, 0.5]]}
    clusters:                             # Instant Clusters (v2 only)
      - {id: clu-1, name: big, gpu_type: NVIDIA H100 80GB HBM3, nodes: 2,
         cost_per_hr: 48, running: [["-3h", null]]}
    public_endpoints: [{cost_per_hr: 0.2, since: -1d}]   # v2 /billing/endpoints
    balance: {start: 50.0, spend_limit: 80, stop_at_zero: false}   # GraphQL myself
    rate_limit: {minute: 600, hour: 30000, day: 500000}   # v2; "off" = exempt
    retired: [v1]                         # v1 and/or graphql (and v2) answer 410
    faults:                               # see Simulator.fail
      - {path: /v1/billing/pods, status: 503, times: 2}
    generate: {kind: month, pods: 20, days: 31, seed: 7, serverless: 0, volumes: 0}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from daemon.simulator.generate import month_pods, month_serverless, month_volumes
from daemon.simulator.specs import (
    BalanceSpec,
    ClusterSpec,
    PodSpec,
    Seg,
    Segment,
    ServerlessSpec,
    VolumeSpec,
    to_segs,
)

_REL = re.compile(r"^([+-])((?:\d+(?:\.\d+)?[smhdw])+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

BUILTIN = ("demo", "month")
DEFAULT_RATE_LIMIT = {"minute": 600, "hour": 30000, "day": 500000}

__all__ = ["BUILTIN", "BalanceSpec", "ClusterSpec", "PodSpec", "Scenario", "Segment",
           "ServerlessSpec", "VolumeSpec", "month_pods", "parse_time"]


def parse_time(value: Any, now: datetime) -> datetime:
    """An absolute or relative scenario time (see module doc) as aware UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).strip()
    if text == "now":
        return now
    m = _REL.match(text)
    if m:
        secs = sum(float(n) * _UNITS[u] for n, u in _PART.findall(m.group(2)))
        return now + timedelta(seconds=secs if m.group(1) == "+" else -secs)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad scenario time {text!r}: use ISO-8601, 'now' or '-6h'") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _opt_time(value: Any, now: datetime) -> datetime | None:
    return None if value is None else parse_time(value, now)


def _intervals(raw: Any, now: datetime) -> list[tuple[datetime, datetime | None]]:
    return [(parse_time(s, now), _opt_time(e, now)) for s, e in (raw or [])]


def _spend(d: dict[str, Any], now: datetime, where: str) -> list[Segment]:
    """``spend: [[start, end, rate], ...]`` or ``cost_per_hr`` + ``since``/``until``."""
    if "spend" in d:
        return [(parse_time(s, now), _opt_time(e, now), float(r)) for s, e, r in d["spend"]]
    if "cost_per_hr" not in d:
        raise ValueError(f"{where}: give 'cost_per_hr' (with since/until) or 'spend'")
    return [(parse_time(d.get("since", "-30d"), now), _opt_time(d.get("until"), now),
             float(d["cost_per_hr"]))]


def _util(raw: Any, now: datetime) -> list[tuple[datetime | None, float]]:
    if raw is None:
        return [(None, 90.0)]
    if isinstance(raw, int | float):
        return [(None, float(raw))]
    return sorted(((parse_time(t, now), float(v)) for t, v in raw),
                  key=lambda tv: tv[0] or datetime.min.replace(tzinfo=UTC))


_POD_KEYS = ("image", "container_disk_gb", "volume_gb", "data_center_id", "vcpu_count",
             "memory_gb", "network_volume", "cpu_util", "memory_util")


def _pod(i: int, p: dict[str, Any], now: datetime) -> PodSpec:
    if "id" not in p or "cost_per_hr" not in p:
        raise ValueError(f"pods[{i}]: 'id' and 'cost_per_hr' are required")
    return PodSpec(
        id=str(p["id"]),
        cost_per_hr=float(p["cost_per_hr"]),
        name=str(p.get("name", p["id"])),
        gpu_type=p.get("gpu_type"),
        gpu_count=int(p.get("gpu_count", 1 if p.get("gpu_type") else 0)),
        gpu_display_name=p.get("gpu_display_name"),
        running=_intervals(p.get("running"), now),
        status=p.get("status"),
        locked=bool(p.get("locked", False)),
        gpu_util=_util(p.get("util", p.get("gpu_util")), now),
        stopped_cost_per_hr=float(p.get("stopped_cost_per_hr", 0.0)),
        created_at=_opt_time(p.get("created"), now),
        terminated_at=_opt_time(p.get("terminated"), now),
        **{k: p[k] for k in _POD_KEYS if k in p},
    )


def _volume(v: dict[str, Any], now: datetime) -> VolumeSpec:
    return VolumeSpec(
        id=str(v["id"]), cost_per_hr=float(v["cost_per_hr"]),
        since=parse_time(v.get("since", "-30d"), now), name=str(v.get("name", v["id"])),
        size_gb=int(v.get("size_gb", 100)), type=str(v.get("type", "STANDARD")),
        data_center_id=str(v.get("data_center_id", "EU-RO-1")),
        until=_opt_time(v.get("until"), now),
    )


def _serverless(i: int, e: dict[str, Any], now: datetime) -> ServerlessSpec:
    if "id" not in e:
        raise ValueError(f"serverless[{i}]: 'id' is required")
    return ServerlessSpec(
        id=str(e["id"]), name=str(e.get("name", e["id"])),
        spend=_spend(e, now, f"serverless[{i}]"),
        gpu_type=e.get("gpu_type", "NVIDIA L4"), gpu_pool=str(e.get("gpu_pool", "ADA_24")),
        workers_max=int(e.get("workers_max", 3)),
        data_center_id=str(e.get("data_center_id", "EU-RO-1")),
        created_at=_opt_time(e.get("created"), now),
    )


def _cluster(i: int, c: dict[str, Any], now: datetime) -> ClusterSpec:
    if "id" not in c or "cost_per_hr" not in c:
        raise ValueError(f"clusters[{i}]: 'id' and 'cost_per_hr' are required")
    return ClusterSpec(
        id=str(c["id"]), name=str(c.get("name", c["id"])), cost_per_hr=float(c["cost_per_hr"]),
        running=_intervals(c.get("running"), now),
        gpu_type=str(c.get("gpu_type", "NVIDIA H100 80GB HBM3")),
        nodes=int(c.get("nodes", 2)), gpus_per_node=int(c.get("gpus_per_node", 8)),
    )


def _rate_limit(raw: Any) -> dict[str, int] | None:
    if raw is None:
        return dict(DEFAULT_RATE_LIMIT)
    if raw in ("off", False):
        return None
    bad = set(raw) - set(DEFAULT_RATE_LIMIT)
    if bad:
        raise ValueError(f"rate_limit: unknown windows {sorted(bad)}; use minute, hour, day")
    return {k: int(v) for k, v in raw.items()}


@dataclass
class Scenario:
    """Everything one simulated account holds; ``loaded_at`` anchors the balance."""

    pods: list[PodSpec] = field(default_factory=list)
    volumes: list[VolumeSpec] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    serverless: list[ServerlessSpec] = field(default_factory=list)
    clusters: list[ClusterSpec] = field(default_factory=list)
    public_endpoints: list[Segment] = field(default_factory=list)
    balance: BalanceSpec = field(default_factory=BalanceSpec)
    rate_limit: dict[str, int] | None = field(default_factory=lambda: dict(DEFAULT_RATE_LIMIT))
    retired: list[str] = field(default_factory=list)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_dict(cls, data: dict[str, Any], now: datetime | None = None) -> Scenario:
        """Build from the file shape above; relative times resolve against ``now``."""
        now = now or datetime.now(UTC)
        pods = [_pod(i, p, now) for i, p in enumerate(data.get("pods") or [])]
        volumes = [_volume(v, now) for v in data.get("volumes") or []]
        serverless = [_serverless(i, e, now) for i, e in enumerate(data.get("serverless") or [])]
        public: list[Segment] = []
        for i, pe in enumerate(data.get("public_endpoints") or []):
            public += _spend(pe, now, f"public_endpoints[{i}]")
        gen = data.get("generate")
        if gen:
            if gen.get("kind") != "month":
                raise ValueError(f"unknown generator {gen.get('kind')!r}")
            days, seed = int(gen.get("days", 31)), int(gen.get("seed", 0))
            pods += month_pods(now, pods=int(gen.get("pods", 20)), days=days, seed=seed)
            serverless += month_serverless(now, int(gen.get("serverless", 0)), days, seed)
            volumes += month_volumes(now, int(gen.get("volumes", 0)), days, seed)
        bal = data.get("balance") or {}
        return cls(
            pods=pods, volumes=volumes, faults=list(data.get("faults") or []),
            serverless=serverless,
            clusters=[_cluster(i, c, now) for i, c in enumerate(data.get("clusters") or [])],
            public_endpoints=public,
            balance=BalanceSpec(start=float(bal.get("start", 1000.0)),
                                spend_limit=float(bal.get("spend_limit", 80.0)),
                                stop_at_zero=bool(bal.get("stop_at_zero", False))),
            rate_limit=_rate_limit(data.get("rate_limit")),
            retired=[str(r) for r in data.get("retired") or []],
            loaded_at=now,
        )

    @classmethod
    def load(cls, path: str | Path, now: datetime | None = None) -> Scenario:
        """Load a ``.yaml``/``.yml``/``.json`` file."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        return cls.from_dict(_parse_text(text, json_=p.suffix == ".json"), now)

    @classmethod
    def builtin(cls, name: str, now: datetime | None = None) -> Scenario:
        """A scenario shipped with the package: ``demo`` or ``month``."""
        if name not in BUILTIN:
            raise ValueError(f"unknown built-in scenario {name!r}; choose from {BUILTIN}")
        text = resources.files("daemon.simulator").joinpath(f"{name}.yaml").read_text("utf-8")
        return cls.from_dict(_parse_text(text, json_=False), now)

    @classmethod
    def resolve(cls, spec: Scenario | str | Path | dict[str, Any], now: datetime) -> Scenario:
        """A Scenario from an instance, a dict, a built-in name or a file path."""
        if isinstance(spec, Scenario):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec, now)
        if isinstance(spec, str) and spec in BUILTIN:
            return cls.builtin(spec, now)
        return cls.load(spec, now)

    def public_endpoints_segs(self) -> list[Seg]:
        return to_segs(self.public_endpoints)

    def all_pods(self) -> list[PodSpec]:
        """Standalone pods plus the member pods of every cluster."""
        return self.pods + [p for c in self.clusters for p in c.member_pods()]


def _parse_text(text: str, *, json_: bool) -> dict[str, Any]:
    if json_:
        data = json.loads(text)
    else:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(text)
    if not isinstance(data, dict):
        raise ValueError("a scenario must be a mapping with 'pods', 'volumes', 'faults'")
    return data
