"""REST v2 billing answers: ``{"records": [...], "metadata": {...}}`` per family.

Windows (RunPod's documented v2 rules): ``startTime`` is snapped down and
``endTime`` (exclusive, default now) snapped up to bucket boundaries; ``lastN``
is the last N buckets ending with the current one. Records carry their bucket
as ``startTime``/``endTime``, one per resource per bucket with spend (zero
buckets are left out), sorted by time then id. ``GET /billing`` has one record
per bucket that has begun (zeros included), its components being the sums of
the per-resource families' records of that bucket and ``totalAmount`` the sum of
its components.

Component split (the simulator's choice, RunPod does not publish it): a pod's
disk part is its own disk at $0.10/GB/month while running plus any stopped-disk
charge, the rest is GPU (or CPU for CPU pods); serverless = 5 % fee, 3 % disk,
rest GPU/CPU; clusters = 2 % disk, 3 % networking, rest GPU; a network volume
is all standard or all high-performance storage by its type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.simulator.billing import DECIMALS, iso_z, spread
from daemon.simulator.scenario import Scenario
from daemon.simulator.specs import Seg

#: family route -> (id field or None, component fields)
FAMILIES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "pods": ("podId", ("gpuAmount", "cpuAmount", "diskAmount")),
    "serverless": ("serverlessId", ("gpuAmount", "cpuAmount", "diskAmount", "feeAmount")),
    "network-volumes": ("networkVolumeId", ("standardAmount", "highPerformanceAmount")),
    "clusters": ("clusterId", ("gpuAmount", "diskAmount", "networkingAmount")),
    "endpoints": (None, ()),
}
#: metadata count field per family
UNIQUE = {"pods": "uniquePodCount", "serverless": "uniqueServerlessCount",
          "network-volumes": "uniqueNetworkVolumeCount", "clusters": "uniqueClusterCount"}
#: GET /billing component <- (family, family component)
ACCOUNT = (
    ("podGpuAmount", "pods", "gpuAmount"), ("podCpuAmount", "pods", "cpuAmount"),
    ("podDiskAmount", "pods", "diskAmount"),
    ("serverlessGpuAmount", "serverless", "gpuAmount"),
    ("serverlessCpuAmount", "serverless", "cpuAmount"),
    ("serverlessDiskAmount", "serverless", "diskAmount"),
    ("serverlessFeeAmount", "serverless", "feeAmount"),
    ("storageStandardAmount", "network-volumes", "standardAmount"),
    ("storageHighPerformanceAmount", "network-volumes", "highPerformanceAmount"),
    ("endpointAmount", "endpoints", "totalAmount"),
    ("clusterGpuAmount", "clusters", "gpuAmount"), ("clusterDiskAmount", "clusters", "diskAmount"),
    ("clusterNetworkingAmount", "clusters", "networkingAmount"),
)


@dataclass(frozen=True)
class Row:
    """Spend of one resource (``rid``; None for public endpoints) in bucket ``i``."""

    i: int
    rid: str | None
    total: float
    parts: dict[str, float]


def _r(x: float) -> float:
    return round(x, DECIMALS)


def _split(total: float, shares: dict[str, float], rest: str) -> dict[str, float]:
    parts = {k: _r(total * v) for k, v in shares.items()}
    parts[rest] = _r(total - sum(parts.values()))
    return parts


def _pod_rows(sc: Scenario, cs: list[float], now: float, rid: str | None) -> Iterable[Row]:
    for pod in sc.pods:  # cluster members bill through /billing/clusters
        if rid is not None and pod.id != rid:
            continue
        run, stopped = pod.meters()
        stop = spread(stopped, cs, now)
        share = pod.disk_cost_per_hr / pod.cost_per_hr if pod.cost_per_hr > 0 else 0.0
        main = "gpuAmount" if pod.gpu_type else "cpuAmount"
        other = "cpuAmount" if pod.gpu_type else "gpuAmount"
        ran = spread(run, cs, now)
        for i in sorted(set(ran) | set(stop)):
            r_usd, s_usd = ran.get(i, [0.0])[0], stop.get(i, [0.0])[0]
            total = _r(r_usd + s_usd)
            if total <= 0:
                continue
            disk = min(total, _r(r_usd * share + s_usd))
            yield Row(i, pod.id, total, {main: _r(total - disk), other: 0.0, "diskAmount": disk})


def _metered(items: Iterable[tuple[str | None, list[Seg], Any]], cs: list[float], now: float,
             parts: Any) -> Iterable[Row]:
    for rid, segs, extra in items:
        for i, (usd, _) in spread(segs, cs, now).items():
            total = _r(usd)
            if total > 0:
                yield Row(i, rid, total, parts(total, extra))


def family_rows(sc: Scenario, family: str, cs: list[float], now: float,
                rid: str | None = None) -> list[Row]:
    """Rows of ``family`` over the buckets ``cs`` (epoch-second edges), sorted."""
    if family == "pods":
        rows = list(_pod_rows(sc, cs, now, rid))
    elif family == "serverless":
        rows = list(_metered(
            ((e.id, e.meter(), e.gpu_type) for e in sc.serverless if rid in (None, e.id)),
            cs, now,
            lambda t, gpu: {"cpuAmount": 0.0, "gpuAmount": 0.0, **_split(
                t, {"diskAmount": 0.03, "feeAmount": 0.05}, "gpuAmount" if gpu else "cpuAmount")},
        ))
    elif family == "network-volumes":
        rows = list(_metered(
            ((v.id, v.meter(), v.type) for v in sc.volumes if rid in (None, v.id)), cs, now,
            lambda t, kind: {"standardAmount": 0.0 if kind == "HIGH_PERFORMANCE" else t,
                             "highPerformanceAmount": t if kind == "HIGH_PERFORMANCE" else 0.0},
        ))
    elif family == "clusters":
        rows = list(_metered(
            ((c.id, c.meter(), None) for c in sc.clusters if rid in (None, c.id)), cs, now,
            lambda t, _: _split(t, {"diskAmount": 0.02, "networkingAmount": 0.03}, "gpuAmount"),
        ))
    else:  # public endpoints: one stream, no ids
        segs = sorted(sc.public_endpoints_segs())
        rows = list(_metered([(None, segs, None)], cs, now, lambda t, _: {}))
    rows.sort(key=lambda r: (r.i, r.rid or ""))
    return rows


def _record(cuts: list[datetime], row: Row, id_field: str | None,
            fields: tuple[str, ...]) -> dict[str, Any]:
    rec: dict[str, Any] = {"startTime": iso_z(cuts[row.i]), "endTime": iso_z(cuts[row.i + 1])}
    if id_field is not None:
        rec[id_field] = row.rid
    rec["totalAmount"] = row.total
    for f in fields:
        rec[f] = row.parts[f]
    return rec


def _totals(records: list[dict[str, Any]], fields: Iterable[str]) -> dict[str, float]:
    return {f: _r(sum(r[f] for r in records)) for f in ("totalAmount", *fields)}


def family_answer(sc: Scenario, family: str, cuts: list[datetime], now: datetime, *,
                  query: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
    """The full answer of ``GET /v2/billing/{family}`` (``query`` is the echoed window)."""
    id_field, fields = FAMILIES[family]
    rows = family_rows(sc, family, [t.timestamp() for t in cuts], now.timestamp(), rid)
    records = [_record(cuts, r, id_field, fields) for r in rows]
    meta: dict[str, Any] = {"query": query, "recordCount": len(records),
                            "totals": _totals(records, fields)}
    if family in UNIQUE:
        meta[UNIQUE[family]] = len({r.rid for r in rows})
    return {"records": records, "metadata": meta}


def account_answer(sc: Scenario, cuts: list[datetime], now: datetime,
                   query: dict[str, Any]) -> dict[str, Any]:
    """``GET /v2/billing``: one record per begun bucket, summed from the families."""
    cs, now_s = [t.timestamp() for t in cuts], now.timestamp()
    sums: dict[int, dict[str, float]] = {}
    for fam in FAMILIES:
        for row in family_rows(sc, fam, cs, now_s):
            acc = sums.setdefault(row.i, {})
            for name, f, part in ACCOUNT:
                if f == fam:
                    acc[name] = acc.get(name, 0.0) + (row.total if part == "totalAmount"
                                                      else row.parts[part])
    names = [a for a, _, _ in ACCOUNT]
    records: list[dict[str, Any]] = []
    for i in range(len(cuts) - 1):
        if cuts[i] > now:
            break
        parts = {n: _r(sums.get(i, {}).get(n, 0.0)) for n in names}
        records.append({"startTime": iso_z(cuts[i]), "endTime": iso_z(cuts[i + 1]),
                        "totalAmount": _r(sum(parts.values())), **parts})
    return {"records": records, "metadata": {"query": query, "recordCount": len(records),
                                             "totals": _totals(records, names)}}
