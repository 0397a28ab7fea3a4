"""Console notifier: prints each alert as one or two readable lines (``demo``)."""

from __future__ import annotations

import sys
from typing import TextIO

from daemon.adapters.reporting import OnResult, send_and_report
from daemon.core.model import Alert
from daemon.core.ports import DeliveryError
from daemon.core.render import console_text


class ConsoleSender:
    """``Notifier`` writing ``console_text(payload)`` to ``stream`` (default:
    the current ``sys.stdout`` at send time), flushed after each alert."""

    def __init__(
        self, name: str, stream: TextIO | None = None, *, on_result: OnResult | None = None
    ) -> None:
        self.name = name
        self._stream = stream
        self._on_result = on_result

    def __repr__(self) -> str:
        return f"ConsoleSender(name={self.name!r})"

    def send(self, alert: Alert) -> None:
        send_and_report(self.name, alert, self._send, self._on_result)

    def _send(self, alert: Alert) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(console_text(alert.payload) + "\n")
            stream.flush()
        except (OSError, ValueError) as e:  # closed stream, broken pipe
            raise DeliveryError.of(
                "console", self.name, f"cannot write ({type(e).__name__})", permanent=False
            ) from None
