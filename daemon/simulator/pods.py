"""Pods as v1 and v2 JSON, and the v2 pod state machine (``POST /pods/{id}/action``).

v2 rules (RunPod's schema): ``RUNNING`` allows stop/restart/terminate; ``EXITED``
and ``ERROR`` allow start/terminate; ``PROVISIONING`` and ``STARTING`` allow
stop/terminate; ``TERMINATED`` nothing. Simulator choices where RunPod is
silent: a ``locked`` pod ("prevents stopping or resetting") also loses
``restart`` and ``terminate`` (so every refusal is a 409 against ``actions``,
``start`` stays allowed); cluster member pods have no actions at all (they are
managed through the cluster); a terminated pod no longer exists for v2
(``GET /v2/pods`` leaves it out, ``GET /v2/pods/{id}`` is 404).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from pydantic_core import to_json

from daemon.simulator.billing import iso_z
from daemon.simulator.specs import PodSpec

ACTIONS: dict[str, tuple[str, ...]] = {
    "RUNNING": ("stop", "restart", "terminate"),
    "EXITED": ("start", "terminate"),
    "ERROR": ("start", "terminate"),
    "PROVISIONING": ("stop", "terminate"),
    "STARTING": ("stop", "terminate"),
    "TERMINATED": (),
}
LOCKED_REFUSES = ("stop", "restart", "terminate")
_BILLING = ("RUNNING", "PROVISIONING", "STARTING")


def actions(pod: PodSpec) -> list[str]:
    """The v2 ``actions`` of ``pod`` now."""
    if pod.cluster_id is not None:
        return []
    allowed = ACTIONS.get(pod.desired_status, ())
    if pod.locked:
        allowed = tuple(a for a in allowed if a not in LOCKED_REFUSES)
    return list(allowed)


def refusal(pod: PodSpec, action: str) -> str | None:
    """Why ``action`` is refused for ``pod`` now (the 409 ``detail``), or None."""
    if action in actions(pod):
        return None
    if pod.cluster_id is not None:
        return f"pod {pod.id} is a member of cluster {pod.cluster_id}; manage it there"
    if pod.locked and action in LOCKED_REFUSES:
        return f"pod {pod.id} is locked; {action} is not allowed"
    return f"action {action!r} is not valid for a pod in status {pod.desired_status}"


def stop(pod: PodSpec, now: datetime) -> None:
    """Accrual halts at ``now``; the pod is EXITED (a TERMINATED pod stays so)."""
    if pod.is_running:
        pod.running[-1] = (pod.running[-1][0], now)
    if pod.status != "TERMINATED":
        pod.status = None


def start(pod: PodSpec, now: datetime) -> None:
    """Accrual resumes at ``now``; a new run starts."""
    if not pod.is_running:
        pod.running.append((now, None))
    pod.status = None


def apply(pod: PodSpec, action: str, now: datetime) -> None:
    """Perform a v2 action already checked with :func:`refusal`."""
    if action == "start":
        start(pod, now)
    elif action == "stop":
        stop(pod, now)
    elif action == "restart":  # billing continues; the run (startedAt, uptime) restarts
        stop(pod, now)
        start(pod, now)
    elif action == "terminate":
        stop(pod, now)
        pod.status = "TERMINATED"
        pod.terminated_at = now


def _display(gpu: str) -> str:
    for prefix in ("NVIDIA GeForce ", "NVIDIA "):
        if gpu.startswith(prefix):
            return gpu[len(prefix):].strip()
    return gpu


def v1_json(p: PodSpec, include_machine: bool) -> dict[str, Any]:
    """A pod as REST v1 ``GET /pods`` shows it."""
    started = p.started_at
    last = p.running[-1][0] if p.running else None
    doc: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "desiredStatus": p.desired_status,
        "costPerHr": p.cost_per_hr,
        "adjustedCostPerHr": p.cost_per_hr,
        "image": p.image,
        "containerDiskInGb": p.container_disk_gb,
        "volumeInGb": p.volume_gb,
        "volumeMountPath": "/workspace",
        "interruptible": False,
        "locked": p.locked,
        "machineId": f"m-{p.id[:8]}",
        "memoryInGb": p.memory_gb,
        "vcpuCount": p.vcpu_count,
        "ports": ["8888/http", "22/tcp"],
        "portMappings": {"22": 10341} if started else None,
        "publicIp": "100.65.0.119" if started else None,
        "env": {},
        "consumerUserId": "user_simulated",
        "lastStartedAt": iso_z(last).replace("Z", ".000Z") if last else "",
        "lastStatusChange": f"{p.desired_status.lower()} by simulator",
    }
    if p.gpu_type is not None:
        doc["gpu"] = {"id": p.gpu_type, "count": p.gpu_count,
                      "displayName": p.gpu_display_name or _display(p.gpu_type)}
    else:
        doc["cpuFlavorId"] = "cpu3c"
    if include_machine:
        doc["machine"] = {"gpuTypeId": p.gpu_type or "", "dataCenterId": p.data_center_id,
                          "secureCloud": True}
    return doc


def _runtime(p: PodSpec, now: datetime) -> dict[str, Any] | None:
    started = p.started_at
    if p.desired_status != "RUNNING" or started is None:
        return None
    util = max(0, min(100, round(p.util_at(now))))
    mem = min(100, round(util * 0.8 + 5))
    return {
        "uptime": max(0, int((now - started).total_seconds())),
        "gpus": [{"util": util, "memoryUtil": mem} for _ in range(p.gpu_count if p.gpu_type
                                                                 else 0)],
        "cpu": {"util": p.cpu_util},
        "memory": {"util": p.memory_util},
        "ports": [{"private": 22, "public": 10341, "type": "tcp", "ip": "100.65.0.119"},
                  {"private": 8888, "public": None, "type": "http", "ip": None}],
    }


def _ssh(p: PodSpec, running: bool) -> dict[str, Any]:
    user = f"{p.id}-64411eb2"
    direct = ({"host": "100.65.0.119", "port": 10341, "username": "root",
               "command": "ssh root@100.65.0.119 -p 10341"} if running else None)
    return {"proxy": {"host": "ssh.runpod.io", "port": 22, "username": user,
                      "command": f"ssh {user}@ssh.runpod.io"}, "direct": direct}


def v2_json(p: PodSpec, now: datetime, fallback_created: datetime) -> dict[str, Any]:
    """A pod as REST v2 ``GET /pods/{id}`` shows it (every required field)."""
    head, tail = _v2_parts(p, fallback_created)
    return {**head, "runtime": _runtime(p, now), **tail,
            "createdAt": iso_z(min(tail["createdAt"], now))}


def _v2_parts(p: PodSpec, fallback_created: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of a v2 pod before ``runtime`` and after it (``createdAt`` as
    a datetime): everything that does not change with the clock."""
    status = p.desired_status
    if p.network_volume:
        mounts: dict[str, Any] = {"network": [{"volumeId": p.network_volume,
                                               "path": "/workspace"}]}
    elif p.volume_gb >= 10:
        mounts = {"persistent": {"size": p.volume_gb, "path": "/workspace"}}
    else:
        mounts = {}
    head: dict[str, Any] = {
        "id": p.id, "name": p.name, "image": p.image, "args": "",
        "disk": max(1, p.container_disk_gb), "ports": ["8888/http", "22/tcp"], "env": {},
        "registry": None, "status": status, "actions": actions(p), "mounts": mounts,
    }
    if p.gpu_type is not None:
        head["gpu"] = {"id": p.gpu_type, "count": max(1, p.gpu_count)}
    else:
        head["cpu"] = {"id": "cpu3c", "vcpuCount": p.vcpu_count, "memory": p.memory_gb}
    head.update({
        "cloud": "SECURE", "dataCenterId": p.data_center_id,
        "cudaVersion": "12.8" if p.gpu_type else None,
        "ssh": _ssh(p, status == "RUNNING" and p.started_at is not None), "template": None,
        "cost": p.cost_per_hr if status in _BILLING else 0.0,
        "locked": p.locked, "globalNetworking": {"enabled": False},
    })
    tail: dict[str, Any] = {
        "createdAt": p.created or fallback_created,
        "startedAt": iso_z(p.started_at) if p.started_at and status == "RUNNING" else None,
    }
    if p.cluster_id is not None:
        tail["cluster"] = {"id": p.cluster_id, "rank": p.cluster_rank}
    return head, tail


