"""RunPod's ``RateLimit`` header (v2): read it on every answer, pace the next request.

RunPod v2 sends, on every authenticated answer, a structured-field list with one
member per window, e.g. ``"minute";r=0;t=12, "hour";r=2800;t=1812`` (``r``
requests remaining, ``t`` seconds until the window resets). A client that reads
it can wait for the reset instead of provoking a 429. ``RateLimit-Policy``
(``q`` quota, ``w`` window seconds) is kept for display only.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# one list member: a token or quoted string, then ;key=value parameters
_MEMBER = re.compile(r'\s*(?:"(?P<q>[^"\\]*)"|(?P<t>[A-Za-z*][\w:/.*-]*))(?P<params>(?:;[^,]*)?)')
_PARAM = re.compile(r";\s*(?P<k>[a-z*][a-z0-9_.*-]*)(?:=(?P<v>\"[^\"]*\"|[^;,\s]*))?")


def parse_sf_list(value: str) -> dict[str, dict[str, str]]:
    """``"minute";r=0;t=12, "hour";r=2800`` -> ``{"minute": {"r": "0", "t": "12"}, ...}``.

    Lenient on purpose: an unreadable member is skipped (the header is advisory;
    a bad one must not fail a billing call)."""
    out: dict[str, dict[str, str]] = {}
    for part in value.split(","):
        m = _MEMBER.match(part)
        if not m:
            continue
        name = m.group("q") if m.group("q") is not None else m.group("t")
        params = {p.group("k"): (p.group("v") or "?1").strip('"')
                  for p in _PARAM.finditer(m.group("params"))}
        out[name] = params
    return out


def _int(v: str | None) -> int | None:
    if v is None or not v.lstrip("-").isdigit():
        return None
    return int(v)


@dataclass(frozen=True, slots=True)
class Window:
    """One rate-limit window as last reported: ``remaining`` requests until
    ``resets_at`` (monotonic seconds); ``quota``/``length`` from the policy."""

    name: str
    remaining: int
    resets_at: float
    quota: int | None = None
    length: int | None = None


class RateLimits:
    """The last ``RateLimit`` state of one API key, shared by every call of a
    transport (thread-safe). ``wait_needed`` says how long to wait before the
    next request so that it does not get a 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, Window] = {}
        self._policy: dict[str, tuple[int | None, int | None]] = {}

    def update(self, headers: Mapping[str, str]) -> None:
        """Read ``RateLimit`` / ``RateLimit-Policy`` of one answer (absent: no change)."""
        now = self._clock()
        policy = headers.get("RateLimit-Policy")
        live = headers.get("RateLimit")
        with self._lock:
            if policy:
                for name, p in parse_sf_list(policy).items():
                    self._policy[name] = (_int(p.get("q")), _int(p.get("w")))
            if live:
                for name, p in parse_sf_list(live).items():
                    r, t = _int(p.get("r")), _int(p.get("t"))
                    if r is None:
                        continue
                    q, w = self._policy.get(name, (None, None))
                    self._windows[name] = Window(name, r, now + max(0, t or 0), q, w)

    def note_sent(self) -> None:
        """One request is going out: count it against every live window, so that
        concurrent calls do not all spend the last remaining request."""
        with self._lock:
            for name, w in self._windows.items():
                if w.remaining > 0:
                    self._windows[name] = Window(name, w.remaining - 1, w.resets_at,
                                                 w.quota, w.length)

    def wait_needed(self) -> tuple[float, str] | None:
        """(seconds, window name) to wait before the next request, or None.

        A window with nothing left blocks until it resets; a window whose reset
        time passed is taken as refilled."""
        now = self._clock()
        worst: tuple[float, str] | None = None
        with self._lock:
            for w in self._windows.values():
                if w.remaining <= 0 and w.resets_at > now:
                    wait = w.resets_at - now
                    if worst is None or wait > worst[0]:
                        worst = (wait, w.name)
        return worst

    def remaining(self) -> dict[str, int]:
        """Last remaining quota per window (``{"minute": 58, "hour": 2990}``), for
        a Prometheus gauge; empty until an answer carried ``RateLimit``."""
        with self._lock:
            return {name: w.remaining for name, w in self._windows.items()}
