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

from collections.abc import Iterable, Iterator
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

_POD_PART = {"gpuAmount": "podGpuAmount", "cpuAmount": "podCpuAmount"}

Rec = dict[str, Any]


def _r(x: float) -> float:
    return round(x, DECIMALS)


def _split(total: float, shares: dict[str, float], rest: str) -> dict[str, float]:
    parts = {k: _r(total * v) for k, v in shares.items()}
    parts[rest] = _r(total - sum(parts.values()))
    return parts


def _by_id(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda x: x.id)


def _pod_spend(sc: Scenario, cs: list[float], now: float, rid: str | None
               ) -> Iterator[tuple[int, str, float, float, str]]:
    """(bucket index, pod id, total, disk part, the other part's field) per pod
    with spend in a bucket, pods in id order: the hot path of big accounts."""
    for pod in _by_id(sc.pods):  # cluster members bill through /billing/clusters
        if rid is not None and pod.id != rid:
            continue
        run, stopped = pod.meters()
        stop = spread(stopped, cs, now)
        share = pod.disk_cost_per_hr / pod.cost_per_hr if pod.cost_per_hr > 0 else 0.0
        main = "gpuAmount" if pod.gpu_type else "cpuAmount"
        ran = spread(run, cs, now)
        pid = pod.id
        for i in sorted(set(ran) | set(stop)) if stop else ran:
            r_usd = ran[i][0] if i in ran else 0.0
            s_usd = stop[i][0] if i in stop else 0.0
            total = round(r_usd + s_usd, DECIMALS)
            if total > 0:
                yield i, pid, total, min(total, round(r_usd * share + s_usd, DECIMALS)), main


def _pods(sc: Scenario, cs: list[float], isos: list[str], now: float, *, rid: str | None,
          out: list[list[Rec]]) -> None:
    for i, pid, total, disk, main in _pod_spend(sc, cs, now, rid):
        rec = {"startTime": isos[i], "endTime": isos[i + 1], "podId": pid,
               "totalAmount": total, "gpuAmount": 0.0, "cpuAmount": 0.0, "diskAmount": disk}
        rec[main] = round(total - disk, DECIMALS)
        out[i].append(rec)


def _metered(items: Iterable[tuple[str | None, list[Seg], Any]], cs: list[float],
             isos: list[str], now: float, *, id_field: str | None, parts: Any,
             out: list[list[Rec]]) -> None:
    for rid, segs, extra in items:
        for i, (usd, _) in spread(segs, cs, now).items():
            total = _r(usd)
            if total > 0:
                rec: Rec = {"startTime": isos[i], "endTime": isos[i + 1]}
                if id_field is not None:
                    rec[id_field] = rid
                rec["totalAmount"] = total
                rec.update(parts(total, extra))
                out[i].append(rec)


def family_records(sc: Scenario, family: str, cuts: list[datetime], now: datetime,
                   rid: str | None = None) -> list[list[Rec]]:
    """Records of ``family`` per bucket of ``cuts`` (bucket edges), each list in id order."""
    cs, now_s, isos = [t.timestamp() for t in cuts], now.timestamp(), [iso_z(t) for t in cuts]
    out: list[list[Rec]] = [[] for _ in range(max(len(cuts) - 1, 0))]
    id_field = FAMILIES[family][0]
    if family == "pods":
        _pods(sc, cs, isos, now_s, rid=rid, out=out)
    elif family == "serverless":
        _metered(
            ((e.id, e.meter(), e.gpu_type) for e in _by_id(sc.serverless) if rid in (None, e.id)),
            cs, isos, now_s, id_field=id_field,
            parts=lambda t, gpu: {"gpuAmount": 0.0, "cpuAmount": 0.0, **_split(
                t, {"diskAmount": 0.03, "feeAmount": 0.05}, "gpuAmount" if gpu else "cpuAmount")},
            out=out)
    elif family == "network-volumes":
        _metered(
            ((v.id, v.meter(), v.type) for v in _by_id(sc.volumes) if rid in (None, v.id)),
            cs, isos, now_s, id_field=id_field,
            parts=lambda t, kind: {"standardAmount": 0.0 if kind == "HIGH_PERFORMANCE" else t,
                             "highPerformanceAmount": t if kind == "HIGH_PERFORMANCE" else 0.0},
            out=out)
    elif family == "clusters":
        _metered(
            ((c.id, c.meter(), None) for c in _by_id(sc.clusters) if rid in (None, c.id)),
            cs, isos, now_s, id_field=id_field,
            parts=lambda t, _: {"gpuAmount": 0.0, **_split(
                t, {"diskAmount": 0.02, "networkingAmount": 0.03}, "gpuAmount")},
            out=out)
    else:  # public endpoints: one stream, no ids
        _metered([(None, sc.public_endpoints_segs(), None)], cs, isos, now_s, id_field=None,
                 parts=lambda t, _: {}, out=out)
    return out


def _totals(records: list[dict[str, Any]], fields: Iterable[str]) -> dict[str, float]:
    return {f: _r(sum(r[f] for r in records)) for f in ("totalAmount", *fields)}


def family_answer(sc: Scenario, family: str, cuts: list[datetime], now: datetime, *,
                  query: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
    """The full answer of ``GET /v2/billing/{family}`` (``query`` is the echoed window)."""
    id_field, fields = FAMILIES[family]
    records = [r for b in family_records(sc, family, cuts, now, rid) for r in b]
    meta: dict[str, Any] = {"query": query, "recordCount": len(records),
                            "totals": _totals(records, fields)}
    if family in UNIQUE and id_field is not None:
        meta[UNIQUE[family]] = len({r[id_field] for r in records})
    return {"records": records, "metadata": meta}


def account_answer(sc: Scenario, cuts: list[datetime], now: datetime,
                   query: dict[str, Any]) -> dict[str, Any]:
    """``GET /v2/billing``: one record per begun bucket, summed from the families."""
    names = [a for a, _, _ in ACCOUNT]
    sums = [dict.fromkeys(names, 0.0) for _ in range(max(len(cuts) - 1, 0))]
    cs = [t.timestamp() for t in cuts]
    for i, _, total, disk, main in _pod_spend(sc, cs, now.timestamp(), None):
        acc = sums[i]  # the pods' parts without building their records
        acc["podDiskAmount"] += disk
        acc[_POD_PART[main]] += round(total - disk, DECIMALS)
    for fam in FAMILIES:
        if fam == "pods":
            continue
        mine = [(name, part) for name, f, part in ACCOUNT if f == fam]
        for i, bucket in enumerate(family_records(sc, fam, cuts, now)):
            acc = sums[i]
            for rec in bucket:
                for name, part in mine:
                    acc[name] += rec[part]
    records: list[dict[str, Any]] = []
    for i in range(len(cuts) - 1):
        if cuts[i] > now:
            break
        parts = {n: _r(sums[i][n]) for n in names}
        records.append({"startTime": iso_z(cuts[i]), "endTime": iso_z(cuts[i + 1]),
                        "totalAmount": _r(sum(parts.values())), **parts})
    return {"records": records, "metadata": {"query": query, "recordCount": len(records),
                                             "totals": _totals(records, names)}}
