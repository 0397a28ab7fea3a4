"""A RunPod simulator: REST v1, REST v2 and GraphQL on loopback, a clock you control, faults.

Serves ``/v1`` (:mod:`.v1`), ``/v2`` (:mod:`.v2`) and ``/graphql``
(:mod:`.graphql`) from one :class:`Scenario`, all with the same bearer key.
Error shapes follow each API: v1 ``{"error", "status"}``, v2 RFC 9457
problems, GraphQL ``{"errors": [...]}``. v2 answers carry rate-limit headers
(:mod:`.ratelimit`). ``retire("v1")`` makes an API answer 410 Gone.

Usage::

    with Simulator("demo", api_key="k", clock=FakeClock(t0)) as sim:
        httpx.get(sim.base_url_for("v2") + "/billing/pods", headers=...)
        sim.fail("/v2/billing/pods", status=503, times=2)
        sim.clock.advance(timedelta(minutes=5))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic_core import to_json

from daemon.simulator import graphql, v1, v2
from daemon.simulator import pods as podlib
from daemon.simulator.billing import accrued
from daemon.simulator.faults import BAD_RECORDS, FAULT_KINDS, Fault, api_of, error_body
from daemon.simulator.ratelimit import RateLimiter
from daemon.simulator.scenario import Scenario
from daemon.simulator.specs import PodSpec, Seg, rate_at
from daemon.simulator.wire import Answer, Query, Reply

Clock = Callable[[], datetime]
APIS = ("v1", "v2", "graphql")
_DEFAULT: Any = object()

__all__ = ["BAD_RECORDS", "FAULT_KINDS", "FakeClock", "Fault", "RequestRecord", "Simulator"]


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


class Simulator:
    """A simulated RunPod account served over HTTP on 127.0.0.1.

    ``scenario`` is a :class:`Scenario`, a dict, a built-in name (``demo``,
    ``month``) or a file path; relative times resolve against ``clock()`` at
    construction. ``clock`` returns aware UTC datetimes (default: real time).
    ``rate_limit`` ({window: quota}, windows ``minute``/``hour``/``day``; None =
    exempt) overrides the scenario's v2 policy; ``retired`` names APIs
    (``v1``, ``v2``, ``graphql``) that answer 410 from the start.

    After :meth:`start` (or ``with``): ``base_url`` (v1, kept for old callers),
    ``base_url_for("v1"|"v2")``, ``graphql_url``, ``root_url``. Control:
    :meth:`fail`, :meth:`clear_faults`, :meth:`retire`, :meth:`set_rate_limit`,
    :meth:`top_up`, :meth:`stop_pod`, :meth:`start_pod`, :meth:`set_gpu_util`,
    :meth:`pod`; readings: :meth:`balance`, :meth:`spend_per_hr`, ``requests``
    (every answered request, with the body bytes sent), ``scenario``, ``clock``.
    """

    PREFIX = "/v1"

    def __init__(
        self,
        scenario: Scenario | str | Path | dict[str, Any] = "demo",
        *,
        api_key: str = "sim-key",
        clock: Clock | None = None,
        port: int = 0,
        rate_limit: dict[str, int] | None = _DEFAULT,
        retired: Iterable[str] = (),
    ) -> None:
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.scenario = Scenario.resolve(scenario, self.clock())
        self.api_key = api_key
        self.port = port
        self.requests: list[RequestRecord] = []
        self.lock = threading.RLock()
        self._faults: list[Fault] = []
        self.pod_bodies = podlib.PodBodies()
        self.limiter = RateLimiter(self.scenario.rate_limit if rate_limit is _DEFAULT
                                   else rate_limit)
        self.retired: set[str] = set()
        for api in (*self.scenario.retired, *retired):
            self.retire(api)
        for f in self.scenario.faults:
            opts = dict(f)
            self.fail(opts.pop("path"), opts.pop("kind", None), **opts)
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.root_url = ""
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start serving; returns the v1 base URL ``http://127.0.0.1:PORT/v1``."""
        from daemon.simulator.http import serve

        self._stopping.clear()
        self._server, self._thread = serve(self, self.port)
        self.root_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.base_url = self.base_url_for("v1")
        return self.base_url

    def base_url_for(self, api: str) -> str:
        """``http://127.0.0.1:PORT/v1`` or ``.../v2`` (the version prefix included)."""
        if api not in ("v1", "v2"):
            raise ValueError(f"unknown REST API {api!r}; use v1 or v2")
        return f"{self.root_url}/{api}"

    @property
    def graphql_url(self) -> str:
        """``http://127.0.0.1:PORT/graphql``."""
        return f"{self.root_url}/graphql"

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
        for ``retry_after=``, ``delay`` for ``delay=``. Raises ValueError for an
        unknown kind or bad record.
        """
        if kind is None:
            kind = ("rate_limit" if "retry_after" in kw
                    else "delay" if "delay" in kw and "status" not in kw else "status")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {FAULT_KINDS}")
        if kind == "bad_record" and kw.get("record", "missing_amount") not in BAD_RECORDS:
            raise ValueError(f"unknown bad record {kw['record']!r}; choose from {BAD_RECORDS}")
        fault = Fault(path=path, kind=kind, times=times, **kw)
        with self.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def retire(self, api: str, retired: bool = True) -> None:
        """Make every route of ``api`` (``v1``, ``v2``, ``graphql``) answer 410 Gone
        (``retired=False`` brings it back). Raises ValueError for another name."""
        if api not in APIS:
            raise ValueError(f"unknown API {api!r}; choose from {APIS}")
        with self.lock:
            (self.retired.add if retired else self.retired.discard)(api)

    def set_rate_limit(self, policy: dict[str, int] | None) -> None:
        """Replace the v2 policy ({window: quota}; None = exempt); counts restart."""
        self.limiter.policy = policy

    def top_up(self, amount: float) -> float:
        """Add ``amount`` USD to the balance; returns the new balance."""
        with self.lock:
            self.scenario.balance.top_ups += float(amount)
            return self.balance()

    def pod(self, pod_id: str) -> PodSpec:
        """A pod (standalone or cluster member) by id; raises KeyError."""
        for p in self.scenario.all_pods():
            if p.id == pod_id:
                return p
        raise KeyError(pod_id)

    def stop_pod(self, pod_id: str) -> PodSpec:
        """Stop a pod now (as ``POST /pods/{id}/stop`` does): accrual halts at this instant."""
        with self.lock:
            pod = self.pod(pod_id)
            podlib.stop(pod, self.clock())
            return pod

    def start_pod(self, pod_id: str) -> PodSpec:
        """Start a stopped pod now; accrual resumes from this instant (a new run)."""
        with self.lock:
            pod = self.pod(pod_id)
            podlib.start(pod, self.clock())
            return pod

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self._faults:
                if path.startswith(f.path) and (f.method is None or f.method == method):
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f
        return None

    def set_gpu_util(self, pod_id: str, util: float) -> None:
        """From now on every GPU of the pod reports ``util`` percent."""
        with self.lock:
            self.pod(pod_id).gpu_util.append((self.clock(), float(util)))

    # ------------------------------------------------------------------ money
    def _meters(self) -> list[Seg]:
        sc = self.scenario
        segs: list[Seg] = []
        for p in sc.pods:
            run, stopped = p.meters()
            segs += run + stopped
        for e in sc.serverless:
            segs += e.meter()
        for v in sc.volumes:
            segs += v.meter()
        for c in sc.clusters:
            segs += c.meter()
        return segs + sc.public_endpoints_segs()

    def balance(self) -> float:
        """``balance.start`` + top-ups - everything accrued since the scenario loaded."""
        with self.lock:
            b = self.scenario.balance
            spent = accrued(self._meters(), self.scenario.loaded_at.timestamp(),
                            self.clock().timestamp())
            return b.start + b.top_ups - spent

    def _balance_at(self, t: float) -> float:
        b = self.scenario.balance
        return b.start + b.top_ups - accrued(self._meters(), self.scenario.loaded_at.timestamp(), t)

    def settle(self) -> None:
        """With ``balance.stop_at_zero``: once the balance is spent, stop every pod
        at the instant it reached $0 (found by bisection, so a clock that jumped
        past it still stops them there) and terminate those without a network volume."""
        with self.lock:
            if not self.scenario.balance.stop_at_zero:
                return
            hi = self.clock().timestamp()
            if self._balance_at(hi) > 0:
                return
            lo = self.scenario.loaded_at.timestamp()
            for _ in range(60):  # sub-millisecond after 60 halvings of any span we use
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if self._balance_at(mid) > 0 else (lo, mid)
            at = datetime.fromtimestamp(hi, UTC)
            for pod in self.scenario.pods:
                if pod.is_running and pod.running[-1][0] <= at:
                    podlib.apply(pod, "stop" if pod.network_volume else "terminate", at)

    def spend_per_hr(self) -> float:
        """USD/h billing right now across every resource."""
        with self.lock:
            return rate_at(self._meters(), self.clock().timestamp())

    # ------------------------------------------------------------------ dispatch
    def answer(self, method: str, path: str, query: Query, body: bytes,
               auth: str | None) -> tuple[str, Answer]:
        """(API name, answer) for one request; errors come back as answers."""
        api = api_of(path)
        headers: dict[str, str] = {}
        try:
            if api == "":
                raise Reply(404, f"no route {path}")
            if api in self.retired:
                raise Reply(410, f"RunPod has retired this API ({api}); use REST v2")
            if auth != f"Bearer {self.api_key}":
                raise Reply(401, "Unauthorized: missing or invalid API key")
            now = self.clock()
            if api == "v2":
                headers, retry = self.limiter.take(now)
                if retry is not None:
                    headers["Retry-After"] = str(retry)
                    raise Reply(429, "rate limit exceeded for the "
                                     f"{_exceeded(headers)} window")
            route = path[len(api) + 1:].rstrip("/")
            with self.lock:
                self.settle()
                if api == "v1":
                    ans = v1.handle(self, method, route, query, now)
                elif api == "v2":
                    ans = v2.handle(self, method, route, query, body=body, now=now)
                elif method == "POST":
                    ans = Answer(graphql.handle(self, body))
                else:
                    raise Reply(405, "GraphQL answers POST only")
        except Reply as r:
            data, ctype = error_body(api or "v1", r.status, r.detail, r.errors)
            ans = Answer(data, status=r.status, ctype=ctype)
        ans.headers.update(headers)
        return api, ans


def _exceeded(headers: dict[str, str]) -> str:
    for member in headers.get("RateLimit", "").split(", "):
        if ";r=0;" in member:
            return member.split(";")[0].strip('"')
    return "minute"


def encode(data: Any) -> bytes:
    """Body bytes of an answer's data (bytes pass through; None is empty).
    Compact UTF-8 JSON; NaN and infinities as ``json.dumps`` writes them (the
    faults send them on purpose)."""
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    return to_json(data, inf_nan_mode="constants")
