"""HealthServer over loopback, and HealthState.ready."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from daemon.app import logging as applog
from daemon.app.http import HealthServer, HealthState, parse_listen
from daemon.app.metrics import Metrics

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t.timestamp()


@pytest.fixture
def setup() -> Iterator[tuple[HealthServer, HealthState, Metrics, Clock]]:
    metrics = Metrics(version="0.0.0-test")
    state = HealthState(started_at=T0, poll_interval_seconds=300)
    clock = Clock(T0)
    server = HealthServer(metrics, lambda: state, listen="127.0.0.1:0", clock=clock)
    server.start()
    try:
        yield server, state, metrics, clock
    finally:
        server.stop()


def get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_ephemeral_port_is_bound(setup: tuple[HealthServer, HealthState, Metrics, Clock]) -> None:
    server, *_ = setup
    assert server.port > 0
    assert server.running


def test_healthz(setup: tuple[HealthServer, HealthState, Metrics, Clock]) -> None:
    server, *_ = setup
    code, headers, body = get(server, "/healthz")
    assert code == 200
    assert body == b"ok\n"
    assert headers["content-type"].startswith("text/plain")


def test_readyz_before_and_after_first_success(
    setup: tuple[HealthServer, HealthState, Metrics, Clock],
) -> None:
    server, state, _, clock = setup
    code, headers, body = get(server, "/readyz")
    assert code == 503
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"ready": False, "reason": "no successful cycle yet"}

    clock.t = T0 + timedelta(minutes=1)
    state.record(clock.t, ok=True)
    code, _, body = get(server, "/readyz")
    assert code == 200
    assert json.loads(body) == {"ready": True, "reason": "ok"}


def test_readyz_after_failure_and_when_stale(
    setup: tuple[HealthServer, HealthState, Metrics, Clock],
) -> None:
    server, state, _, clock = setup
    state.record(T0, ok=True)
    state.record(T0 + timedelta(minutes=5), ok=False, error="research: HTTP 503")
    code, _, body = get(server, "/readyz")
    assert code == 503
    assert json.loads(body)["reason"] == "last cycle failed: research: HTTP 503"

    state.record(T0 + timedelta(minutes=10), ok=True)
    # 2 × 300 s + 60 s grace = 660 s allowed
    clock.t = T0 + timedelta(minutes=10, seconds=660)
    assert get(server, "/readyz")[0] == 200
    clock.t = T0 + timedelta(minutes=10, seconds=661)
    code, _, body = get(server, "/readyz")
    assert code == 503
    assert "ago" in json.loads(body)["reason"]


def test_readyz_reason_is_redacted(setup: tuple[HealthServer, HealthState, Metrics, Clock]) -> None:
    server, state, _, _ = setup
    secret = "rpa_readyz_secret_key"
    applog.register_secret(secret)
    try:
        state.record(T0, ok=False, error=f"401 for key {secret}")
        code, _, body = get(server, "/readyz")
    finally:
        applog.clear_secrets()
    assert code == 503
    assert secret.encode() not in body
    assert "***" in json.loads(body)["reason"]


def test_metrics_endpoint(setup: tuple[HealthServer, HealthState, Metrics, Clock]) -> None:
    server, _, metrics, _ = setup
    metrics.poll(ok=True, at=1_700_000_000.0)
    code, headers, body = get(server, "/metrics")
    assert code == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert 'runpod_budget_polls_total{result="ok"} 1.0' in text.splitlines()
    assert "runpod_budget_last_successful_poll_timestamp_seconds 1.7e+09" in text.splitlines()


def test_unknown_path_is_404(setup: tuple[HealthServer, HealthState, Metrics, Clock]) -> None:
    server, *_ = setup
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404


def test_head_has_no_body(setup: tuple[HealthServer, HealthState, Metrics, Clock]) -> None:
    server, *_ = setup
    code, headers, body = get(server, "/healthz", method="HEAD")
    assert code == 200
    assert body == b""
    assert headers["content-length"] == "3"


def test_broken_health_callable_gives_503() -> None:
    def broken() -> HealthState:
        raise RuntimeError("boom")

    server = HealthServer(Metrics(version="x"), broken, listen="127.0.0.1:0")
    with server:
        code, _, body = get(server, "/readyz")
    assert code == 503
    assert json.loads(body)["reason"] == "health check failed: RuntimeError"


def test_no_request_logging(
    setup: tuple[HealthServer, HealthState, Metrics, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    server, *_ = setup
    get(server, "/healthz")
    get(server, "/nope")
    captured = capsys.readouterr()
    assert "GET" not in captured.err
    assert "GET" not in captured.out


def test_stop_closes_the_port() -> None:
    server = HealthServer(
        Metrics(version="x"), lambda: HealthState(0.0, 60.0), listen="127.0.0.1:0"
    )
    server.start()
    port = server.port
    server.stop()
    assert not server.running
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")


def test_ready_with_float_times() -> None:
    s = HealthState(started_at=0.0, poll_interval_seconds=10.0, grace_seconds=5.0)
    assert s.ready(1.0) == (False, "no successful cycle yet")
    s.record(100.0, ok=True)
    assert s.ready(125.0) == (True, "ok")
    assert s.ready(126.0)[0] is False
    s.record(130.0, ok=False, error="x" * 500)
    ok, reason = s.ready(131.0)
    assert ok is False
    assert len(reason) <= 200


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", ":9464", "host:", "host:99999", "host:abc"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_ipv6_loopback() -> None:
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 support in this Python")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError as e:
        pytest.skip(f"IPv6 loopback unavailable: {e}")
    server = HealthServer(Metrics(version="x"), lambda: HealthState(0.0, 60.0), listen="[::1]:0")
    with server:
        conn = http.client.HTTPConnection("::1", server.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
