"""A RunPod REST API v1 simulator: real HTTP on loopback, a clock you control, faults.

Implements under ``/v1``: ``GET /billing/pods``, ``GET /billing/endpoints`` (always
``[]``), ``GET /billing/networkvolumes``, ``GET /pods``, ``GET /pods/{podId}`` and
``POST /pods/{podId}/stop``, with bearer auth. Billing semantics are documented
in :mod:`daemon.simulator.billing`. Errors are JSON ``{"error": ..., "status": ...}``.

Usage::

    with Simulator("demo", api_key="k", clock=FakeClock(t0)) as sim:
        client = RunPodClient("k", sim.base_url)
        sim.fail("/v1/billing/pods", status=503, times=2)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from daemon.simulator.billing import (
    BUCKETS,
    iso_z,
    pod_records,
    volume_records,
)
from daemon.simulator.scenario import PodSpec, Scenario

Clock = Callable[[], datetime]
FAULT_KINDS = ("status", "rate_limit", "delay", "garbage", "truncated", "html",
               "bad_record", "huge")
BAD_RECORDS = ("missing_amount", "nan_amount", "inf_amount", "negative_amount",
               "bad_time", "missing_time")


class FakeClock:
    """A settable clock: ``now()``, ``advance(timedelta)``, ``set(dt)``; callable as ``clock()``."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    __call__ = now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, t: datetime) -> None:
        with self._lock:
            self._now = _aware(t)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("clock times must be timezone-aware")
    return t.astimezone(UTC)


@dataclass
class Fault:
    """What the next ``times`` requests whose path starts with ``path`` get.

    kinds: ``status`` (``status`` + optional ``body``), ``rate_limit`` (429 with
    ``Retry-After: retry_after``, seconds or an HTTP-date string), ``delay``
    (sleep ``delay`` s, then answer normally; ``delay`` also combines with any
    kind), ``garbage`` (200 with malformed JSON), ``truncated`` (Content-Length
    larger than the bytes sent, then the connection is cut), ``html`` (an HTML
    error page with ``status``, default 200), ``bad_record`` (the real answer
    with record 0 spoiled per ``record``: one of ``BAD_RECORDS``), ``huge``
    (a valid JSON array of ``size`` bytes; ``declare_length=False`` omits
    Content-Length and ends the body by closing the connection).
    """

    path: str
    kind: str = "status"
    times: int = 1
    status: int | None = None
    body: str | None = None
    retry_after: str | int | float | None = None
    delay: float = 0.0
    record: str = "missing_amount"
    size: int = 1 << 20
    declare_length: bool = True
    method: str | None = None


