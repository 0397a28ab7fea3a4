"""RunPod REST API v1 client (sync httpx), with retries by ``stamina``.

Implements :class:`daemon.core.ports.RunPodApi` plus the other billing calls and
pod reads. Every method returns validated model objects or raises
:class:`daemon.core.ports.ApiError`:

==============  =====================================================  =========  ========
reason          when                                                   permanent  retried
==============  =====================================================  =========  ========
``auth``        401: the API key is wrong or expired                   yes        no
``forbidden``   403: the key lacks permission                          yes        no
``not_found``   404                                                    yes        no
``client``      any other 4xx (and unexpected 1xx/3xx)                 yes        no
``rate_limited`` 429, honouring ``Retry-After`` (capped)               no         yes
``server``      5xx                                                    no         yes
``timeout``     connect/read timeout                                   no         yes
``transport``   connection refused/reset/cut, truncated body           no         yes
``bad_body``    not JSON (garbage, an HTML page) or not a JSON array   no         2 times
``too_large``   body over ``max_body_bytes`` (reading stops at cap)    no         no
``bad_record``  a record with missing/NaN/infinite/negative amount,    no         no
                or missing/unparseable time; names index and field
==============  =====================================================  =========  ========

``bad_record`` and ``too_large`` are not permanent: an immediate retry would get
the same answer, but the next poll may not, so the daemon keeps running.

Retries use stamina's exponential backoff with jitter (``wait_initial``,
``wait_max``, ``wait_jitter``; at most ``max_attempts`` attempts) within
``deadline`` seconds from the start of the call: each attempt's timeout is
clipped to the time left, and a retry is scheduled only if its longest possible
wait (``wait_max + wait_jitter``, or the capped ``Retry-After``) still leaves
0.1 s before the deadline. Otherwise the call fails at once with the last error,
so no call lasts much longer than ``deadline``.

The API key is only ever put in the ``Authorization`` header: it is not in any
error message, log event or ``repr``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx
import stamina
import structlog
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from daemon.core.model import (
    BillingRecord,
    BucketSize,
    Grouping,
    NetworkVolumeRecord,
    Pod,
    PodStatus,
)
from daemon.core.ports import ApiError
from daemon.core.retry_after import retry_after_seconds

DEFAULT_BASE_URL = "https://rest.runpod.io/v1"
_MIN_ATTEMPT = 0.1  # seconds an attempt gets at least, or it is not worth starting
log = structlog.get_logger("daemon.adapters.runpod")

EndpointGrouping = Literal["endpointId", "podId", "gpuTypeId"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """One HTTP attempt, for metrics: ``path`` is the template (``/pods/{podId}``);
    ``status`` is None when no response arrived; ``error`` is an ApiError reason
    word, or None when the attempt succeeded."""

    method: str
    path: str
    status: int | None
    elapsed: float
    error: str | None


# --------------------------------------------------------------------- validation


def _finite_nonneg(v: float) -> float:
    if math.isnan(v) or math.isinf(v):
        raise ValueError("must be a finite number")
    if v < 0:
        raise ValueError("must not be negative")
    return v


def _utc(v: datetime) -> datetime:
    # RunPod sends "...Z"; a time without offset is taken as UTC, not local time
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _lenient_int(v: Any) -> int | None:
    # informational counters (ms, GB) must not sink a whole billing answer
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f) if math.isfinite(f) else None


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: float
    time: datetime

    @field_validator("amount", mode="after")
    @classmethod
    def _amount(cls, v: float) -> float:
        return _finite_nonneg(v)

    @field_validator("time", mode="after")
    @classmethod
    def _time(cls, v: datetime) -> datetime:
        return _utc(v)


class _BillingIn(_Record):
    pod_id: str | None = Field(None, alias="podId")
    gpu_type: str | None = Field(None, alias="gpuTypeId")
    endpoint_id: str | None = Field(None, alias="endpointId")
    time_billed_ms: Any = Field(None, alias="timeBilledMs")
    disk_gb: Any = Field(
        None, validation_alias=AliasChoices("diskSpaceBilledGb", "diskSpaceBilledGB")
    )

    def to_model(self) -> BillingRecord:
        return BillingRecord(
            time=self.time,
            amount=self.amount,
            pod_id=self.pod_id,
            gpu_type=self.gpu_type,
            endpoint_id=self.endpoint_id,
            time_billed_ms=_lenient_int(self.time_billed_ms),
            disk_space_billed_gb=_lenient_int(self.disk_gb),
        )


class _VolumeIn(_Record):
    disk_gb: Any = Field(
        None, validation_alias=AliasChoices("diskSpaceBilledGb", "diskSpaceBilledGB")
    )
    hps_amount: float | None = Field(None, alias="highPerformanceStorageAmount")
    hps_gb: Any = Field(
        None,
        validation_alias=AliasChoices(
            "highPerformanceStorageDiskSpaceBilledGb", "highPerformanceStorageDiskSpaceBilledGB"
        ),
    )

    def to_model(self) -> NetworkVolumeRecord:
        hps = self.hps_amount
        return NetworkVolumeRecord(
            time=self.time,
            amount=self.amount,
            disk_space_billed_gb=_lenient_int(self.disk_gb),
            high_performance_storage_amount=_finite_nonneg(hps) if hps is not None else None,
            high_performance_storage_disk_space_billed_gb=_lenient_int(self.hps_gb),
        )


class _GpuIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    count: int | None = None
    display_name: str | None = Field(None, alias="displayName")


class _MachineIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    gpu_type_id: str | None = Field(None, alias="gpuTypeId")


class _PodIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    name: str | None = ""
    desired_status: PodStatus = Field(alias="desiredStatus")
    cost_per_hr: float = Field(alias="costPerHr")  # the spec's "currency" may be a string
    gpu: _GpuIn | None = None
    machine: _MachineIn | None = None

    @field_validator("cost_per_hr", mode="after")
    @classmethod
    def _cost(cls, v: float) -> float:
        return _finite_nonneg(v)

    def to_model(self) -> Pod:
        gpu = self.gpu
        gpu_type = (gpu.id or gpu.display_name) if gpu else None
        if not gpu_type and self.machine:
            gpu_type = self.machine.gpu_type_id or None
        return Pod(
            id=self.id,
            name=self.name or "",
            desired_status=self.desired_status,
            cost_per_hr=self.cost_per_hr,
            gpu_type=gpu_type or None,
            gpu_count=(gpu.count or 0) if gpu else 0,
        )


_M = TypeVar("_M", _BillingIn, _VolumeIn, _PodIn)


def _validate(model: type[_M], item: Any, path: str, index: int | None) -> _M:
    try:
        return model.model_validate(item)
    except ValidationError as e:
        err = e.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(x) for x in err["loc"]) or "record"
        where = f"record {index}" if index is not None else "the object"
        raise ApiError(
            f"RunPod {path} returned a bad {where}: field '{loc}': {err['msg']}",
            permanent=False,
            reason="bad_record",
        ) from None


def _validate_list(model: type[_M], data: Any, path: str) -> list[_M]:
    return [_validate(model, item, path, i) for i, item in enumerate(data)]


# --------------------------------------------------------------------- errors


class _Attempt(Exception):
    """One failed attempt; ``retry`` tells the stamina hook whether to go again."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        retry: bool,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry = retry
        self.permanent = permanent
        self.retry_after = retry_after

    def api_error(self, attempts: int) -> ApiError:
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        return ApiError(
            f"{self}{suffix}", permanent=self.permanent, status=self.status, reason=self.reason
        )


