"""Billing arithmetic of the simulator: buckets, spend per bucket, REST v1 records.

Semantics (the simulator's documented answer to what RunPod leaves unsaid):

- Buckets are aligned in UTC: hour, day, ISO week (Monday 00:00), month, year.
- Spend in a bucket = rate x seconds of a resource's meter segments inside the
  bucket, never past "now": the current bucket is partial and grows with the clock.
- v1: a record's ``time`` is its bucket start; a request covers every bucket whose
  *start* lies in ``[startTime, endTime)`` (defaults: ``endTime`` = now,
  ``startTime`` = ``endTime`` - 30 days). v2 windows are in :mod:`.billing_v2`.
- Amounts are summed per (bucket, group), then rounded to 6 decimal places;
  groups with zero spend in a bucket produce no record.

Speed: meters are sorted epoch-second segments cached per resource and bucket
edges are epoch seconds, so one resource costs a bisect plus one step per bucket
it actually spent in (thousands of pods answer in well under a second).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.simulator.specs import PodSpec, Seg, ServerlessSpec, VolumeSpec

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


def ceil_bucket(t: datetime, size: str) -> datetime:
    """``t`` if it is a bucket boundary, else the start of the next bucket."""
    b = floor_bucket(t, size)
    return b if b == t else next_bucket(b, size)


def iso_z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def edges(first: datetime, stop: datetime, size: str, limit: int = 200_000) -> list[datetime]:
    """Bucket starts ``first <= b < stop`` (``first`` aligned) plus the end of the last one.

    Empty when no bucket starts in the range. Raises ValueError past ``limit`` buckets.
    """
    out: list[datetime] = []
    b = first
    while b < stop:
        out.append(b)
        if len(out) > limit:
            raise ValueError(f"more than {limit} buckets")
        b = next_bucket(b, size)
    if out:
        out.append(b)
    return out


def spread(segs: Sequence[Seg], cuts: Sequence[float], now: float) -> dict[int, list[float]]:
    """``{bucket index: [USD, seconds with a non-zero rate]}`` of ``segs`` over the
    buckets ``[cuts[i], cuts[i+1])``, clipped at ``now``. ``segs`` are sorted and
    do not overlap. This is the hot loop of every billing answer: kept flat."""
    out: dict[int, list[float]] = {}
    if len(cuts) < 2 or not segs:
        return out
    lo, hi = cuts[0], min(cuts[-1], now)
    # segments are disjoint and sorted, so the first that can reach ``lo`` is
    # the last one starting at or before it: a month of history is skipped
    # with one bisect instead of one step per session
    first = max(bisect_right(segs, (lo, math.inf, math.inf)) - 1, 0)
    for k in range(first, len(segs)):
        s, e, rate = segs[k]
        if e <= lo:
            continue
        if s >= hi:
            break
        a = s if s > lo else lo
        b = e if e < hi else hi
        if b <= a:
            continue
        i = bisect_right(cuts, a) - 1
        per_s = rate / 3600.0
        while a < b:
            nxt = cuts[i + 1]
            cut = b if b < nxt else nxt
            d = cut - a
            acc = out.get(i)
            if acc is None:
                out[i] = [per_s * d, d if rate else 0.0]
            else:
                acc[0] += per_s * d
                if rate:
                    acc[1] += d
            a = cut
            i += 1
    return out


def accrued(segs: Iterable[Seg], a: float, b: float) -> float:
    """USD billed by ``segs`` in ``[a, b)``."""
    return sum(r * (min(e, b) - max(s, a)) / 3600.0 for s, e, r in segs if s < b and e > a)


def v1_cuts(start: datetime, end: datetime, size: str) -> list[datetime]:
    """v1: the buckets whose start lies in ``[start, end)``."""
    return edges(ceil_bucket(start, size), end, size)


def _secs(ts: Sequence[datetime]) -> list[float]:
    return [t.timestamp() for t in ts]


def pod_records(
    pods: Iterable[PodSpec],
    *,
    size: str,
    start: datetime,
    end: datetime,
    grouping: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """``GET /v1/billing/pods`` records (already filtered pods), sorted by time then group."""
    cuts = v1_cuts(start, end, size)
    cs, now_s, isos = _secs(cuts), now.timestamp(), [iso_z(t) for t in cuts]
    amounts: dict[tuple[int, str | None], float] = defaultdict(float)
    millis: dict[tuple[int, str | None], float] = defaultdict(float)
    disks: dict[tuple[int, str | None], int] = defaultdict(int)
    for pod in pods:
        key = pod.id if grouping == "podId" else pod.gpu_type
        run, stopped = pod.meters()
        billed = spread(run, cs, now_s)
        for i, (usd, _) in spread(stopped, cs, now_s).items():
            billed.setdefault(i, [0.0, 0.0])[0] += usd
        for i, (usd, secs) in billed.items():
            amounts[(i, key)] += usd
            millis[(i, key)] += secs * 1000.0
            disks[(i, key)] += pod.disk_gb  # disk is billed per pod, once a bucket
    out: list[dict[str, Any]] = []
    for i, key in sorted(amounts, key=lambda k: (k[0], k[1] or "")):
        amount = round(amounts[(i, key)], DECIMALS)
        if amount <= 0:
            continue
        rec: dict[str, Any] = {"amount": amount, "time": isos[i]}
        if key is not None:  # a CPU pod has no GPU type to group by
            rec[grouping] = key
        rec["timeBilledMs"] = round(millis[(i, key)])
        rec["diskSpaceBilledGb"] = disks[(i, key)]
        out.append(rec)
    return out


def volume_records(
    volumes: Iterable[VolumeSpec], *, size: str, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """``GET /v1/billing/networkvolumes`` records: all volumes summed per bucket.

    High-performance volumes count in ``amount`` and also in
    ``highPerformanceStorageAmount`` (fields present only when such a volume bills).
    """
    cuts = v1_cuts(start, end, size)
    cs, now_s, isos = _secs(cuts), now.timestamp(), [iso_z(t) for t in cuts]
    acc: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for v in volumes:
        hp = v.type == "HIGH_PERFORMANCE"
        for i, (usd, _) in spread(v.meter(), cs, now_s).items():
            a = acc[i]
            a[0] += usd
            a[1] += v.size_gb
            if hp:
                a[2] += usd
                a[3] += v.size_gb
    out: list[dict[str, Any]] = []
    for i, (usd, gb, hp_usd, hp_gb) in sorted(acc.items()):
        if round(usd, DECIMALS) <= 0:
            continue
        rec: dict[str, Any] = {"amount": round(usd, DECIMALS), "time": isos[i],
                               "diskSpaceBilledGb": int(gb)}
        if hp_gb:
            rec["highPerformanceStorageAmount"] = round(hp_usd, DECIMALS)
            rec["highPerformanceStorageDiskSpaceBilledGb"] = int(hp_gb)
        out.append(rec)
    return out


def endpoint_records(
    endpoints: Iterable[ServerlessSpec], *, size: str, start: datetime, end: datetime,
    grouping: str, now: datetime,
) -> list[dict[str, Any]]:
    """``GET /v1/billing/endpoints``: serverless spend grouped by ``endpointId`` or
    ``gpuTypeId``. ``podId`` grouping gives ``[]``: serverless workers are no pods
    of the user's (the simulator's choice; RunPod does not document it)."""
    if grouping == "podId":
        return []
    cuts = v1_cuts(start, end, size)
    cs, now_s, isos = _secs(cuts), now.timestamp(), [iso_z(t) for t in cuts]
    amounts: dict[tuple[int, str | None], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for ep in endpoints:
        key = ep.id if grouping == "endpointId" else ep.gpu_type
        for i, (usd, secs) in spread(ep.meter(), cs, now_s).items():
            a = amounts[(i, key)]
            a[0] += usd
            a[1] += secs
    out: list[dict[str, Any]] = []
    for (i, key), (usd, secs) in sorted(amounts.items(), key=lambda kv: (kv[0][0],
                                                                         kv[0][1] or "")):
        if round(usd, DECIMALS) <= 0:
            continue
        rec: dict[str, Any] = {"amount": round(usd, DECIMALS), "time": isos[i]}
        if key is not None:
            rec[grouping] = key
        rec["timeBilledMs"] = round(secs * 1000)
        out.append(rec)
    return out