@dataclass
class RequestRecord:
    """One served request: ``bytes`` counts the response body bytes actually sent."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    bytes: int
    at: datetime  # simulator clock time of the answer

    def param(self, name: str) -> str | None:
        """The last value of query parameter ``name`` (None if absent)."""
        v = self.query.get(name)
        return v[-1] if v else None


class _Reply(Exception):
    """Raised inside handlers to answer with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Simulator:
    """A simulated RunPod account served over HTTP on 127.0.0.1.

    ``scenario`` is a :class:`Scenario`, a dict, a built-in name (``demo``,
    ``month``) or a file path; relative times resolve against ``clock()`` at
    construction. ``clock`` returns aware UTC datetimes (default: real time).
    """

    PREFIX = "/v1"

    def __init__(
        self,
        scenario: Scenario | str | Path | dict[str, Any] = "demo",
        *,
        api_key: str = "sim-key",
        clock: Clock | None = None,
        port: int = 0,
    ) -> None:
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.scenario = Scenario.resolve(scenario, self.clock())
        self.api_key = api_key
        self.port = port
        self.requests: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        for f in self.scenario.faults:
            opts = dict(f)
            self.fail(opts.pop("path"), opts.pop("kind", None), **opts)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start serving; returns the base URL ``http://127.0.0.1:PORT/v1``."""
        handler = type("Handler", (_Handler,), {"sim": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name="runpod-simulator", daemon=True,
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}{self.PREFIX}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving; pending delay faults are cut short."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ control
    def fail(self, path: str, kind: str | None = None, *, times: int = 1, **kw: Any) -> Fault:
        """Queue a fault (see :class:`Fault`) for the next ``times`` matching requests.

        ``kind`` defaults to ``status`` when ``status=`` is given, ``rate_limit``
        for ``retry_after=``, ``delay`` for ``delay=``.
        """
        if kind is None:
            kind = ("rate_limit" if "retry_after" in kw
                    else "delay" if "delay" in kw and "status" not in kw else "status")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {FAULT_KINDS}")
        if kind == "bad_record" and kw.get("record", "missing_amount") not in BAD_RECORDS:
            raise ValueError(f"unknown bad record {kw['record']!r}; choose from {BAD_RECORDS}")
        fault = Fault(path=path, kind=kind, times=times, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pod(self, pod_id: str) -> PodSpec:
        for p in self.scenario.pods:
            if p.id == pod_id:
                return p
        raise KeyError(pod_id)

    def stop_pod(self, pod_id: str) -> PodSpec:
        """Stop a pod now (as ``POST /pods/{id}/stop`` does): accrual halts at this instant."""
        with self._lock:
            pod = self.pod(pod_id)
            if pod.running and pod.running[-1][1] is None:
                pod.running[-1] = (pod.running[-1][0], self.clock())
            if pod.status != "TERMINATED":
                pod.status = None
            return pod

    def start_pod(self, pod_id: str) -> PodSpec:
        """Start a stopped pod now; accrual resumes from this instant."""
        with self._lock:
            pod = self.pod(pod_id)
            if not (pod.running and pod.running[-1][1] is None):
                pod.running.append((self.clock(), None))
            pod.status = None
            return pod

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if path.startswith(f.path) and (f.method is None or f.method == method):
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f
        return None

    # ------------------------------------------------------------------ API
    def handle(self, method: str, path: str, query: dict[str, list[str]]) -> Any:
        """Answer one authorized request with JSON-able data, or raise ``_Reply``."""
        if not path.startswith(self.PREFIX + "/"):
            raise _Reply(404, f"no route {path}")
        route = path[len(self.PREFIX):].rstrip("/")
        now = self.clock()
        with self._lock:
            if method == "GET" and route == "/billing/pods":
                return self._billing_pods(query, now)
            if method == "GET" and route == "/billing/endpoints":
                self._range(query, now)
                _one_of(query, "grouping", ("endpointId", "podId", "gpuTypeId"), "endpointId")
                return []
            if method == "GET" and route == "/billing/networkvolumes":
                size, start, end = self._range(query, now)
                return volume_records(self.scenario.volumes, size=size, start=start, end=end,
                                      now=now)
            if method == "GET" and route == "/pods":
                return [self._pod_json(p, query) for p in self._filter_pods(query)]
            parts = route.split("/")
            if len(parts) >= 3 and parts[1] == "pods":
                try:
                    pod = self.pod(parts[2])
                except KeyError:
                    raise _Reply(404, "pod not found") from None
                if method == "GET" and len(parts) == 3:
                    return self._pod_json(pod, query)
                if method == "POST" and parts[3:] == ["stop"]:
                    return self._pod_json(self.stop_pod(pod.id), {})
        raise _Reply(404, f"no route {method} {path}")

    def _range(self, q: dict[str, list[str]], now: datetime) -> tuple[str, datetime, datetime]:
        size = _one_of(q, "bucketSize", BUCKETS, "day")
        end = _time(q, "endTime") or now
        start = _time(q, "startTime") or end - timedelta(days=30)
        return size, start, end

    def _billing_pods(self, q: dict[str, list[str]], now: datetime) -> list[dict[str, Any]]:
        size, start, end = self._range(q, now)
        grouping = _one_of(q, "grouping", ("podId", "gpuTypeId"), "gpuTypeId")
        pods = self.scenario.pods
        if (pid := _last(q, "podId")) is not None:
            pods = [p for p in pods if p.id == pid]
        if (gpu := _last(q, "gpuTypeId")) is not None:
            pods = [p for p in pods if p.gpu_type == gpu]  # verbatim, spaces and case count
        return pod_records(pods, size=size, start=start, end=end, grouping=grouping, now=now)

    def _filter_pods(self, q: dict[str, list[str]]) -> list[PodSpec]:
        def multi(name: str) -> set[str]:
            return {v for raw in q.get(name, []) for v in raw.split(",") if v}

        pods = list(self.scenario.pods)
        if (v := _last(q, "id")) is not None:
            pods = [p for p in pods if p.id == v]
        if (v := _last(q, "name")) is not None:
            pods = [p for p in pods if p.name == v]
        if (v := _last(q, "desiredStatus")) is not None:
            pods = [p for p in pods if p.desired_status == v]
        if (v := _last(q, "computeType")) is not None:
            pods = [p for p in pods if (p.gpu_type is not None) == (v == "GPU")]
        if (v := _last(q, "imageName")) is not None:
            pods = [p for p in pods if p.image == v]
        if gpus := multi("gpuTypeId"):
            pods = [p for p in pods if p.gpu_type in gpus]
        if dcs := multi("dataCenterId"):
            pods = [p for p in pods if p.data_center_id in dcs]
        return pods

    def _pod_json(self, p: PodSpec, q: dict[str, list[str]]) -> dict[str, Any]:
        started = next((s for s, e in reversed(p.running) if e is None), None)
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
            "locked": False,
            "machineId": f"m-{p.id[:8]}",
            "memoryInGb": 62,
            "vcpuCount": 16,
            "ports": ["8888/http", "22/tcp"],
            "portMappings": {"22": 10341} if started else None,
            "publicIp": "100.65.0.119" if started else None,
            "env": {},
            "consumerUserId": "user_simulated",
            "lastStartedAt": iso_z(last).replace("Z", ".000Z") if last else "",
            "lastStatusChange": f"{p.desired_status.lower()} by simulator",
        }
        if p.gpu_type is not None:
            doc["gpu"] = {
                "id": p.gpu_type,
                "count": p.gpu_count,
                "displayName": p.gpu_display_name or _display(p.gpu_type),
            }
        else:
            doc["cpuFlavorId"] = "cpu3c"
        if _last(q, "includeMachine") == "true":
            doc["machine"] = {"gpuTypeId": p.gpu_type or "", "dataCenterId": p.data_center_id,
                              "secureCloud": True}
        return doc


def _display(gpu: str) -> str:
    for prefix in ("NVIDIA GeForce ", "NVIDIA "):
        if gpu.startswith(prefix):
            return gpu[len(prefix):].strip()
    return gpu


def _last(q: dict[str, list[str]], name: str) -> str | None:
    v = q.get(name)
    return v[-1] if v else None


def _one_of(q: dict[str, list[str]], name: str, allowed: tuple[str, ...], default: str) -> str:
    v = _last(q, name) or default
    if v not in allowed:
        raise _Reply(400, f"invalid {name} {v!r}: expected one of {', '.join(allowed)}")
    return v


def _time(q: dict[str, list[str]], name: str) -> datetime | None:
    v = _last(q, name)
    if v is None or v == "":
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise _Reply(400, f"invalid {name} {v!r}: expected an ISO-8601 date-time") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


_HTML = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
         b"<body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that hang up early (timeouts, body caps) are part of the tests
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections must not pin threads forever

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests own stderr
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve("POST")

    def _serve(self, method: str) -> None:
        sim = self.sim
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        path = url.path
        fault = sim._take_fault(method, path)
        if fault and fault.delay and sim._stopping.wait(fault.delay):
            self.close_connection = True
            return
        status, body, ctype = 200, b"", "application/json"
        # a status/429/HTML/garbage fault stands for a proxy in front of the API:
        # it answers before authentication and routing
        if not (fault and fault.kind in ("status", "rate_limit", "html", "garbage")):
            try:
                if self.headers.get("Authorization") != f"Bearer {sim.api_key}":
                    raise _Reply(401, "Unauthorized: missing or invalid API key")
                data = sim.handle(method, path, query)
                if fault and fault.kind == "bad_record":
                    data = _spoil(data, fault.record)
                body = json.dumps(data, separators=(",", ":")).encode()
            except _Reply as r:
                status = r.status
                body = json.dumps({"error": str(r), "status": r.status}).encode()
        extra: dict[str, str] = {}
        if fault:
            status, body, ctype, extra = _apply(fault, status, body, ctype)
        if fault and fault.kind == "huge":
            self._send_huge(method, url.path, query, fault)
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in extra.items():
            self.send_header(k, v)
        sent = body
        if fault and fault.kind == "truncated":
            self.send_header("Content-Length", str(len(body) + 1000))
            sent = body[: len(body) // 2]
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        # logged before the write so that a client holding the answer sees the entry
        with sim._lock:
            sim.requests.append(RequestRecord(method, path, query, status, len(sent), sim.clock()))
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()

    def _send_huge(self, method: str, path: str, query: dict[str, list[str]], f: Fault) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if f.declare_length:
            self.send_header("Content-Length", str(f.size))
        else:
            self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        rec = RequestRecord(method, path, query, 200, 0, self.sim.clock())
        with self.sim._lock:
            self.sim.requests.append(rec)
        chunk = b" " * 65536
        try:
            self.wfile.write(b"[")
            rec.bytes = 1
            while rec.bytes < f.size - 1:
                n = min(len(chunk), f.size - 1 - rec.bytes)
                self.wfile.write(chunk[:n])
                rec.bytes += n
            self.wfile.write(b"]")
            rec.bytes += 1
        except OSError:  # the client stopped reading at its cap: that is the point
            pass


def _apply(
    f: Fault, status: int, body: bytes, ctype: str
) -> tuple[int, bytes, str, dict[str, str]]:
    extra: dict[str, str] = {}
    if f.kind == "status":
        status = f.status or 500
        body = f.body.encode() if f.body is not None else json.dumps(
            {"error": f"simulated failure {status}", "status": status}).encode()
    elif f.kind == "rate_limit":
        status = 429
        body = json.dumps({"error": "rate limit exceeded", "status": 429}).encode()
        if f.retry_after is not None:
            extra["Retry-After"] = str(f.retry_after)
    elif f.kind == "html":
        status, body, ctype = f.status or 200, _HTML, "text/html; charset=utf-8"
    elif f.kind == "garbage":
        status, body = 200, b'[{"amount": 1.5, "time": "2026-11-24T00:00:00Z"'
    return status, body, ctype, extra


def _spoil(data: Any, how: str) -> Any:
    if not isinstance(data, list):
        data = [data]
    if not data:
        data = [{"amount": 1.0, "time": "2026-11-24T00:00:00Z", "gpuTypeId": "NVIDIA L4"}]
    rec = dict(data[0])
    if how == "missing_amount":
        rec.pop("amount", None)
    elif how == "nan_amount":
        rec["amount"] = float("nan")
    elif how == "inf_amount":
        rec["amount"] = float("inf")
    elif how == "negative_amount":
        rec["amount"] = -1.25
    elif how == "bad_time":
        rec["time"] = "yesterday-ish"
    elif how == "missing_time":
        rec.pop("time", None)
    return [rec, *data[1:]]