class _Secret:
    """Holds the API key so that no repr, traceback local or log shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


# --------------------------------------------------------------------- client


class RunPodClient:
    """Sync client for RunPod's REST API v1. See the module doc for errors/retries.

    ``http`` lets callers share or instrument an ``httpx.Client`` (the client
    builds absolute URLs from ``base_url`` and never closes a client it was
    given). ``on_request`` is called once per HTTP attempt with a
    :class:`RequestInfo`; exceptions from it propagate.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        deadline: float = 60.0,
        max_body_bytes: int = 64 * 1024 * 1024,
        http: httpx.Client | None = None,
        retry_after_cap: float = 60.0,
        on_request: Callable[[RequestInfo], None] | None = None,
        wait_initial: float = 0.5,
        wait_max: float = 10.0,
        wait_jitter: float = 1.0,
        max_attempts: int = 10,
        bad_body_retries: int = 2,
        cancel: threading.Event | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("RunPod API key is empty")
        self._key = _Secret(api_key)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.max_body_bytes = max_body_bytes
        self.retry_after_cap = retry_after_cap
        self._on_request = on_request
        self._wait: dict[str, float] = {"wait_initial": wait_initial, "wait_max": wait_max,
                                        "wait_jitter": wait_jitter}
        self._max_attempts = max_attempts
        self._bad_body_retries = bad_body_retries
        # set on shutdown: the call in flight finishes, but no retry is scheduled
        self._cancel = cancel
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(follow_redirects=False)

    @classmethod
    def from_env(cls, api_key: str, **kwargs: Any) -> RunPodClient:
        """A client whose base URL is ``$RUNPOD_API_BASE_URL`` (default RunPod's)."""
        base = os.environ.get("RUNPOD_API_BASE_URL") or DEFAULT_BASE_URL
        return cls(api_key, base, **kwargs)

    def __repr__(self) -> str:
        return f"RunPodClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> RunPodClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- billing
    def billing_pods(
        self,
        *,
        bucket_size: BucketSize = "hour",
        start: datetime | None = None,
        end: datetime | None = None,
        grouping: Grouping | None = None,
        pod_id: str | None = None,
        gpu_type_id: str | None = None,
    ) -> list[BillingRecord]:
        """``GET /billing/pods``: spend per bucket and group. ``gpu_type_id`` is sent verbatim."""
        params = _params(
            bucketSize=bucket_size, startTime=start, endTime=end, grouping=grouping,
            podId=pod_id, gpuTypeId=gpu_type_id,
        )
        data = self._get_list("/billing/pods", params)
        return [r.to_model() for r in _validate_list(_BillingIn, data, "/billing/pods")]

    def billing_endpoints(
        self,
        *,
        bucket_size: BucketSize = "hour",
        start: datetime | None = None,
        end: datetime | None = None,
        grouping: EndpointGrouping | None = None,
        endpoint_id: str | None = None,
        data_center_id: Sequence[str] | None = None,
        gpu_type_id: Sequence[str] | None = None,
        image_name: str | None = None,
        template_id: str | None = None,
    ) -> list[BillingRecord]:
        """``GET /billing/endpoints`` (Serverless spend); list filters repeat the parameter."""
        params = _params(
            bucketSize=bucket_size, startTime=start, endTime=end, grouping=grouping,
            endpointId=endpoint_id, dataCenterId=data_center_id, gpuTypeId=gpu_type_id,
            imageName=image_name, templateId=template_id,
        )
        data = self._get_list("/billing/endpoints", params)
        return [r.to_model() for r in _validate_list(_BillingIn, data, "/billing/endpoints")]

    def billing_network_volumes(
        self,
        *,
        bucket_size: BucketSize = "hour",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[NetworkVolumeRecord]:
        """``GET /billing/networkvolumes``: network volume spend per bucket."""
        params = _params(bucketSize=bucket_size, startTime=start, endTime=end)
        data = self._get_list("/billing/networkvolumes", params)
        path = "/billing/networkvolumes"
        return [r.to_model() for r in _validate_list(_VolumeIn, data, path)]

    # ----------------------------------------------------------------- pods
    def list_pods(
        self,
        *,
        compute_type: Literal["GPU", "CPU"] | None = None,
        cpu_flavor_id: Sequence[str] | None = None,
        data_center_id: Sequence[str] | None = None,
        desired_status: PodStatus | str | None = None,
        endpoint_id: str | None = None,
        gpu_type_id: Sequence[str] | None = None,
        id: str | None = None,
        image_name: str | None = None,
        include_machine: bool | None = None,
        include_network_volume: bool | None = None,
        include_savings_plans: bool | None = None,
        include_template: bool | None = None,
        include_workers: bool | None = None,
        name: str | None = None,
        network_volume_id: str | None = None,
        template_id: str | None = None,
    ) -> list[Pod]:
        """``GET /pods`` with the spec's filters (snake_case here, camelCase on the wire)."""
        params = _params(
            computeType=compute_type, cpuFlavorId=cpu_flavor_id, dataCenterId=data_center_id,
            desiredStatus=str(desired_status) if desired_status else None,
            endpointId=endpoint_id, gpuTypeId=gpu_type_id, id=id, imageName=image_name,
            includeMachine=include_machine, includeNetworkVolume=include_network_volume,
            includeSavingsPlans=include_savings_plans, includeTemplate=include_template,
            includeWorkers=include_workers, name=name, networkVolumeId=network_volume_id,
            templateId=template_id,
        )
        data = self._get_list("/pods", params)
        return [p.to_model() for p in _validate_list(_PodIn, data, "/pods")]

    def get_pod(self, pod_id: str) -> Pod:
        """``GET /pods/{podId}``; an unknown pod raises ApiError(reason="not_found")."""
        data = self._call("GET", "/pods/{podId}", f"/pods/{_seg(pod_id)}", [])
        return _validate(_PodIn, data, "/pods/{podId}", None).to_model()

    def stop_pod(self, pod_id: str) -> None:
        """``POST /pods/{podId}/stop``. Retried on 5xx: stopping is idempotent at RunPod."""
        self._call("POST", "/pods/{podId}/stop", f"/pods/{_seg(pod_id)}/stop", [],
                   expect_json=False)

    # ----------------------------------------------------------------- plumbing
    def _get_list(self, path: str, params: list[tuple[str, str]]) -> list[Any]:
        data = self._call("GET", path, path, params)
        if not isinstance(data, list):
            raise ApiError(
                f"RunPod {path} returned a JSON {type(data).__name__}, expected an array",
                permanent=False, reason="bad_body",
            )
        return data

    def _call(
        self,
        method: str,
        template: str,
        path: str,
        params: list[tuple[str, str]],
        *,
        expect_json: bool = True,
    ) -> Any:
        started = time.monotonic()
        deadline_at = started + self.deadline
        counts = {"attempts": 0, "bad_body": 0}

        def should_retry(exc: Exception) -> bool | float:
            if not isinstance(exc, _Attempt) or not exc.retry:
                return False
            if self._cancel is not None and self._cancel.is_set():
                return False  # shutting down: report the failure now, do not wait
            if exc.reason == "bad_body":
                counts["bad_body"] += 1
                if counts["bad_body"] > self._bad_body_retries:
                    return False
            left = deadline_at - time.monotonic()
            wait: bool | float = True
            worst = self._wait["wait_max"] + self._wait["wait_jitter"]
            if exc.retry_after is not None:
                wait = worst = min(exc.retry_after, self.retry_after_cap)
            if worst + _MIN_ATTEMPT > left:
                return False  # no sleep may end past the deadline or leave no time to try
            log.info("runpod.retry", method=method, path=template, status=exc.status,
                     reason=exc.reason, attempt=counts["attempts"], retry_after=exc.retry_after)
            return wait

        try:
            for attempt in stamina.retry_context(
                on=should_retry, attempts=self._max_attempts, timeout=self.deadline,
                **self._wait,
            ):
                with attempt:
                    counts["attempts"] += 1
                    return self._attempt(method, template, path, params,
                                         deadline_at=deadline_at, expect_json=expect_json)
        except _Attempt as e:
            log.warning("runpod.failed", method=method, path=template, status=e.status,
                        reason=e.reason, attempts=counts["attempts"])
            raise e.api_error(counts["attempts"]) from None
        raise AssertionError("unreachable: stamina yields until success or raises")

    def _attempt(
        self,
        method: str,
        template: str,
        path: str,
        params: list[tuple[str, str]],
        *,
        deadline_at: float,
        expect_json: bool,
    ) -> Any:
        t0 = time.monotonic()
        status: int | None = None
        error: str | None = "transport"
        try:
            left = max(0.001, min(self.timeout, deadline_at - t0))
            request = self._http.build_request(
                method, self.base_url + path, params=tuple(params), timeout=left,
                headers={"Authorization": f"Bearer {self._key.reveal()}",
                         "Accept": "application/json"},
            )
            try:
                response = self._http.send(request, stream=True)
            except httpx.TimeoutException:
                error = "timeout"
                raise _Attempt(f"RunPod {method} {template} timed out after {left:.1f}s",
                               reason="timeout", retry=True) from None
            except httpx.RequestError as e:
                raise _Attempt(f"RunPod {method} {template} failed: {type(e).__name__}",
                               reason="transport", retry=True) from None
            status = response.status_code
            try:
                body = self._read(response, method, template)
            finally:
                response.close()
            _check_status(response, body, method, template, self._key.reveal())
            data = self._decode(body, response, method, template) if expect_json else None
            error = None
            return data
        except _Attempt as e:
            error = e.reason
            raise
        finally:
            if self._on_request is not None:
                self._on_request(RequestInfo(method, template, status,
                                             time.monotonic() - t0, error))

    def _read(self, response: httpx.Response, method: str, template: str) -> bytes:
        cap = self.max_body_bytes
        too_large = _Attempt(
            f"RunPod {method} {template} sent a body over {cap} bytes; refused",
            reason="too_large", status=response.status_code, retry=False,
        )
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise too_large
                chunks.append(chunk)
        except httpx.DecodingError:
            raise _Attempt(f"RunPod {method} {template} sent an undecodable body",
                           reason="bad_body", status=response.status_code, retry=True) from None
        except httpx.TimeoutException:
            raise _Attempt(f"RunPod {method} {template} timed out reading the body",
                           reason="timeout", status=response.status_code, retry=True) from None
        except httpx.TransportError as e:
            raise _Attempt(
                f"RunPod {method} {template} body cut short ({type(e).__name__})",
                reason="transport", status=response.status_code, retry=True,
            ) from None
        return b"".join(chunks)

    @staticmethod
    def _decode(body: bytes, response: httpx.Response, method: str, template: str) -> Any:
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            ctype = response.headers.get("Content-Type", "")
            what = "an HTML page" if "html" in ctype or body.lstrip()[:1] == b"<" else (
                "malformed JSON")
            raise _Attempt(
                f"RunPod {method} {template} returned {what} instead of JSON "
                f"(HTTP {response.status_code}, {len(body)} bytes)",
                reason="bad_body", status=response.status_code, retry=True,
            ) from None


def _check_status(
    response: httpx.Response, body: bytes, method: str, template: str, key: str
) -> None:
    """Raise the ``_Attempt`` a non-2xx status calls for."""
    status = response.status_code
    if 200 <= status < 300:
        return
    what = f"RunPod {method} {template}"
    detail = _detail(body, key)
    if status == 401:
        raise _Attempt(f"{what}: HTTP 401, the RunPod API key is wrong or expired",
                       reason="auth", status=status, retry=False, permanent=True)
    if status == 403:
        raise _Attempt(f"{what}: HTTP 403, the RunPod API key lacks permission for this call",
                       reason="forbidden", status=status, retry=False, permanent=True)
    if status == 404:
        raise _Attempt(f"{what}: HTTP 404, not found{detail}",
                       reason="not_found", status=status, retry=False, permanent=True)
    if status == 429:
        after = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
        raise _Attempt(f"{what}: HTTP 429, rate limited", reason="rate_limited",
                       status=status, retry=True, retry_after=after)
    if status >= 500:
        raise _Attempt(f"{what}: HTTP {status}, server error{detail}",
                       reason="server", status=status, retry=True)
    raise _Attempt(f"{what}: HTTP {status}{detail}",
                   reason="client", status=status, retry=False, permanent=True)


def _detail(body: bytes, key: str) -> str:
    """A short, key-free excerpt of an error body for the message."""
    try:
        doc = json.loads(body)
        text = str(doc.get("error") or doc.get("message") or "") if isinstance(doc, dict) else ""
    except ValueError:
        text = ""
    text = " ".join(text.split())[:200].replace(key, "***")
    return f": {text}" if text else ""


def _seg(pod_id: str) -> str:
    from urllib.parse import quote

    return quote(pod_id, safe="")


def _params(**kw: Any) -> list[tuple[str, str]]:
    """Query parameters in spec names; None dropped, lists repeated, times as ...Z."""
    out: list[tuple[str, str]] = []
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, datetime):
            if v.tzinfo is None:
                raise ValueError(f"{k} must be timezone-aware")
            out.append((k, v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
        elif isinstance(v, bool):
            out.append((k, "true" if v else "false"))
        elif isinstance(v, (list, tuple)):
            out.extend((k, str(x)) for x in v)
        else:
            out.append((k, str(v)))
    return out
