"""/healthz, /readyz and /metrics on a small stdlib HTTP server in a daemon thread.

* ``/healthz``: 200 ``ok`` while the process serves requests (liveness).
* ``/readyz``: 200 when the last poll cycle succeeded and the last success is
  recent (within ``2 × poll interval + grace``), else 503; both with a short
  JSON body ``{"ready": ..., "reason": ...}`` (readiness).
* ``/metrics``: the Prometheus text exposition of ``Metrics``.
* anything else: 404.

Requests are not logged (a scrape every 15 s would drown the journal). The
default listen address is loopback; in a container or pod it must be
``0.0.0.0:9464`` (config ``http.listen``) for Prometheus to reach it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from daemon.app.logging import redact_text
from daemon.app.metrics import CONTENT_TYPE, Metrics

__all__ = ["DEFAULT_LISTEN", "HealthServer", "HealthState", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:9464"
_MAX_REASON = 200


Instant = datetime | float


def _ts(t: Instant) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


@dataclass(slots=True)
class HealthState:
    """The loop's health, updated by the loop (``record``) and read by the HTTP
    thread (``ready``). Times are aware ``datetime``s or Unix seconds."""

    started_at: Instant
    poll_interval_seconds: float
    last_success_at: Instant | None = None
    last_cycle_ok: bool = False
    last_error: str | None = None
    grace_seconds: float = 60.0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @property
    def max_age_seconds(self) -> float:
        """How old the last success may be while ready: 2 × poll interval + grace."""
        return 2 * self.poll_interval_seconds + self.grace_seconds

    def record(self, now: Instant, *, ok: bool, error: str | None = None) -> None:
        """A cycle ended at ``now``: successful, or failed with ``error``."""
        with self._lock:
            self.last_cycle_ok = ok
            if ok:
                self.last_success_at = now
                self.last_error = None
            else:
                self.last_error = error or "unknown error"

    def ready(self, now: Instant) -> tuple[bool, str]:
        """(ready, short reason)."""
        with self._lock:
            last_success, ok, error = self.last_success_at, self.last_cycle_ok, self.last_error
            max_age = self.max_age_seconds
        if last_success is None:
            if error:
                return False, _short(f"no successful cycle yet; last error: {error}")
            return False, "no successful cycle yet"
        if not ok:
            return False, _short(f"last cycle failed: {error or 'unknown error'}")
        age = _ts(now) - _ts(last_success)
        if age > max_age:
            return False, f"last successful cycle {age:.0f}s ago (more than {max_age:.0f}s)"
        return True, "ok"


def _short(text: str) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::]:9464"`` / ``"0.0.0.0:0"`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        health: Callable[[], HealthState],
        clock: Callable[[], float],
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        self.health = health
        self.clock = clock
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a stuck client must not hold a thread forever
    server_version = "runpod-budget"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """No request logging."""

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8", head)
        elif path == "/readyz":
            self._readyz(head)
        elif path == "/metrics":
            try:
                body = self.server.metrics.render()
            except Exception:  # noqa: BLE001 - report, never kill the server thread
                self._send(500, b"metrics unavailable\n", "text/plain; charset=utf-8", head)
                return
            self._send(200, body, CONTENT_TYPE, head)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", head)

    def _readyz(self, head: bool) -> None:
        try:
            state = self.server.health()
            ok, reason = state.ready(self.server.clock())
        except Exception as exc:  # noqa: BLE001
            ok, reason = False, _short(f"health check failed: {type(exc).__name__}")
        body = json.dumps({"ready": ok, "reason": reason}).encode() + b"\n"
        self._send(200 if ok else 503, body, "application/json", head)

    def _send(self, code: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)


class HealthServer:
    """The health/metrics endpoint. ``start()`` binds (raising ``OSError`` when
    the address is taken) and serves in a daemon thread; ``stop()`` closes it."""

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], HealthState],
        listen: str = DEFAULT_LISTEN,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._address = parse_listen(listen)
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when listening on port 0)."""
        return self._bound_port if self._bound_port is not None else self._address[1]

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server(self._address, self._metrics, self._health, self._clock)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="runpod-budget-http",
            daemon=True,
        )
        self._server, self._thread = server, thread
        self._bound_port = int(server.server_address[1])
        thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
