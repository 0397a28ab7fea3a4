"""RunPod REST API v2 (``https://api.runpod.io/v2``) as the :class:`RunPodApi` port.

Field names come from ``openapi-v2-subset.json``. Billing answers are
``{"records": [...], "metadata": {...}}``; records carry ``startTime`` and
``endTime`` (half-open). ``metadata`` is not read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

from pydantic import Field, TypeAdapter
from pydantic.dataclasses import dataclass

from daemon.adapters.runpod.parse import (
    STRICT,
    RecordChecker,
    Time,
    check_all,
    validate,
)
from daemon.adapters.runpod.transport import Adapter, utc_param
from daemon.core.model import BucketLen, Family, Pod, PodStatus, Resource, SpendRecord

DEFAULT_BASE_URL: Final = "https://api.runpod.io/v2"
FAMILIES: Final = frozenset(
    {"account", "pods", "serverless", "storage", "clusters", "public_endpoints"}
)
GONE: Final = (
    "RunPod answered 410 Gone for API v2: check RUNPOD_API_BASE_URL; if RunPod has "
    "retired v2, upgrade runpod-budget"
)

# ------------------------------------------------------------------ wire models
# camelCase attribute names are the wire names: no alias lookups per record


@dataclass(config=STRICT, slots=True)
class _Total:
    startTime: Time
    endTime: Time
    totalAmount: float


@dataclass(config=STRICT, slots=True)
class _Account(_Total):
    podGpuAmount: float
    podCpuAmount: float
    podDiskAmount: float
    serverlessGpuAmount: float
    serverlessCpuAmount: float
    serverlessDiskAmount: float
    serverlessFeeAmount: float
    storageStandardAmount: float
    storageHighPerformanceAmount: float
    endpointAmount: float
    clusterGpuAmount: float
    clusterDiskAmount: float
    clusterNetworkingAmount: float


@dataclass(config=STRICT, slots=True)
class _PodRec(_Total):
    podId: Annotated[str, Field(min_length=1)]


@dataclass(config=STRICT, slots=True)
class _ServerlessRec(_Total):
    serverlessId: Annotated[str, Field(min_length=1)]


@dataclass(config=STRICT, slots=True)
class _VolumeRec(_Total):
    networkVolumeId: Annotated[str, Field(min_length=1)]


@dataclass(config=STRICT, slots=True)
class _ClusterRec(_Total):
    clusterId: Annotated[str, Field(min_length=1)]


def _answer(item: type[Any]) -> TypeAdapter[Any]:
    @dataclass(config=STRICT, slots=True)
    class Answer:
        records: list[item]  # type: ignore[valid-type]

    return TypeAdapter(Answer)


# family -> (path, the record's id attribute or None, answer validator)
_BILLING: Final[dict[str, tuple[str, str | None, TypeAdapter[Any]]]] = {
    "account": ("/billing", None, _answer(_Account)),
    "pods": ("/billing/pods", "podId", _answer(_PodRec)),
    "serverless": ("/billing/serverless", "serverlessId", _answer(_ServerlessRec)),
    "storage": ("/billing/network-volumes", "networkVolumeId", _answer(_VolumeRec)),
    "clusters": ("/billing/clusters", "clusterId", _answer(_ClusterRec)),
    # v2 /billing/endpoints is *public endpoint* spend (v1's was serverless): no ids
    "public_endpoints": ("/billing/endpoints", None, _answer(_Total)),
}

#: account components: family -> the v2 /billing fields that make it up
COMPONENTS: Final[dict[str, tuple[str, ...]]] = {
    "pods": ("podGpuAmount", "podCpuAmount", "podDiskAmount"),
    "serverless": ("serverlessGpuAmount", "serverlessCpuAmount", "serverlessDiskAmount",
                   "serverlessFeeAmount"),
    "storage": ("storageStandardAmount", "storageHighPerformanceAmount"),
    "public_endpoints": ("endpointAmount",),
    "clusters": ("clusterGpuAmount", "clusterDiskAmount", "clusterNetworkingAmount"),
}


@dataclass(config=STRICT, slots=True)
class _Gpu:
    id: str
    count: int = 1


@dataclass(config=STRICT, slots=True)
class _GpuUtil:
    util: float | None = None


@dataclass(config=STRICT, slots=True)
class _Runtime:
    gpus: list[_GpuUtil] | None = None


@dataclass(config=STRICT, slots=True)
class _Pod:
    id: Annotated[str, Field(min_length=1)]
    status: PodStatus
    cost: float
    # required by the schema and needed for stop safety: never defaulted
    locked: bool
    actions: list[str]
    name: str | None = None
    gpu: _Gpu | None = None
    runtime: _Runtime | None = None
    startedAt: Time | None = None


@dataclass(config=STRICT, slots=True)
class _Pods:
    pods: list[_Pod]


@dataclass(config=STRICT, slots=True)
class _Named:
    id: Annotated[str, Field(min_length=1)]
    name: str | None = None


@dataclass(config=STRICT, slots=True)
class _Endpoints:
    endpoints: list[_Named]


@dataclass(config=STRICT, slots=True)
class _Volumes:
    networkVolumes: list[_Named]


_PODS = TypeAdapter(_Pods)
_ENDPOINTS = TypeAdapter(_Endpoints)
_VOLUMES = TypeAdapter(_Volumes)


# ------------------------------------------------------------------ adapter


class RunPodV2(Adapter):
    """RunPod REST v2 behind the version-neutral port. Every method returns
    validated data or raises ``ApiError`` (see :mod:`.transport`)."""

    version = "v2"
    families: frozenset[str] = FAMILIES

    def billing(
        self, family: Family, *, bucket: BucketLen, start: datetime, end: datetime
    ) -> list[SpendRecord]:
        """Spend of ``family`` per resource and bucket with ``start <= bucket < end``.
        ``account`` gives one record per bucket (resource ``total``) whose
        components are the spend per family. Raises ``ApiError`` (``bad_record``
        for a record out of range, duplicated, non-numeric or implausible)."""
        path, id_attr, adapter = _BILLING[family]
        params = [("bucketSize", bucket), ("startTime", utc_param(start)),
                  ("endTime", utc_param(end))]
        checker = RecordChecker(family, bucket, start, end)

        def parse(body: bytearray) -> list[SpendRecord]:
            items: list[Any] = validate(adapter, body, records="records").records
            body.clear()  # the raw bytes are no longer needed: free them before building
            if family == "account":
                return check_all(items, lambda i, r: _account(checker, i, r))

            def build(i: int, r: Any) -> SpendRecord:
                amount = checker.amount(i, "totalAmount", r.totalAmount)
                resource = getattr(r, id_attr) if id_attr else ""
                return checker.record(i, resource, r.startTime, r.endTime, amount)

            return check_all(items, build)

        return self._t.call("GET", path, path, params=params, parse=parse)

    def list_pods(self) -> list[Pod]:
        """``GET /pods``: every pod with status, rate, lock, allowed actions, GPU
        utilisation (None unless running) and start time."""
        answer = self._t.call("GET", "/pods", "/pods",
                              parse=lambda b: validate(_PODS, b, records="pods"))
        return [_pod(p) for p in answer.pods]

    def list_resources(self, family: Literal["serverless", "storage"]) -> list[Resource]:
        """``GET /serverless`` (endpoints) or ``GET /network-volumes`` with names."""
        if family == "serverless":
            eps = self._t.call("GET", "/serverless", "/serverless",
                               parse=lambda b: validate(_ENDPOINTS, b, records="endpoints"))
            items = eps.endpoints
        else:
            vols = self._t.call("GET", "/network-volumes", "/network-volumes",
                                parse=lambda b: validate(_VOLUMES, b, records="networkVolumes"))
            items = vols.networkVolumes
        return [Resource(family, r.id, r.name or "") for r in items]

    def stop_pod(self, pod_id: str) -> None:
        """``POST /pods/{id}/action {"action": "stop"}``. 409 (not valid for the
        pod's status) raises ``ApiError(reason="conflict", permanent=True)``
        without retry; 5xx is retried (stopping is idempotent)."""
        self._t.call("POST", "/pods/{id}/action", f"/pods/{quote(pod_id, safe='')}/action",
                     json={"action": "stop"}, parse=lambda b: None)


def _account(checker: RecordChecker, i: int, r: _Account) -> SpendRecord:
    parts = tuple(
        (fam, sum(checker.amount(i, f, getattr(r, f)) for f in fields))
        for fam, fields in COMPONENTS.items()
    )
    total = checker.amount(i, "totalAmount", r.totalAmount)
    return checker.record(i, "total", r.startTime, r.endTime, total, components=parts)


def _pod(p: _Pod) -> Pod:
    util: tuple[float, ...] | None = None
    if p.runtime is not None and p.runtime.gpus:
        vals = [g.util for g in p.runtime.gpus]
        util = None if any(v is None for v in vals) else tuple(float(v or 0) for v in vals)
    started = (datetime.fromisoformat(p.startedAt.upper().replace("Z", "+00:00")).astimezone(UTC)
               if p.startedAt else None)
    return Pod(
        id=p.id,
        name=p.name or "",
        desired_status=p.status,
        cost_per_hr=p.cost,
        gpu_type=p.gpu.id if p.gpu else None,
        gpu_count=p.gpu.count if p.gpu else 0,
        locked=p.locked,
        can_stop="stop" in p.actions,
        gpu_util=util,
        started_at=started,
    )
