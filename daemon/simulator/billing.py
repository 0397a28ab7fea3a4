"""Billing arithmetic of the simulator: bucket alignment and spend per bucket.

Semantics (the simulator's documented answer to what RunPod leaves unsaid):

- Buckets are aligned in UTC: hour, day, ISO week (Monday 00:00), month, year.
  A record's ``time`` is its bucket start, ``2026-11-24T00:00:00Z``.
- A request covers every bucket whose *start* lies in ``[startTime, endTime)``.
  Defaults: ``endTime`` = now, ``startTime`` = ``endTime`` - 30 days.
- Spend in a bucket = ``cost_per_hr`` x hours of running-interval overlap with the
  bucket, never past "now": the current bucket is partial and grows with the clock.
- Amounts are summed per (bucket, group) and then rounded to 6 decimal places;
  groups with zero spend in a bucket produce no record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.simulator.scenario import PodSpec, VolumeSpec

BUCKETS = ("hour", "day", "week", "month", "year")
DECIMALS = 6


def floor_bucket(t: datetime, size: str) -> datetime:
    """Start of the UTC bucket of ``size`` containing ``t``."""
    t = t.astimezone(UTC)
    if size == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    if size == "year":
        return day.replace(month=1, day=1)
    raise ValueError(f"bad bucket size {size!r}")


def next_bucket(start: datetime, size: str) -> datetime:
    """Start of the bucket after the one starting at ``start``."""
    if size == "hour":
        return start + timedelta(hours=1)
    if size == "day":
        return start + timedelta(days=1)
    if size == "week":
        return start + timedelta(days=7)
    if size == "month":
        y, m = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start.replace(year=y, month=m)
    return start.replace(year=start.year + 1)


def iso_z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _overlaps(
    intervals: Iterable[tuple[datetime, datetime | None]],
    lo: datetime,
    hi: datetime,
    size: str,
    now: datetime,
) -> Iterable[tuple[datetime, float]]:
    """(bucket start, seconds running) for buckets starting in [lo, hi)."""
    for s, e in intervals:
        end = min(now if e is None else e, now)
        if end <= s:
            continue
        b = floor_bucket(s, size)
        while b < end:
            nb = next_bucket(b, size)
            if lo <= b < hi:
                secs = (min(end, nb) - max(s, b)).total_seconds()
                if secs > 0:
                    yield b, secs
            elif b >= hi:
                break
            b = nb


def pod_records(
    pods: Iterable[PodSpec],
    *,
    size: str,
    start: datetime,
    end: datetime,
    grouping: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """``GET /billing/pods`` records (already filtered pods), sorted by time then group."""
    amounts: dict[tuple[datetime, str | None], float] = defaultdict(float)
    millis: dict[tuple[datetime, str | None], float] = defaultdict(float)
    disks: dict[tuple[datetime, str | None], dict[str, int]] = defaultdict(dict)
    for pod in pods:
        key = pod.id if grouping == "podId" else pod.gpu_type
        for b, secs in _overlaps(pod.running, start, end, size, now):
            amounts[(b, key)] += pod.cost_per_hr * secs / 3600.0
            millis[(b, key)] += secs * 1000.0
            # disk is billed per pod, not per interval: count each pod once a bucket
            disks[(b, key)][pod.id] = pod.container_disk_gb + pod.volume_gb
    out: list[dict[str, Any]] = []
    for b, key in sorted(amounts, key=lambda k: (k[0], k[1] or "")):
        amount = round(amounts[(b, key)], DECIMALS)
        if amount <= 0:
            continue
        rec: dict[str, Any] = {"amount": amount, "time": iso_z(b)}
        if key is not None:  # a CPU pod has no GPU type to group by
            rec[grouping] = key
        rec["timeBilledMs"] = round(millis[(b, key)])
        rec["diskSpaceBilledGb"] = sum(disks[(b, key)].values())
        out.append(rec)
    return out


def volume_records(
    volumes: Iterable[VolumeSpec], *, size: str, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """``GET /billing/networkvolumes`` records: all volumes summed per bucket."""
    acc: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for v in volumes:
        for b, secs in _overlaps([(v.since, None)], start, end, size, now):
            acc[b][0] += v.cost_per_hr * secs / 3600.0
            acc[b][1] += v.size_gb
    return [
        {"amount": round(a, DECIMALS), "time": iso_z(b), "diskSpaceBilledGb": int(gb)}
        for b, (a, gb) in sorted(acc.items())
        if round(a, DECIMALS) > 0
    ]
