"""The optional per-send hook every notifier offers, in one place."""

from __future__ import annotations

from collections.abc import Callable

from daemon.core.model import Alert
from daemon.core.ports import DeliveryError

OnResult = Callable[[str, Alert, DeliveryError | None], None]
"""Called after every ``send`` with (notifier name, alert, error or None).
It runs on the sending thread and must not raise (metrics, logging)."""


def send_and_report(
    name: str, alert: Alert, send: Callable[[Alert], None], on_result: OnResult | None
) -> None:
    """Run ``send(alert)`` and tell ``on_result`` how it went.

    Returns None on success; re-raises the sender's ``DeliveryError``.
    """
    try:
        send(alert)
    except DeliveryError as err:
        if on_result is not None:
            on_result(name, alert, err)
        raise
    if on_result is not None:
        on_result(name, alert, None)
