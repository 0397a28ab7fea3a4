"""Scenarios for the RunPod simulator: which pods exist, what they cost, when they ran.

A scenario is plain data (dataclasses). It loads from a dict, a YAML/JSON file or
a built-in name (``demo``, ``month``). Times in a scenario are either absolute
ISO-8601 (``2026-11-24T08:00:00Z``) or relative to the load instant: ``now``,
``-6h``, ``-30d``, ``+15m``, ``-1d2h`` (units ``s m h d w``). Relative times let
the demo look alive whenever it is started.

File shape (every key but ``pods[].id`` and ``pods[].cost_per_hr`` optional)::

    pods:
      - id: pod-h100
        name: runaway-sweep
        gpu_type: NVIDIA H100 80GB HBM3   # omit for a CPU pod
        gpu_count: 1
        cost_per_hr: 1800
        running: [["-2h", null]]          # [start, end] intervals; null end = still running
        status: TERMINATED        # optional; default RUNNING if an interval is open, else EXITED
    volumes:
      - {id: vol-1, name: datasets, size_gb: 500, cost_per_hr: 0.0486, since: -30d}
    faults:                               # see Simulator.fail
      - {path: /v1/billing/pods, status: 503, times: 2}
    generate: {kind: month, pods: 20, days: 31, seed: 7}   # adds generated pods
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

_REL = re.compile(r"^([+-])((?:\d+(?:\.\d+)?[smhdw])+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

BUILTIN = ("demo", "month")


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


@dataclass
class PodSpec:
    """One pod. ``running`` holds [start, end) intervals; ``end=None`` means running now.

    Spend accrues at ``cost_per_hr`` over every running interval and nothing else
    (stopped pods cost nothing in the simulator, unlike RunPod's disk charges).
    """

    id: str
    cost_per_hr: float
    name: str = ""
    gpu_type: str | None = None
    gpu_count: int = 1
    gpu_display_name: str | None = None
    running: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    status: str | None = None  # explicit override (e.g. TERMINATED)
    image: str = "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04"
    container_disk_gb: int = 50
    volume_gb: int = 20
    data_center_id: str = "EU-RO-1"

    @property
    def desired_status(self) -> str:
        if self.status:
            return self.status
        return "RUNNING" if self.running and self.running[-1][1] is None else "EXITED"


@dataclass
class VolumeSpec:
    """A network volume billed at ``cost_per_hr`` from ``since`` on."""

    id: str
    cost_per_hr: float
    since: datetime
    name: str = ""
    size_gb: int = 100


@dataclass
class Scenario:
    """Pods, network volumes and standing faults of one simulated account."""

    pods: list[PodSpec] = field(default_factory=list)
    volumes: list[VolumeSpec] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any], now: datetime | None = None) -> Scenario:
        """Build from the file shape above; relative times resolve against ``now``."""
        now = now or datetime.now(UTC)
        pods: list[PodSpec] = []
        for i, p in enumerate(data.get("pods") or []):
            if "id" not in p or "cost_per_hr" not in p:
                raise ValueError(f"pods[{i}]: 'id' and 'cost_per_hr' are required")
            running = [
                (parse_time(s, now), None if e is None else parse_time(e, now))
                for s, e in (p.get("running") or [])
            ]
            pods.append(
                PodSpec(
                    id=str(p["id"]),
                    cost_per_hr=float(p["cost_per_hr"]),
                    name=str(p.get("name", p["id"])),
                    gpu_type=p.get("gpu_type"),
                    gpu_count=int(p.get("gpu_count", 1 if p.get("gpu_type") else 0)),
                    gpu_display_name=p.get("gpu_display_name"),
                    running=running,
                    status=p.get("status"),
                    **{k: p[k] for k in ("image", "container_disk_gb", "volume_gb",
                                         "data_center_id") if k in p},
                )
            )
        volumes = [
            VolumeSpec(
                id=str(v["id"]),
                cost_per_hr=float(v["cost_per_hr"]),
                since=parse_time(v.get("since", "-30d"), now),
                name=str(v.get("name", v["id"])),
                size_gb=int(v.get("size_gb", 100)),
            )
            for v in data.get("volumes") or []
        ]
        gen = data.get("generate")
        if gen:
            if gen.get("kind") != "month":
                raise ValueError(f"unknown generator {gen.get('kind')!r}")
            pods += month_pods(
                now, pods=int(gen.get("pods", 20)), days=int(gen.get("days", 31)),
                seed=int(gen.get("seed", 0)),
            )
        return cls(pods=pods, volumes=volumes, faults=list(data.get("faults") or []))

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


def _parse_text(text: str, *, json_: bool) -> dict[str, Any]:
    if json_:
        data = json.loads(text)
    else:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(text)
    if not isinstance(data, dict):
        raise ValueError("a scenario must be a mapping with 'pods', 'volumes', 'faults'")
    return data


_MONTH_GPUS = [
    ("NVIDIA H100 80GB HBM3", 2.99),
    ("NVIDIA A100 80GB PCIe", 1.64),
    ("NVIDIA GeForce RTX 4090", 0.69),
    ("NVIDIA L40S", 0.86),
    ("NVIDIA  RTX A4500", 0.25),
    ("NVIDIA RTX A6000", 0.49),
]


def month_pods(now: datetime, *, pods: int = 20, days: int = 31, seed: int = 0) -> list[PodSpec]:
    """``pods`` pods with ``days`` of deterministic start/stop history up to ``now``.

    Every pod runs in sessions of 1-30 hours separated by 0-24 hour pauses;
    about a third are running at ``now``.
    """
    rng = random.Random(seed)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    out: list[PodSpec] = []
    for i in range(pods):
        gpu, price = _MONTH_GPUS[i % len(_MONTH_GPUS)]
        count = rng.choice([1, 1, 1, 2, 4])
        t = start + timedelta(minutes=rng.randrange(0, 24 * 60))
        intervals: list[tuple[datetime, datetime | None]] = []
        while t < now:
            end = t + timedelta(minutes=rng.randrange(60, 30 * 60))
            if end >= now:
                intervals.append((t, None if rng.random() < 0.6 else now))
                break
            intervals.append((t, end))
            t = end + timedelta(minutes=rng.randrange(0, 24 * 60))
        out.append(
            PodSpec(
                id=f"m{seed:02d}pod{i:04d}",
                name=f"month-{i:04d}",
                cost_per_hr=round(price * count, 4),
                gpu_type=gpu,
                gpu_count=count,
                running=intervals,
            )
        )
    return out
