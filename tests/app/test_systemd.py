"""sd_notify over a real unix datagram socket."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.app import systemd


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_unset_socket_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    assert systemd.watchdog() is False


def test_ready_watchdog_status_stopping(notify_socket: socket.socket) -> None:
    assert systemd.ready() is True
    assert _recv(notify_socket) == "READY=1"
    assert systemd.watchdog() is True
    assert _recv(notify_socket) == "WATCHDOG=1"
    assert systemd.status("polling\nok  at 12:00") is True
    assert _recv(notify_socket) == "STATUS=polling ok at 12:00"
    assert systemd.stopping() is True
    assert _recv(notify_socket) == "STOPPING=1"


def test_ready_with_status(notify_socket: socket.socket) -> None:
    assert systemd.ready("started")
    assert _recv(notify_socket) == "READY=1\nSTATUS=started"


def test_reloading_carries_monotonic_usec(notify_socket: socket.socket) -> None:
    import time

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading()
    lines = _recv(notify_socket).split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert int(value) >= before


def test_extend_timeout(notify_socket: socket.socket) -> None:
    assert systemd.extend_timeout(1.5)
    assert _recv(notify_socket) == "EXTEND_TIMEOUT_USEC=1500000"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"runpod-budget-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("\0" + name)
    except OSError as e:  # pragma: no cover - kernels without abstract sockets
        sock.close()
        pytest.skip(f"abstract unix sockets unavailable: {e}")
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert systemd.ready()
        assert _recv(sock) == "READY=1"
    finally:
        sock.close()


def test_missing_socket_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.ready() is False


def test_unsupported_transport_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.ready() is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "900000000")
    assert systemd.watchdog_interval() == 900.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 900.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", "junk")
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "abc", ""):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert systemd.watchdog_interval() is None, bad
