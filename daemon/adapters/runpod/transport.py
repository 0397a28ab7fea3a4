"""One HTTP transport for RunPod REST v1, v2 and GraphQL: retries, deadline, errors.

Every call either returns what its ``parse`` function made of the body or
raises :class:`daemon.core.ports.ApiError`:

================  ==================================================  =========  ========
reason            when                                                permanent  retried
================  ==================================================  =========  ========
``auth``          401: the API key is wrong or expired                yes        no
``forbidden``     403: the key lacks permission                       yes        no
``not_found``     404                                                 yes        no
``conflict``      409: the action is not valid now (v2 pod action)    yes        no
``gone``          410: RunPod retired this API (message says the fix) yes        no
``client``        any other 4xx, 1xx/3xx                              yes        no
``rate_limited``  429 (``Retry-After`` honoured, capped); or the      no         429: yes
                  ``RateLimit`` quota is spent past the deadline
``server``        5xx                                                 no         yes
``timeout``       connect/read timeout                                no         yes
``transport``     connection reset/cut, truncated body;               no         yes
                  connection refused                                             3 tries
``bad_body``      not JSON (garbage, an HTML page), wrong shape,      no         2 times
                  GraphQL ``errors``                                             (GraphQL
                                                                                 errors: no)
``too_large``     body over ``max_body_bytes`` (reading stops there)  no         no
``bad_record``    a record refused by :mod:`.parse`                   no         no
================  ==================================================  =========  ========

``bad_record`` and ``too_large`` are not permanent: an immediate retry would get
the same answer, but the next poll may not, so the daemon keeps running.

Retries run in ``stamina.retry_context`` within ``deadline`` seconds of the
call's start: each attempt's timeout is clipped to the time left, and a retry is
scheduled only if its wait still leaves 0.1 s before the deadline; a set
``cancel`` event (SIGTERM) stops retrying at once. Before each request the
``RateLimit`` state of the last answer is consulted: a used-up window is waited
out when that fits the deadline, otherwise the call fails fast (``rate_limited``).

Messages name the host (``RunPod GET /billing/pods at api.runpod.io: ...``);
the API key is only ever in the ``Authorization`` header.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import httpx
import stamina
import structlog

from daemon.adapters.runpod.errors import Attempt, Secret, check_status, install_retry_hook
from daemon.adapters.runpod.parse import BadAnswer
from daemon.adapters.runpod.ratelimit import RateLimits
from daemon.adapters.tls import client_context
from daemon.core.ports import ApiError

_MIN_ATTEMPT: Final = 0.1  # seconds an attempt gets at least, or it is not worth starting
log = structlog.get_logger("daemon.adapters.runpod")
T = TypeVar("T")
Params = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """One HTTP attempt, for metrics: ``path`` is the template (``/pods/{podId}``);
    ``status`` is None when no response arrived; ``error`` is an ApiError reason
    word, or None when the attempt succeeded; ``remaining`` is the rate-limit
    quota left per window after it (``(("hour", 2990), ("minute", 58))``)."""

    method: str
    path: str
    status: int | None
    elapsed: float
    error: str | None
    remaining: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    template: str
    path: str
    params: Params
    json: Any


def display_url(url: str) -> tuple[str, str]:
    """(base URL without credentials/query, ``host[:port]``): safe to print."""
    u = httpx.URL(url)
    host = u.host + (f":{u.port}" if u.port else "")
    return str(u.copy_with(username=None, password=None, query=None, fragment=None)), host


class Transport:
    """Sync httpx transport shared by the v1, v2 and GraphQL adapters.

    ``api`` names the API in logs (``v1``, ``v2``, ``graphql``); ``gone`` is the
    whole message of a 410. ``http`` lets callers share an ``httpx.Client``
    (never closed here). ``on_request`` gets one :class:`RequestInfo` per attempt.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        api: str,
        gone: str,
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
        connect_attempts: int = 3,
        cancel: threading.Event | None = None,
        rate_limits: RateLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("RunPod API key is empty")
        self._key = Secret(api_key)
        self.base_url, self.host = display_url(base_url.rstrip("/"))
        self._url = base_url.rstrip("/")
        self.api = api
        self.gone = gone
        self.timeout = timeout
        self.deadline = deadline
        self.max_body_bytes = max_body_bytes
        self.retry_after_cap = retry_after_cap
        self._on_request = on_request
        self._wait = (wait_initial, wait_max, wait_jitter)
        self._max_attempts = max_attempts
        self._bad_body_retries = bad_body_retries
        self._connect_attempts = connect_attempts
        self._cancel = cancel if cancel is not None else threading.Event()
        # clock/sleep drive the deadline and rate-limit pacing; tests pass the
        # simulator's clock so that a 48 s wait for a quota takes no real time
        self._clock = clock
        self._sleep = sleep if sleep is not None else self._cancel.wait
        self.rate_limits = rate_limits if rate_limits is not None else RateLimits(clock)
        self._own_http = http is None
        self._http = (
            http
            if http is not None
            else httpx.Client(follow_redirects=False, verify=client_context())
        )
        install_retry_hook()

    def __repr__(self) -> str:
        return f"Transport(api={self.api!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # ----------------------------------------------------------------- one call
    def call(
        self,
        method: str,
        template: str,
        path: str,
        *,
        params: Params = (),
        json: Any = None,
        parse: Callable[[bytearray], T],
    ) -> T:
        """Send ``method path`` (relative to the base URL) with retries; returns
        ``parse(body)`` of the first 2xx answer. ``template`` is the path as
        messages and metrics show it. Raises ``ApiError``."""
        deadline_at = self._clock() + self.deadline
        state = {"attempts": 0, "bad_body": 0, "connect": 0}
        ctx = f"RunPod {method} {template} at {self.host}"

        def should_retry(exc: Exception) -> bool | float:
            if not isinstance(exc, Attempt) or not exc.retry or self._cancel.is_set():
                return False  # permanent, or shutting down: report the failure now
            n = state["attempts"]
            if exc.reason == "bad_body":
                state["bad_body"] += 1
                if state["bad_body"] > self._bad_body_retries:
                    return False
            if exc.connect:
                state["connect"] += 1
                if state["connect"] >= self._connect_attempts:
                    return False  # nothing listens there: say so in seconds, not minutes
                wait = 0.5 * n
            elif exc.retry_after is not None:
                wait = min(exc.retry_after, self.retry_after_cap)
            else:
                initial, most, jitter = self._wait
                wait = min(most, initial * 2 ** (n - 1)) + random.uniform(0, jitter)
            if wait + _MIN_ATTEMPT > deadline_at - self._clock():
                return False  # no sleep may end past the deadline or leave no time to try
            log.info("runpod.retry", api=self.api, method=method, path=template, host=self.host,
                     status=exc.status, reason=exc.reason, attempt=n, wait=round(wait, 3),
                     retry_after=exc.retry_after)
            return wait

        try:
            for attempt in stamina.retry_context(
                on=should_retry, attempts=self._max_attempts, timeout=self.deadline,
            ):
                with attempt:
                    state["attempts"] += 1
                    return self._attempt(ctx, _Request(method, template, path, params, json),
                                         parse, deadline_at)
        except Attempt as e:
            log.warning("runpod.failed", api=self.api, method=method, path=template,
                        host=self.host, status=e.status, reason=e.reason,
                        attempts=state["attempts"])
            raise e.api_error(state["attempts"]) from None
        raise AssertionError("unreachable: stamina yields until success or raises")

    def _attempt(
        self, ctx: str, req: _Request, parse: Callable[[bytearray], T], deadline_at: float
    ) -> T:
        t0 = time.monotonic()
        status: int | None = None
        error: str | None = "transport"
        try:
            self._pace(ctx, deadline_at)
            left = max(0.001, min(self.timeout, deadline_at - self._clock()))
            request = self._http.build_request(
                req.method, self._url + req.path, params=tuple(req.params), json=req.json,
                timeout=left,
                headers={"Authorization": f"Bearer {self._key.reveal()}",
                         "Accept": "application/json"},
            )
            self.rate_limits.note_sent()
            response = self._send(request, ctx, left)
            status = response.status_code
            try:
                self.rate_limits.update(response.headers)
                body = self._read(response, ctx)
            finally:
                response.close()
            check_status(response, body, ctx, self._key.reveal(), self.gone)
            try:
                result = parse(body)
            except BadAnswer as e:
                raise Attempt(f"{ctx}: {e}", reason=e.reason, status=status,
                              retry=e.retry) from None
            error = None
            return result
        except Attempt as e:
            error = e.reason
            raise
        finally:
            if self._on_request is not None:
                remaining = tuple(sorted(self.rate_limits.remaining().items()))
                self._on_request(RequestInfo(req.method, req.template, status,
                                             time.monotonic() - t0, error, remaining))

    def _pace(self, ctx: str, deadline_at: float) -> None:
        """Wait out a used-up ``RateLimit`` window, or fail fast when that would
        pass the deadline (a 429 would only say the same, later)."""
        need = self.rate_limits.wait_needed()
        if need is None:
            return
        wait, window = need
        left = deadline_at - self._clock()
        if wait + _MIN_ATTEMPT > left:
            raise Attempt(f"{ctx}: the {window!r} rate-limit quota is used up for {wait:.0f} s "
                          f"more, past this call's deadline ({max(0.0, left):.0f} s left)",
                          reason="rate_limited", retry=False)
        log.info("runpod.paced", api=self.api, host=self.host, window=window,
                 wait=round(wait, 3))
        if self._sleep(wait) or self._cancel.is_set():
            raise Attempt(f"{ctx}: shutting down while waiting for the {window!r} rate limit",
                          reason="rate_limited", retry=False)

    def _send(self, request: httpx.Request, ctx: str, left: float) -> httpx.Response:
        try:
            return self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise Attempt(f"{ctx}: timed out after {left:.1f}s", reason="timeout",
                          retry=True) from None
        except httpx.ConnectError as e:
            # the OS reason (DNS, TLS, unreachable) helps; httpx puts no URL or header in it
            why = " ".join(str(e).split())[:120] or type(e).__name__
            what = "connection refused" if "refused" in why.lower() else (
                f"could not connect ({why})")
            raise Attempt(f"{ctx}: {what}", reason="transport", retry=True,
                          connect=True) from None
        except httpx.RequestError as e:
            raise Attempt(f"{ctx}: failed ({type(e).__name__})", reason="transport",
                          retry=True) from None

    def _read(self, response: httpx.Response, ctx: str) -> bytearray:
        """The body, read in chunks into one buffer; stops at ``max_body_bytes``."""
        cap = self.max_body_bytes
        too_large = Attempt(f"{ctx}: sent a body over {cap} bytes; refused",
                            reason="too_large", status=response.status_code, retry=False)
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise too_large
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                if len(body) + len(chunk) > cap:
                    raise too_large
                body += chunk
        except httpx.DecodingError:
            raise Attempt(f"{ctx}: sent an undecodable body", reason="bad_body",
                          status=response.status_code, retry=True) from None
        except httpx.TimeoutException:
            raise Attempt(f"{ctx}: timed out reading the body", reason="timeout",
                          status=response.status_code, retry=True) from None
        except httpx.TransportError as e:
            raise Attempt(f"{ctx}: body cut short ({type(e).__name__})", reason="transport",
                          status=response.status_code, retry=True) from None
        return body


def utc_param(t: datetime) -> str:
    """``2026-11-24T13:00:00Z``; naive datetimes are refused (ValueError)."""
    if t.tzinfo is None:
        raise ValueError("billing times must be timezone-aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




class Adapter:
    """What v1, v2 and GraphQL adapters share: the transport, a printable
    ``base_url`` and ``version``, a key-free repr, ``close``."""

    version: str = ""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.base_url = transport.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version!r}, base_url={self.base_url!r})"

    def rate_limit_remaining(self) -> dict[str, int]:
        """Last remaining request quota per window (empty until RunPod sent one)."""
        return self._t.rate_limits.remaining()

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Adapter", "ApiError", "RequestInfo", "Transport", "display_url", "utc_param"]
