"""The HTTP side of the simulator: a threaded server on 127.0.0.1 and fault delivery."""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from daemon.simulator.faults import Fault, api_of, apply, huge_frame, spoil
from daemon.simulator.wire import Answer

if TYPE_CHECKING:
    from daemon.simulator.server import Simulator

#: fault kinds that stand for a proxy in front of the API: they answer before
#: authentication and routing (and so never count against a rate limit)
PROXY_KINDS = ("status", "rate_limit", "html", "garbage")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that hang up early (timeouts, body caps) are part of the tests
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def serve(sim: Simulator, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving ``sim`` on 127.0.0.1:``port`` (0 picks one) in a daemon thread."""
    handler = type("Handler", (_Handler,), {"sim": sim})
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              name="runpod-simulator", daemon=True)
    thread.start()
    return server, thread


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections must not pin threads forever

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests own stderr
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body are two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET", b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve("POST", self.rfile.read(length) if length else b"")

    def _serve(self, method: str, body: bytes) -> None:
        from daemon.simulator.server import RequestRecord, encode

        sim = self.sim
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        path = url.path
        api = api_of(path)
        fault = sim._take_fault(method, path)
        if fault and fault.delay and sim._stopping.wait(fault.delay):
            self.close_connection = True
            return
        if fault and fault.kind == "huge":
            self._send_huge(method, path, query, fault, api)
            return
        ans = Answer(b"")
        if not (fault and fault.kind in PROXY_KINDS):
            api, ans = sim.answer(method, path, query, body, self.headers.get("Authorization"))
            if fault and fault.kind == "bad_record" and ans.status == 200:
                data = json.loads(ans.data) if isinstance(ans.data, bytes) else ans.data
                ans.data = spoil(data, fault.record, api, ans.range_end)
        status, data, ctype, extra = ans.status, encode(ans.data), ans.ctype, dict(ans.headers)
        if fault:
            status, data, ctype, more = apply(fault, api or "v1", status, data, ctype)
            extra.update(more)
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", ctype)
        for k, v in extra.items():
            self.send_header(k, v)
        sent = data
        if fault and fault.kind == "truncated":
            self.send_header("Content-Length", str(len(data) + 1000))
            sent = data[: len(data) // 2]
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(data)))
        # logged before the write so that a client holding the answer sees the entry
        with sim.lock:
            sim.requests.append(RequestRecord(method, path, query, status, len(sent),
                                              sim.clock()))
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()

    def _send_huge(self, method: str, path: str, query: dict[str, list[str]], f: Fault,
                   api: str) -> None:
        from daemon.simulator.server import RequestRecord

        head, tail = huge_frame(api)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if f.declare_length:
            self.send_header("Content-Length", str(f.size))
        else:
            self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        rec = RequestRecord(method, path, query, 200, 0, self.sim.clock())
        with self.sim.lock:
            self.sim.requests.append(rec)
        chunk = b" " * 65536
        try:
            self.wfile.write(head)
            rec.bytes = len(head)
            while rec.bytes < f.size - len(tail):
                n = min(len(chunk), f.size - len(tail) - rec.bytes)
                self.wfile.write(chunk[:n])
                rec.bytes += n
            self.wfile.write(tail)
            rec.bytes += len(tail)
        except OSError:  # the client stopped reading at its cap: that is the point
            pass
