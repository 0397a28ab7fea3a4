from datetime import UTC, datetime

import pytest

from daemon.core.retry_after import retry_after_seconds

NOW = datetime(2026, 11, 24, 14, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Tue, 24 Nov 2026 14:01:30 GMT", 90.0),
        ("Tue, 24 Nov 2026 13:00:00 GMT", 0.0),  # in the past: no wait, not negative
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected
