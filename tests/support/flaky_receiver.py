"""A recording receiver that answers some POSTs 503 and timestamps every answer.

For chaos benchmarks that need to know *when* each webhook arrived and what it
was told::

    from tests.support.flaky_receiver import FlakyReceiver

    with FlakyReceiver(fail_rate=0.2, seed=1) as rx:
        url = rx.url + "/hook"
        ...
        for hit in rx.hits():                  # arrival order
            hit.alert_id, hit.status, hit.wall, hit.json

Only requests answered by the built-in default (no script queued, receiver not
``set_down``) are drawn: each fails with probability ``fail_rate`` (503), the
others get the usual ``200 ok``. Everything else behaves like
:class:`tests.support.receiver.Receiver`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from tests.support.receiver import Receiver, Recorded, Response


@dataclass(frozen=True)
class Hit:
    """One answered request: when it arrived (wall and monotonic), what it was told."""

    wall: float
    mono: float
    path: str
    alert_id: str | None  # the webhook-id header
    status: int
    json: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class FlakyReceiver(Receiver):
    """A :class:`Receiver` whose default answer is 503 with probability ``fail_rate``."""

    def __init__(self, fail_rate: float = 0.0, seed: int | None = None, **kw: Any) -> None:
        if not 0.0 <= fail_rate < 1.0:
            raise ValueError("fail_rate must be in [0, 1)")
        super().__init__(**kw)
        self.fail_rate = fail_rate
        self._rng = random.Random(seed)
        self._hits: list[Hit] = []

    def _default_for(self, path: str, rec: Recorded) -> Response:
        # Called under the receiver's lock, once per request it answers by default:
        # the place to draw the answer and note the arrival in one step.
        if self.fail_rate and self._rng.random() < self.fail_rate:
            resp: Response = (503, "flaky receiver says no", {})
        else:
            resp = super()._default_for(path, rec)
        self._hits.append(
            Hit(
                wall=time.time(),
                mono=time.monotonic(),
                path=path,
                alert_id=rec.headers.get("webhook-id"),
                status=resp[0],
                json=rec.json,
            )
        )
        return resp

    def __enter__(self) -> FlakyReceiver:
        self.start()
        return self

    def hits(self) -> list[Hit]:
        """Every request answered by default so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._hits)
