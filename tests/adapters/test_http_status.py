"""The one HTTP status classifier shared by the Slack and webhook notifiers."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from daemon.adapters.http_status import classify_status, header, retry_after_seconds

NOW = datetime(2026, 11, 24, 14, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "permanent", "retry_after", "word"),
    [
        (429, False, 17.0, "rate limited"),
        (408, False, 17.0, "timeout"),
        (500, False, 17.0, "server error"),
        (503, False, 17.0, "server error"),
        (400, True, None, "rejected"),
        (404, True, None, "rejected"),
        (410, True, None, "gone"),
        (302, True, None, "redirect"),
        (200, False, 17.0, "unexpected response"),
    ],
)
def test_status_classes(status: int, permanent: bool, retry_after: float | None, word: str) -> None:
    c = classify_status(status, retry_after="17", now=NOW)
    assert c.permanent is permanent
    assert c.retry_after == retry_after  # only a transient failure waits
    assert word in c.what
    assert f"HTTP {status}" in c.what
    assert c.gone is (status == 410)


def test_retry_after_forms_and_cap() -> None:
    assert (
        classify_status(429, retry_after="Tue, 24 Nov 2026 14:01:30 GMT", now=NOW).retry_after
        == 90.0
    )
    assert classify_status(429, retry_after="soon", now=NOW).retry_after is None
    assert classify_status(503, now=NOW).retry_after is None
    assert retry_after_seconds("999999999", NOW) == 24 * 3600.0
    assert retry_after_seconds("Tue, 24 Nov 2026 13:00:00 GMT", NOW) == 0.0


def test_code_goes_into_the_label() -> None:
    assert "HTTP 404, channel_not_found" in classify_status(404, code="channel_not_found").what


def test_header_lookup_any_case_and_shape() -> None:
    assert header({"Retry-After": ["5", "6"]}, "retry-after") == "5"
    assert header({"retry-after": "7"}, "Retry-After") == "7"
    assert header({"retry-after": []}, "retry-after") is None
    assert header(None, "retry-after") is None


def test_slack_alone_loads_neither_httpx_nor_the_webhook_signer() -> None:
    code = (
        "import sys, daemon.adapters.slack;"
        "print(sorted(m for m in ('httpx', 'standardwebhooks', 'daemon.adapters.webhook')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
