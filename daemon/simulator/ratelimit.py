"""v2 rate limits: fixed minute/hour/day windows counted on the simulator's clock.

Windows are aligned to multiples of their length in epoch seconds (a minute
window resets at :00). A request over any quota is refused with 429 and
``Retry-After`` = whole seconds until the latest exceeded window resets; a
refused request does not count. Headers follow RunPod's v2 notes (IETF
ratelimit-headers draft, structured-field lists)::

    RateLimit: "minute";r=599;t=48, "hour";r=29999;t=1848, "day";r=499999;t=35448
    RateLimit-Policy: "minute";q=600;w=60, "hour";q=30000;w=3600, "day";q=500000;w=86400
"""

from __future__ import annotations

import math
import threading
from datetime import datetime

WINDOWS = {"minute": 60, "hour": 3600, "day": 86400}


class RateLimiter:
    """Counts requests per window. ``policy`` None means exempt: no headers, no 429."""

    def __init__(self, policy: dict[str, int] | None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}
        self.policy = policy

    @property
    def policy(self) -> dict[str, int] | None:
        return self._policy

    @policy.setter
    def policy(self, policy: dict[str, int] | None) -> None:
        if policy is not None:
            bad = set(policy) - set(WINDOWS)
            if bad:
                raise ValueError(f"unknown rate-limit windows {sorted(bad)}; "
                                 "use minute, hour, day")
            policy = {w: int(policy[w]) for w in WINDOWS if w in policy}
        with self._lock:
            self._policy = policy
            self._counts.clear()

    def take(self, now: datetime) -> tuple[dict[str, str], int | None]:
        """Count one request at ``now``: (headers, None) or (headers, Retry-After seconds)."""
        with self._lock:
            policy = self._policy
            if policy is None:
                return {}, None
            t = now.timestamp()
            state: dict[str, tuple[int, int]] = {}
            for name in policy:
                w = WINDOWS[name]
                idx = math.floor(t / w)
                prev = self._counts.get(name)
                used = prev[1] if prev and prev[0] == idx else 0
                state[name] = (idx, used)
            over = [n for n in policy if state[n][1] >= policy[n]]
            if not over:
                for n in policy:
                    state[n] = (state[n][0], state[n][1] + 1)
            self._counts.update(state)

            def reset(n: str) -> int:
                w = WINDOWS[n]
                return max(1, math.ceil((state[n][0] + 1) * w - t))

            headers = {
                "RateLimit": ", ".join(
                    f'"{n}";r={max(0, policy[n] - state[n][1])};t={reset(n)}' for n in policy),
                "RateLimit-Policy": ", ".join(
                    f'"{n}";q={policy[n]};w={WINDOWS[n]}' for n in policy),
            }
            return headers, (max(reset(n) for n in over) if over else None)
