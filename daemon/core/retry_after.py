"""``Retry-After`` headers (RFC 9110 §10.2.3), read the same way for every peer."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an
    HTTP-date (relative to ``now``). None when absent, unreadable, NaN or
    infinite; never negative. Callers apply their own cap."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    try:
        secs = float(v)
    except ValueError:
        try:
            when = parsedate_to_datetime(v)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = (when - now).total_seconds()
    return max(0.0, secs) if math.isfinite(secs) else None
