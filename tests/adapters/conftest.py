"""Shared setup of the notifier tests: a recording receiver on loopback and the
contract's example threshold alert (Slack and webhook tests send the same one)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from daemon.core.model import Alert, Finding, Group, InstanceStatus, Window
from daemon.core.payload import alert_from_finding
from tests.support.receiver import Receiver

WINDOW = Window(
    size="day",
    start=datetime(2026, 11, 24, tzinfo=UTC),
    end=datetime(2026, 11, 25, tzinfo=UTC),
    rolling=False,
)
FIRED = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)


def make_alert(group: Group | None = None, notifiers: Sequence[str] = ("ops",)) -> Alert:
    """The contract's example: h100-daily at 80.46% of $300, threshold 80."""
    status = InstanceStatus(
        account="research",
        budget="h100-daily",
        group=group or Group(gpu_type="NVIDIA H100 80GB HBM3"),
        window=WINDOW,
        spend=241.37,
        limit=300.0,
        forecast=331.02,
        thresholds=(80.0, 100.0),
        forecast_enabled=True,
    )
    finding = Finding(kind="threshold", status=status, threshold=80.0)
    return alert_from_finding(finding, notifiers, FIRED)


def block_text(body: object) -> str:
    """Every string inside a Slack message body or block list, for content checks."""
    out: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(body.get("blocks") if isinstance(body, dict) else body)
    return "\n".join(out)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
