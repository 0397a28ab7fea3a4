"""REST v1 routes under ``/v1`` (RunPod's retiring API; see seed-billing-pods.txt).

``GET /billing/pods``, ``/billing/endpoints`` (serverless spend),
``/billing/networkvolumes`` (all volumes summed), ``GET /pods``,
``GET /pods/{podId}``, ``POST /pods/{podId}/stop``. Errors are
``{"error": ..., "status": ...}``. Cluster member pods and clusters are v2-only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from daemon.simulator import pods as podlib
from daemon.simulator.billing import (
    BUCKETS,
    endpoint_records,
    pod_records,
    volume_records,
)
from daemon.simulator.specs import PodSpec
from daemon.simulator.wire import Answer, Query, Reply, last, one_of, time_param

if TYPE_CHECKING:
    from daemon.simulator.server import Simulator


def _range(q: Query, now: datetime) -> tuple[str, datetime, datetime]:
    size = one_of(q, "bucketSize", BUCKETS, "day")
    end = time_param(q, "endTime") or now
    start = time_param(q, "startTime") or end - timedelta(days=30)
    return size, start, end


def _multi(q: Query, name: str) -> set[str]:
    return {v for raw in q.get(name, []) for v in raw.split(",") if v}


def handle(sim: Simulator, method: str, route: str, q: Query, now: datetime) -> Answer:
    """Answer one authorized v1 request; raises ``Reply`` for errors."""
    sc = sim.scenario
    if method == "GET" and route == "/billing/pods":
        size, start, end = _range(q, now)
        grouping = one_of(q, "grouping", ("podId", "gpuTypeId"), "gpuTypeId")
        pods = sc.pods
        if (pid := last(q, "podId")) is not None:
            pods = [p for p in pods if p.id == pid]
        if (gpu := last(q, "gpuTypeId")) is not None:
            pods = [p for p in pods if p.gpu_type == gpu]  # verbatim, spaces and case count
        return Answer(pod_records(pods, size=size, start=start, end=end, grouping=grouping,
                                  now=now), range_end=end)
    if method == "GET" and route == "/billing/endpoints":
        size, start, end = _range(q, now)
        grouping = one_of(q, "grouping", ("endpointId", "podId", "gpuTypeId"), "endpointId")
        eps = sc.serverless
        if (eid := last(q, "endpointId")) is not None:
            eps = [e for e in eps if e.id == eid]
        if gpus := _multi(q, "gpuTypeId"):
            eps = [e for e in eps if e.gpu_type in gpus]
        if dcs := _multi(q, "dataCenterId"):
            eps = [e for e in eps if e.data_center_id in dcs]
        return Answer(endpoint_records(eps, size=size, start=start, end=end,
                                       grouping=grouping, now=now), range_end=end)
    if method == "GET" and route == "/billing/networkvolumes":
        size, start, end = _range(q, now)
        return Answer(volume_records(sc.volumes, size=size, start=start, end=end, now=now),
                      range_end=end)
    if method == "GET" and route == "/pods":
        machine = last(q, "includeMachine") == "true"
        return Answer(sim.pod_bodies.v1(_filter_pods(sc.pods, q), machine))
    parts = route.split("/")
    if len(parts) >= 3 and parts[1] == "pods":
        try:
            pod = sim.pod(parts[2])
        except KeyError:
            raise Reply(404, "pod not found") from None
        if pod.cluster_id is not None:
            raise Reply(404, "pod not found")
        if method == "GET" and len(parts) == 3:
            return Answer(podlib.v1_json(pod, last(q, "includeMachine") == "true"))
        if method == "POST" and parts[3:] == ["stop"]:
            if pod.locked:
                raise Reply(409, f"pod {pod.id} is locked and cannot be stopped")
            return Answer(podlib.v1_json(sim.stop_pod(pod.id), False))
    raise Reply(404, f"no route {method} /v1{route}")


def _filter_pods(pods: list[PodSpec], q: Query) -> list[PodSpec]:
    out = list(pods)
    if (v := last(q, "id")) is not None:
        out = [p for p in out if p.id == v]
    if (v := last(q, "name")) is not None:
        out = [p for p in out if p.name == v]
    if (v := last(q, "desiredStatus")) is not None:
        out = [p for p in out if p.desired_status == v]
    if (v := last(q, "computeType")) is not None:
        out = [p for p in out if (p.gpu_type is not None) == (v == "GPU")]
    if (v := last(q, "imageName")) is not None:
        out = [p for p in out if p.image == v]
    if gpus := _multi(q, "gpuTypeId"):
        out = [p for p in out if p.gpu_type in gpus]
    if dcs := _multi(q, "dataCenterId"):
        out = [p for p in out if p.data_center_id in dcs]
    return out
