"""RunPod REST API v1 (``https://rest.runpod.io/v1``) as the :class:`RunPodApi` port.

Field names come from ``openapi-v1-subset.json`` / ``seed-billing-pods.txt``.
v1 billing answers are JSON arrays of ``{"amount", "time", ...}``; a record's
bucket is ``[time, time + bucket)``. v1 has no Instant Cluster or public
endpoint billing, no network volume ids in its billing, and the v1 subset has
no listing of serverless endpoints or network volumes (``list_resources``
returns ``[]``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from daemon.adapters.runpod.parse import (
    BUCKET_DELTA,
    STRICT,
    BadAnswer,
    RecordChecker,
    Time,
    check_all,
    validate,
)
from daemon.adapters.runpod.transport import Adapter, utc_param
from daemon.core.model import TOTAL, BucketLen, Family, Pod, PodStatus, Resource, SpendRecord
from daemon.core.ports import ApiError

DEFAULT_BASE_URL: Final = "https://rest.runpod.io/v1"
FAMILIES: Final = frozenset({"account", "pods", "serverless", "storage"})
GONE: Final = "RunPod has retired API v1 (HTTP 410 Gone): set api.version: v2 in the config"


@dataclass(config=STRICT, slots=True)
class _Rec:
    amount: float
    time: Time
    podId: str | None = None
    endpointId: str | None = None
    gpuTypeId: str | None = None


_RECORDS = TypeAdapter(list[_Rec])

# family -> (path, grouping parameter or None, the record's id attribute or None)
_BILLING: Final[dict[str, tuple[str, str | None, str | None]]] = {
    "pods": ("/billing/pods", "podId", "podId"),
    "serverless": ("/billing/endpoints", "endpointId", "endpointId"),
    "storage": ("/billing/networkvolumes", None, None),  # v1 bills all volumes as one
}
# the account's parts only need a total per bucket: pods grouped by GPU type
# answer in ~20 records a bucket instead of one per pod (2,000 pods: 100x less)
_ACCOUNT_PARTS: Final[dict[str, tuple[str, str | None, str | None]]] = {
    **_BILLING,
    "pods": ("/billing/pods", "gpuTypeId", "gpuTypeId"),
}

# the v1 spec types costPerHr as "currency" with a string example ("0.74"):
# a numeric string is accepted there, and only there
_LAX = ConfigDict(extra="ignore", allow_inf_nan=False)


@dataclass(config=_LAX, slots=True)
class _Gpu:
    id: str | None = None
    count: int | None = None
    displayName: str | None = None


@dataclass(config=_LAX, slots=True)
class _Machine:
    gpuTypeId: str | None = None


@dataclass(config=_LAX, slots=True)
class _Pod:
    id: Annotated[str, Field(min_length=1)]
    desiredStatus: PodStatus
    costPerHr: Annotated[float, Field(ge=0)]
    name: str | None = ""
    gpu: _Gpu | None = None
    machine: _Machine | None = None
    locked: bool = False
    lastStartedAt: str | None = None


_PODS = TypeAdapter(list[_Pod])


class RunPodV1(Adapter):
    """RunPod REST v1 behind the version-neutral port. Every method returns
    validated data or raises ``ApiError`` (see :mod:`.transport`)."""

    version = "v1"
    families: frozenset[str] = FAMILIES

    def billing(
        self, family: Family, *, bucket: BucketLen, start: datetime, end: datetime
    ) -> list[SpendRecord]:
        """Spend of ``family`` per resource and bucket with ``start <= bucket < end``.
        ``account`` sums the three v1 billing calls per bucket (resource ``total``,
        components ``pods``/``serverless``/``storage``). ``clusters`` and
        ``public_endpoints`` raise ``ApiError(reason="client", permanent=True)``."""
        if family not in FAMILIES:
            raise ApiError(f"RunPod API v1 has no {family} billing (use api.version: v2)",
                           permanent=True, reason="client")
        if family == "account":
            return self._account(bucket, start, end)
        return self._family(family, bucket, start, end)

    def _family(
        self,
        family: Family,
        bucket: BucketLen,
        start: datetime,
        end: datetime,
        calls: Mapping[str, tuple[str, str | None, str | None]] = _BILLING,
    ) -> list[SpendRecord]:
        path, grouping, id_attr = calls[family]
        params = [("bucketSize", bucket), ("startTime", utc_param(start)),
                  ("endTime", utc_param(end))]
        if grouping:
            params.append(("grouping", grouping))
        checker = RecordChecker(family, bucket, start, end)

        def build(i: int, r: _Rec) -> SpendRecord:
            resource = getattr(r, id_attr) if id_attr else ""
            if calls is _ACCOUNT_PARTS and resource is None:
                resource = ""  # CPU pods have no GPU type; only the total matters here
            if resource is None or (id_attr and resource == "" and calls is _BILLING):
                # grouped by id, every record must name one: a nameless pod would be stored
                raise BadAnswer("bad_record", f"bad record {i}: field '{id_attr}': missing")
            return checker.record(i, resource, r.time, None, checker.amount(i, "amount",
                                                                            r.amount))

        def parse(body: bytearray) -> list[SpendRecord]:
            items: list[Any] = validate(_RECORDS, body, records=None)
            body.clear()  # free the raw bytes before building the records
            return check_all(items, build)

        return self._t.call("GET", path, path, params=params, parse=parse)

    def _account(self, bucket: BucketLen, start: datetime, end: datetime) -> list[SpendRecord]:
        parts: dict[datetime, dict[str, float]] = defaultdict(dict)
        for fam in ("pods", "serverless", "storage"):
            for rec in self._family(fam, bucket, start, end, _ACCOUNT_PARTS):
                bucket_parts = parts[rec.start]
                bucket_parts[fam] = bucket_parts.get(fam, 0.0) + rec.amount
        out = []
        for t in sorted(parts):
            comp = tuple((fam, parts[t].get(fam, 0.0)) for fam in ("pods", "serverless",
                                                                   "storage"))
            out.append(SpendRecord("account", TOTAL, t, t + BUCKET_DELTA[bucket],
                                   sum(v for _, v in comp), comp))
        return out

    def list_pods(self) -> list[Pod]:
        """``GET /pods``: v1 reports no GPU utilisation and no allowed actions
        (``gpu_util`` None, ``can_stop`` True); ``locked`` and ``lastStartedAt``
        are read when present."""
        pods = self._t.call("GET", "/pods", "/pods",
                            parse=lambda b: validate(_PODS, b, records=None))
        return [_pod(p) for p in pods]

    def list_resources(self, family: Literal["serverless", "storage"]) -> list[Resource]:
        """Always ``[]``: the v1 API subset has no endpoint or volume listing."""
        return []

    def stop_pod(self, pod_id: str) -> None:
        """``POST /pods/{podId}/stop``; retried on 5xx (stopping is idempotent)."""
        self._t.call("POST", "/pods/{podId}/stop", f"/pods/{quote(pod_id, safe='')}/stop",
                     parse=lambda b: None)


def _pod(p: _Pod) -> Pod:
    gpu = p.gpu
    gpu_type = (gpu.id or gpu.displayName) if gpu else None
    if not gpu_type and p.machine:
        gpu_type = p.machine.gpuTypeId or None
    return Pod(
        id=p.id,
        name=p.name or "",
        desired_status=p.desiredStatus,
        cost_per_hr=p.costPerHr,
        gpu_type=gpu_type or None,
        gpu_count=(gpu.count or 0) if gpu else 0,
        locked=p.locked,
        can_stop=True,
        gpu_util=None,
        started_at=_started(p.lastStartedAt),
    )


def _started(text: str | None) -> datetime | None:
    # informational: a missing or odd lastStartedAt ("" for never) must not sink /pods
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
