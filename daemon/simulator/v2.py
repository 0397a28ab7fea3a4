"""REST v2 routes under ``/v2`` (RunPod's current API; openapi-v2-subset.json).

Billing: ``GET /billing`` and ``/billing/{pods,serverless,network-volumes,
clusters,endpoints}`` (windows and records in :mod:`.billing_v2`). Resources:
``GET /pods`` (``includeClusterPods``), ``/pods/{id}``, ``POST
/pods/{id}/action`` (rules in :mod:`.pods`; ``terminate`` answers 204),
``GET /serverless[/{id}]``, ``/network-volumes[/{id}]``. Errors are RFC 9457
problems; bad parameters are 400, a body that fails the schema 422, ``start``
with a balance at or under $0 is 402 (RunPod: "insufficient balance").
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from daemon.simulator import pods as podlib
from daemon.simulator.billing import BUCKETS, ceil_bucket, edges, floor_bucket, iso_z, next_bucket
from daemon.simulator.billing_v2 import FAMILIES, account_answer, family_answer
from daemon.simulator.specs import PodSpec, ServerlessSpec, VolumeSpec
from daemon.simulator.wire import Answer, Query, Reply, last, time_param

if TYPE_CHECKING:
    from daemon.simulator.server import Simulator

MAX_LAST_N = 100_000
_FILTERS = {"pods": "podId", "serverless": "serverlessId",
            "network-volumes": "networkVolumeId", "clusters": "clusterId"}


def window(q: Query, now: datetime) -> tuple[str, list[datetime], dict[str, Any]]:
    """(bucket size, bucket edges, echoed query) of a billing request; Reply(400) if bad."""
    size = last(q, "bucketSize") or "day"
    if size not in BUCKETS:
        raise Reply(400, f"invalid bucketSize {size!r}",
                    [f"query.bucketSize: must be one of {', '.join(BUCKETS)}"])
    raw_n = last(q, "lastN")
    if raw_n not in (None, ""):
        if any(last(q, k) not in (None, "") for k in ("startTime", "endTime")):
            raise Reply(400, "lastN is mutually exclusive with startTime/endTime",
                        ["query: provide lastN or startTime/endTime, not both"])
        try:
            n = int(raw_n or "")
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_LAST_N:
            raise Reply(400, f"invalid lastN {raw_n!r}",
                        [f"query.lastN: must be an integer from 1 to {MAX_LAST_N}"])
        start = floor_bucket(now, size)
        end = next_bucket(start, size)
        for _ in range(n - 1):
            start = floor_bucket(start - timedelta(seconds=1), size)
    else:
        end = ceil_bucket(time_param(q, "endTime", zone_required=True) or now, size)
        start = floor_bucket(time_param(q, "startTime", zone_required=True)
                             or now - timedelta(days=30), size)
        if start >= end:
            raise Reply(400, "startTime must be before endTime",
                        ["query: startTime must be before endTime"])
    try:
        cuts = edges(start, end, size)
    except ValueError as e:
        raise Reply(400, f"window too large: {e}") from None
    return size, cuts, {"startTime": iso_z(start), "endTime": iso_z(end), "bucketSize": size}


def handle(sim: Simulator, method: str, route: str, q: Query, *, body: bytes,
           now: datetime) -> Answer:
    """Answer one authorized v2 request; raises ``Reply`` for errors."""
    sc = sim.scenario
    parts = route.split("/")[1:]
    if method == "GET" and parts[:1] == ["billing"] and len(parts) <= 2:
        family = parts[1] if len(parts) == 2 else None
        if family is not None and family not in FAMILIES:
            raise Reply(404, f"no route GET /v2{route}")
        _, cuts, echo = window(q, now)
        end = datetime.fromisoformat(echo["endTime"].replace("Z", "+00:00"))
        if family is None:
            return Answer(account_answer(sc, cuts, now, echo), range_end=end)
        rid = None
        if family in _FILTERS:
            rid = last(q, _FILTERS[family]) or None
            echo[_FILTERS[family]] = rid
        return Answer(family_answer(sc, family, cuts, now, query=echo, rid=rid), range_end=end)
    if parts[:1] == ["pods"]:
        return _pods(sim, method, parts[1:], q, body=body, now=now)
    if method == "GET" and parts[:1] == ["serverless"] and len(parts) <= 2:
        eps = [_endpoint(e, sc.loaded_at) for e in sc.serverless
               if len(parts) == 1 or e.id == parts[1]]
        if len(parts) == 1:
            return Answer({"endpoints": eps})
        if not eps:
            raise Reply(404, f"serverless endpoint {parts[1]} not found")
        return Answer(eps[0])
    if method == "GET" and parts[:1] == ["network-volumes"] and len(parts) <= 2:
        vols = [_volume(v) for v in sc.volumes if len(parts) == 1 or v.id == parts[1]]
        if len(parts) == 1:
            return Answer({"networkVolumes": vols})
        if not vols:
            raise Reply(404, f"network volume {parts[1]} not found")
        return Answer(vols[0])
    raise Reply(404, f"no route {method} /v2{route}")


def _pods(sim: Simulator, method: str, rest: list[str], q: Query, *, body: bytes,
          now: datetime) -> Answer:
    sc = sim.scenario
    if method == "GET" and not rest:
        inc = (last(q, "includeClusterPods") or "false").lower()
        if inc not in ("true", "false"):
            raise Reply(400, f"invalid includeClusterPods {inc!r}",
                        ["query.includeClusterPods: must be a boolean"])
        pods = sc.all_pods() if inc == "true" else sc.pods
        return Answer(sim.pod_bodies.v2([p for p in pods if p.desired_status != "TERMINATED"],
                                        now, sc.loaded_at))
    pod = _find(sim, rest[0]) if rest else None
    if pod is None:
        raise Reply(404, f"pod {rest[0] if rest else ''} not found")
    if method == "GET" and len(rest) == 1:
        return Answer(podlib.v2_json(pod, now, sc.loaded_at))
    if method == "POST" and rest[1:] == ["action"]:
        action = _action(body)
        with sim.lock:
            why = podlib.refusal(pod, action)
            if why is not None:
                raise Reply(409, why)
            if action == "start" and sim.balance() <= 0:
                raise Reply(402, "insufficient balance: add funds to start a pod")
            podlib.apply(pod, action, now)
            if action == "terminate":
                return Answer(None, status=204)
            return Answer(podlib.v2_json(pod, now, sc.loaded_at))
    raise Reply(404, f"no route {method} /v2/pods/{'/'.join(rest)}")


def _find(sim: Simulator, pod_id: str) -> PodSpec | None:
    for p in sim.scenario.all_pods():
        if p.id == pod_id and p.desired_status != "TERMINATED":
            return p
    return None


def _action(body: bytes) -> str:
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        raise Reply(400, "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise Reply(422, "Request validation failed.", ["$: expected an object"])
    errors = [f"$: additional properties '{k}' not allowed" for k in doc if k != "action"]
    action = doc.get("action")
    if action is None:
        errors.append("$: missing property 'action'")
    elif action not in podlib.ACTIONS["RUNNING"] + ("start",):
        errors.append("$.action: value must be one of 'start', 'stop', 'restart', 'terminate'")
    if errors:
        raise Reply(422, "Request validation failed.", errors)
    return str(action)


def _endpoint(e: ServerlessSpec, loaded_at: datetime) -> dict[str, Any]:
    base = f"https://api.runpod.ai/v2/{e.id}"
    doc: dict[str, Any] = {
        "id": e.id, "name": e.name, "type": "QUEUE",
        "requestUrls": {"run": f"{base}/run", "runSync": f"{base}/runsync",
                        "status": f"{base}/status/{{job_id}}",
                        "stream": f"{base}/stream/{{job_id}}",
                        "cancel": f"{base}/cancel/{{job_id}}",
                        "retry": f"{base}/retry/{{job_id}}",
                        "purgeQueue": f"{base}/purge-queue", "health": f"{base}/health"},
        "image": "runpod/worker-comfyui:5.1.0-base", "args": "", "disk": 20,
        "ports": ["8000/http"], "env": {}, "registry": None,
    }
    if e.gpu_type is not None:
        doc["gpu"] = {"pools": [e.gpu_pool], "count": 1, "allowedCudaVersions": [],
                      "minCudaVersion": None}
    else:
        doc["cpu"] = [{"id": "cpu3c", "vcpuCount": 4, "memory": 8}]
    doc.update({
        "workers": {"min": 0, "max": e.workers_max, "idleTimeout": 5},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        "dataCenterIds": [e.data_center_id], "networkVolumes": [], "timeout": 300000,
        "flashboot": "OFF", "createdAt": iso_z(e.created or loaded_at),
    })
    return doc


def _volume(v: VolumeSpec) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "size": v.size_gb, "dataCenter": v.data_center_id,
            "type": v.type}
