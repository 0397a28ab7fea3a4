"""Failed attempts, HTTP status classification and the key holder of the transport."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from stamina.instrumentation import (
    RetryDetails,
    RetryHook,
    get_on_retry_hooks,
    set_on_retry_hooks,
)

from daemon.core.ports import ApiError
from daemon.core.retry_after import retry_after_seconds


class Attempt(Exception):
    """One failed attempt; ``retry`` tells the stamina hook whether to go again;
    ``connect`` marks a connection that was never established."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        retry: bool,
        permanent: bool = False,
        retry_after: float | None = None,
        connect: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry = retry
        self.permanent = permanent
        self.retry_after = retry_after
        self.connect = connect

    def api_error(self, attempts: int) -> ApiError:
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        return ApiError(
            f"{self}{suffix}", permanent=self.permanent, status=self.status, reason=self.reason
        )


class Secret:
    """Holds the API key so that no repr, traceback local or log shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


_PERMANENT = {
    401: ("auth", "HTTP 401, the RunPod API key is wrong or expired"),
    403: ("forbidden", "HTTP 403, the RunPod API key lacks permission for this call"),
    404: ("not_found", "HTTP 404, not found"),
    409: ("conflict", "HTTP 409, the action is not valid for the pod's current status"),
}


def check_status(
    response: httpx.Response, body: bytes | bytearray, ctx: str, key: str, gone: str
) -> None:
    """Raise the :class:`Attempt` a non-2xx status calls for (nothing on 2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = error_detail(body, key)
    if status in _PERMANENT:
        reason, what = _PERMANENT[status]
        raise Attempt(f"{ctx}: {what}{detail}", reason=reason, status=status, retry=False,
                      permanent=True)
    if status == 410:
        raise Attempt(f"{gone} ({ctx.removeprefix('RunPod ')})", reason="gone", status=status,
                      retry=False, permanent=True)
    if status == 429:
        after = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
        raise Attempt(f"{ctx}: HTTP 429, rate limited{detail}", reason="rate_limited",
                      status=status, retry=True, retry_after=after)
    if status >= 500:
        raise Attempt(f"{ctx}: HTTP {status}, server error{detail}", reason="server",
                      status=status, retry=True)
    raise Attempt(f"{ctx}: HTTP {status}{detail}", reason="client", status=status,
                  retry=False, permanent=True)


def error_detail(body: bytes | bytearray, key: str) -> str:
    """``": <detail>"`` from an error body: v2 RFC 9457 problems (``detail``, else
    ``title``, plus the first ``errors``) and v1 ``{"error"|"message"}``; empty
    when the body has none. Key-free and at most 300 characters."""
    try:
        doc: Any = json.loads(bytes(body[:65536]))
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    parts = [str(doc.get(k)) for k in ("detail", "error", "message") if doc.get(k)]
    if not parts and doc.get("title"):
        parts.append(str(doc["title"]))
    errors = doc.get("errors")
    if isinstance(errors, list):  # v2 strings; GraphQL {"message": ...} objects
        parts += [str(e.get("message", "")) if isinstance(e, dict) else str(e)
                  for e in errors[:3]]
    text = " ".join("; ".join(parts).split())[:300]
    if key:
        text = text.replace(key, "***")
    return f": {text}" if text else ""


# ---------------------------------------------------------------- retry logging

_hook_lock = threading.Lock()


class _SkipRunPod:
    """Wraps stamina's configured retry hooks: RunPod attempts log their own
    ``runpod.retry`` event (method, path, host, reason, wait), so stamina's
    generic ``"callable": "<context block>"`` event is skipped for them only."""

    runpod_filter = True

    def __init__(self, inner: Iterable[RetryHook]) -> None:
        self.inner = tuple(inner)

    def __call__(self, details: RetryDetails) -> Any:
        if isinstance(details.caused_by, Attempt):
            return None
        result = None
        for hook in self.inner:
            result = hook(details) or result
        return result


def install_retry_hook() -> None:
    """Put :class:`_SkipRunPod` around the current stamina hooks (idempotent).

    Other users of stamina keep their instrumentation; only RunPod attempts
    skip it. If the application later calls ``set_on_retry_hooks`` itself, the
    filter is gone and stamina logs RunPod retries a second time (harmless)."""
    with _hook_lock:
        hooks = get_on_retry_hooks()
        if any(getattr(h, "runpod_filter", False) for h in hooks):
            return
        set_on_retry_hooks([_SkipRunPod(hooks)])
