"""One reading of an HTTP answer for every notifier: can a retry help, and when.

Slack (incoming webhooks and the Web API) and generic webhooks share it; each
adds only what is its own (Slack's error codes; a webhook disabling itself on
410). No HTTP client is imported here, so a Slack-only daemon never loads
httpx or the webhook signer.

=========================  =========  =============================
status                     permanent  note
=========================  =========  =============================
2xx (not accepted)         no         e.g. 200 with an error body
3xx                        yes        redirects are never followed
408, 429, 5xx              no         ``Retry-After`` honoured
410                        yes        ``gone``: the endpoint is gone
other 4xx                  yes
=========================  =========  =============================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from daemon.core.retry_after import retry_after_seconds as _parse

#: a longer ``Retry-After`` is read as this (the outbox backs off at most an hour anyway)
MAX_RETRY_AFTER = 24 * 3600.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` (seconds or an HTTP-date) as seconds from ``now``, capped
    at a day; None when absent or unreadable."""
    secs = _parse(value, now or datetime.now(UTC))
    return None if secs is None else min(secs, MAX_RETRY_AFTER)


def header(headers: Mapping[str, object] | None, name: str) -> str | None:
    """A header's value whatever the mapping's case or shape (slack-sdk gives
    lists of values); the first value when there are several."""
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            first = (v[0] if v else None) if isinstance(v, list | tuple) else v
            return None if first is None else str(first)
    return None


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """How to treat a non-success answer. ``what`` is secret-free text for a
    ``DeliveryError`` (it never contains the server's body)."""

    status: int
    permanent: bool
    retry_after: float | None
    what: str

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


def classify_status(
    status: int,
    *,
    retry_after: str | None = None,
    code: str | None = None,
    now: datetime | None = None,
) -> HttpFailure:
    """Classify a non-success HTTP status (see the module table).

    ``retry_after`` is the raw ``Retry-After`` header, kept for transient
    failures only; ``code`` is a short machine word from the body (a Slack
    error code) added to the label. Returns an ``HttpFailure``; never raises."""
    label = f"HTTP {status}" + (f", {code}" if code else "")
    wait = retry_after_seconds(retry_after, now)

    def fail(what: str, permanent: bool) -> HttpFailure:
        return HttpFailure(status, permanent, None if permanent else wait, what)

    if 300 <= status < 400:
        return fail(
            f"the endpoint redirected ({label}); redirects are not followed, "
            "set the URL to the final address",
            True,
        )
    if status == 429:
        return fail(f"rate limited ({label})", False)
    if status == 408:
        return fail(f"request timeout ({label})", False)
    if status >= 500:
        return fail(f"server error ({label})", False)
    if status == 410:
        return fail(f"gone ({label})", True)
    if 400 <= status < 500:
        return fail(f"rejected ({label})", True)
    # 1xx/2xx that the caller did not accept: perhaps the peer's own trouble
    return fail(f"unexpected response ({label})", False)
