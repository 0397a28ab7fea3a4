"""Console notifier: prints each alert as one or two readable lines (``demo``)."""

from __future__ import annotations

import sys
from typing import TextIO
from zoneinfo import ZoneInfo

from daemon.adapters.console_text import console_text
from daemon.core.model import Alert
from daemon.core.ports import DeliveryError


class ConsoleSender:
    """``Notifier`` writing ``console_text(payload, zone)`` to ``stream``
    (default: the current ``sys.stdout`` at send time), flushed after each
    alert. People read it, so it wants summaries; it never disables itself."""

    wants_summary = True
    send_timeout = 5.0  # a write to a terminal or pipe

    def __init__(
        self, name: str, stream: TextIO | None = None, *, zone: ZoneInfo | None = None
    ) -> None:
        self.name = name
        self._stream = stream
        self._zone = zone or ZoneInfo("UTC")

    def __repr__(self) -> str:
        return f"ConsoleSender(name={self.name!r})"

    @property
    def disabled_reason(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing to close: the stream belongs to the caller."""

    def send(self, alert: Alert) -> None:
        """Write the alert. Returns None; raises ``DeliveryError(permanent=False)``
        when the stream cannot be written (closed, broken pipe)."""
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(console_text(alert.payload, self._zone) + "\n")
            stream.flush()
        except (OSError, ValueError) as e:  # closed stream, broken pipe
            raise DeliveryError.of(
                "console", self.name, f"cannot write ({type(e).__name__})", permanent=False
            ) from None