# --------------------------------------------------------------------- list bodies
# GET /pods of thousands of pods: each pod's JSON is kept, in pieces around what
# the clock changes (v2 ``runtime``), until any field of the pod changes.

_FIELDS = [f for f in fields(PodSpec) if not f.name.startswith("_")]
_SCALARS = attrgetter(*(f.name for f in _FIELDS if not str(f.type).startswith("list")))
_LISTS = attrgetter(*(f.name for f in _FIELDS if str(f.type).startswith("list")))


def _state(p: PodSpec) -> tuple[Any, ...]:
    """Every field of the pod, lists copied (they are edited in place): any
    edit, by an action or a test, gives another key."""
    return _SCALARS(p), tuple(map(tuple, _LISTS(p)))


class PodBodies:
    """Serialized pods for ``GET /pods`` answers, rebuilt per pod only when the
    pod changed; what the clock changes is serialized per answer."""

    def __init__(self) -> None:
        self._v1: dict[tuple[str, bool], tuple[tuple[Any, ...], bytes]] = {}
        self._v2: dict[str, tuple[tuple[Any, ...], datetime, bytes, bytes, bytes]] = {}

    def v1(self, pods: list[PodSpec], include_machine: bool) -> bytes:
        """``json(v1_json(p) for p in pods)``."""
        out = []
        for p in pods:
            key, state = (p.id, include_machine), _state(p)
            hit = self._v1.get(key)
            if hit is None or hit[0] != state:
                hit = self._v1[key] = (state, to_json(v1_json(p, include_machine)))
            out.append(hit[1])
        return b"[" + b",".join(out) + b"]"

    def v2(self, pods: list[PodSpec], now: datetime, fallback_created: datetime) -> bytes:
        """``json({"pods": [v2_json(p, now, fallback_created) for p in pods]})``."""
        out = []
        for p in pods:
            state = (_state(p), fallback_created)
            hit = self._v2.get(p.id)
            if hit is None or hit[0] != state:
                head, tail = _v2_parts(p, fallback_created)
                created = tail.pop("createdAt")
                hit = self._v2[p.id] = (state, created, to_json(head)[:-1] + b',"runtime":',
                                        b',"createdAt":' + to_json(iso_z(created)) + b",",
                                        to_json(tail)[1:])
            _, created, head_b, created_b, tail_b = hit
            if created > now:  # a pod from the future says it was created now
                created_b = b',"createdAt":' + to_json(iso_z(now)) + b","
            out.append(head_b + to_json(_runtime(p, now)) + created_b + tail_b)
        return b'{"pods":[' + b",".join(out) + b"]}"
