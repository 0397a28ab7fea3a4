"""sd_notify(3) without a dependency: tell systemd we are ready, alive, reloading, stopping.

Every function is a no-op returning ``False`` when ``$NOTIFY_SOCKET`` is not
set (not started by systemd with ``Type=notify``, or in a container), so the
app can call them unconditionally. Errors sending are swallowed the same way:
a lost notification must never take the daemon down.

The daemon pings the watchdog (``watchdog()``) after each successful poll
cycle, so the unit's ``WatchdogSec=`` must be longer than the poll interval
plus the longest cycle (see ``deploy/systemd/runpod-budget.service``).
"""

from __future__ import annotations

import os
import socket
import time

__all__ = [
    "extend_timeout",
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]


def _address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]  # abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # vsock: and other transports are not supported


def notify(state: str) -> bool:
    """Send ``state`` (newline-separated ``KEY=VALUE`` assignments) to
    ``$NOTIFY_SOCKET``. True when the datagram was sent."""
    raw = os.environ.get("NOTIFY_SOCKET", "")
    if not raw:
        return False
    address = _address(raw)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """``READY=1``: startup (or a reload) is complete."""
    state = "READY=1"
    if status_text:
        state += "\n" + _status_line(status_text)
    return notify(state)


def watchdog() -> bool:
    """``WATCHDOG=1``: keep-alive ping for ``WatchdogSec=``."""
    return notify("WATCHDOG=1")


def _status_line(text: str) -> str:
    return "STATUS=" + " ".join(text.split())[:256]


def status(text: str) -> bool:
    """``STATUS=...``: one line shown by ``systemctl status`` (newlines folded)."""
    return notify(_status_line(text))


def stopping() -> bool:
    """``STOPPING=1``: shutdown has begun."""
    return notify("STOPPING=1")


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def reloading() -> bool:
    """``RELOADING=1`` with ``MONOTONIC_USEC`` (required by ``Type=notify-reload``,
    harmless with ``Type=notify``). Call ``ready()`` when the reload is done."""
    return notify(f"RELOADING=1\nMONOTONIC_USEC={_monotonic_usec()}")


def extend_timeout(seconds: float) -> bool:
    """``EXTEND_TIMEOUT_USEC``: ask for more time while starting or stopping."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")


def watchdog_interval() -> float | None:
    """``WatchdogSec=`` in seconds when the watchdog is enabled for this
    process (``$WATCHDOG_USEC``, and ``$WATCHDOG_PID`` naming us if set), else
    None. Ping at least twice per interval."""
    raw = os.environ.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000
