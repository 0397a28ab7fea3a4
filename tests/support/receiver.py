"""A recording HTTP receiver on loopback for end-to-end tests of notifiers.

It plays a generic webhook endpoint, a Slack incoming webhook and the Slack
Web API at once, records every request, and answers from a per-path script::

    from tests.support.receiver import Receiver

    with Receiver() as rx:                      # binds 127.0.0.1 on a free port
        url = rx.url + "/hook"                  # http://127.0.0.1:PORT/hook
        rx.respond("/hook", [(503, "down", {}), (200, "ok", {})])
        ...                                     # code under test POSTs to url
        reqs = rx.wait_for(2, timeout=5)        # the first 2 requests, or AssertionError
        assert reqs[1].json["kind"] == "threshold"
        assert reqs[1].headers["webhook-id"] == ...   # header names are lower-case

Responses
    ``respond(path, [(status, body, headers), ...], default=None)`` queues
    responses for ``path`` (the request path without the query string); when
    the queue is empty the path's ``default`` answers, else the built-in
    default below. ``body`` may be ``str``, ``bytes`` or a ``dict``/``list``
    (sent as JSON with ``content-type: application/json``). A status of
    ``CLOSE`` (0) drops the connection without an answer. ``delay(path, s)``
    waits ``s`` seconds before answering (for client timeouts; the wait ends
    early when the receiver stops).

Built-in defaults
    * ``/services/...`` (Slack incoming webhook): ``200 ok``
    * ``/api/chat.postMessage``: ``200 {"ok": true, "channel": <channel>, "ts": ...}``
    * other ``/api/<method>``: ``200 {"ok": true}``
    * anything else: ``200 ok``

    ``slack_error(code, status=200)`` builds a Slack Web API error response,
    e.g. ``rx.respond("/api/chat.postMessage", [slack_error("channel_not_found")])``.

Outages
    ``set_down(True)`` answers ``503`` to everything (``mode="close"``: drops
    every connection instead) until ``set_down(False)``. Requests are recorded
    either way.

Inspection
    ``requests`` (a copy, in arrival order), ``requests_to(path)``,
    ``wait_for(n, timeout=5.0, path=None)``, ``clear()``. Each ``Recorded`` has
    ``method``, ``path``, ``query``, ``headers`` (lower-case names), ``body``
    (bytes), ``json`` (parsed body or None) and ``text``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CLOSE = 0
Body = str | bytes | dict[str, Any] | list[Any]
Response = tuple[int, Body, dict[str, str]]


def slack_error(code: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A Slack Web API error answer: ``{"ok": false, "error": code}``."""
    return (status, {"ok": False, "error": code}, dict(headers or {}))


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that gave up (timeout tests) makes the late answer fail: expected
        pass


class Receiver:
    """See the module doc. Thread-safe; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Condition()
        self._requests: list[Recorded] = []
        self._scripts: dict[str, deque[Response]] = {}
        self._defaults: dict[str, Response] = {}
        self._delays: dict[str, float] = {}
        self._down: str | None = None
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                pass

            def _handle(self) -> None:
                receiver._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self._server = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"

    def start(self) -> Receiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ programming

    def respond(
        self, path: str, responses: Sequence[Response], default: Response | None = None
    ) -> None:
        """Queue ``responses`` for ``path`` (appended to what is queued)."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(responses)
            if default is not None:
                self._defaults[path] = default

    def delay(self, path: str, seconds: float) -> None:
        with self._lock:
            self._delays[path] = seconds

    def set_down(self, down: bool, mode: str = "503") -> None:
        """``mode``: ``"503"`` answers 503 to everything; ``"close"`` drops connections."""
        if mode not in ("503", "close"):
            raise ValueError("mode is '503' or 'close'")
        with self._lock:
            self._down = mode if down else None

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def wait_for(self, n: int, timeout: float = 5.0, path: str | None = None) -> list[Recorded]:
        """Block until at least ``n`` requests (to ``path`` if given) arrived;
        return them all. ``AssertionError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [r for r in self._requests if path is None or r.path == path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} requests, got {len(got)}: {got!r}")
                self._lock.wait(left)

    # ------------------------------------------------------------------ serving

    def _default_for(self, path: str, rec: Recorded) -> Response:
        if path.startswith("/api/"):
            if path == "/api/chat.postMessage":
                body = rec.json if isinstance(rec.json, dict) else {}
                return (
                    200,
                    {
                        "ok": True,
                        "channel": body.get("channel", "C0000"),
                        "ts": "1764000000.000100",
                    },
                    {},
                )
            return (200, {"ok": True}, {})
        return (200, "ok", {})

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        rec = Recorded(
            method=h.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        with self._lock:
            self._requests.append(rec)
            self._lock.notify_all()
            down = self._down
            script = self._scripts.get(rec.path)
            if down == "503":
                resp: Response = (503, "receiver is down", {})
            elif down == "close":
                resp = (CLOSE, "", {})
            elif script:
                resp = script.popleft()
            else:
                resp = self._defaults.get(rec.path) or self._default_for(rec.path, rec)
            wait = self._delays.get(rec.path, 0.0)
        if wait > 0 and self._stopping.wait(wait):
            h.close_connection = True
            return
        status, payload, headers = resp
        if status == CLOSE:
            h.close_connection = True
            return
        ctype = "text/plain; charset=utf-8"
        if isinstance(payload, dict | list):
            data = json.dumps(payload).encode()
            ctype = "application/json; charset=utf-8"
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = payload
        h.send_response(status)
        lower = {k.lower() for k in headers}
        if "content-type" not in lower:
            h.send_header("Content-Type", ctype)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.wfile.flush()
