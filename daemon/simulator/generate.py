"""Generated accounts for benchmarks: ``generate: {kind: month, ...}`` in a scenario.

Deterministic for a given seed: the same seed and ``now`` give the same account.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from daemon.simulator.specs import PodSpec, Segment, ServerlessSpec, VolumeSpec

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
    about a third are running at ``now``; running pods alternate between busy
    and idle GPU utilisation.
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
                gpu_util=[(None, 0.0 if i % 5 == 4 else 70.0 + i % 25)],
            )
        )
    return out


def month_serverless(now: datetime, count: int, days: int, seed: int) -> list[ServerlessSpec]:
    """``count`` serverless endpoints whose hourly spend changes every few hours."""
    rng = random.Random(seed * 7919 + 1)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    out: list[ServerlessSpec] = []
    for i in range(count):
        spend: list[Segment] = []
        t = start
        while t < now:
            end = t + timedelta(hours=rng.randrange(1, 12))
            rate = rng.choice([0.0, 0.0, 0.35, 0.9, 2.4])
            if rate:
                spend.append((t, None if end >= now else end, rate))
            t = end
        out.append(ServerlessSpec(id=f"m{seed:02d}ep{i:04d}", name=f"month-ep-{i:04d}",
                                  spend=spend))
    return out


def month_volumes(now: datetime, count: int, days: int, seed: int) -> list[VolumeSpec]:
    """``count`` network volumes of 50-2000 GB, all existing for the whole month."""
    rng = random.Random(seed * 104729 + 2)
    out: list[VolumeSpec] = []
    for i in range(count):
        size = rng.choice([50, 100, 500, 1000, 2000])
        hp = rng.random() < 0.25
        rate = size * (0.14 if hp else 0.07) / 730
        out.append(VolumeSpec(id=f"m{seed:02d}vol{i:04d}", cost_per_hr=round(rate, 6),
                              since=now - timedelta(days=days), name=f"month-vol-{i:04d}",
                              size_gb=size, type="HIGH_PERFORMANCE" if hp else "STANDARD"))
    return out
