"""Webhook notifier: a JSON POST of the contract's payload, signed per the
Standard Webhooks spec (https://www.standardwebhooks.com/).

Headers of every attempt:

* ``content-type: application/json``
* ``webhook-id``: the alert id, the same on every retry (receivers dedupe on it)
* ``webhook-timestamp``: Unix seconds of this attempt
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``,
  one per configured secret, space separated (two during a rotation). Left out
  when no secret is configured.

Secrets: a secret starting with ``whsec_`` is the spec's form (base64 of the
key bytes after the prefix). A secret **without** the prefix is used as the raw
key bytes (its UTF-8 encoding); receivers verify it with
``Webhook(secret.encode())``, or equivalently with
``Webhook("whsec_" + base64(secret))``.

One attempt per ``send``; the outbox retries. Redirects are not followed
(the signed body must not be replayed somewhere else): a 3xx is a permanent
error. ``410 Gone`` is permanent and disables the sender until its config
changes (``disabled`` / ``disabled_reason``; the caller persists that).
429 (``Retry-After`` honoured), 408, 5xx, timeouts and connection errors are
transient; any other 4xx is permanent.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from daemon.adapters.http_status import classify_status
from daemon.adapters.tls import client_context
from daemon.config.models import WebhookNotifier
from daemon.core.model import Alert
from daemon.core.payload import PayloadError, encode_json
from daemon.core.ports import DeliveryError

if TYPE_CHECKING:
    from standardwebhooks import Webhook

USER_AGENT = "runpod-budget/0.1 (+webhook)"


class _RedactUrls(logging.Filter):
    """Redacts configured webhook URLs (whose path often is the credential) from
    httpx's ``HTTP Request: POST <url>`` INFO line and httpcore's DEBUG traces
    (which print response headers, e.g. a redirect's ``Location``)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._subs: dict[str, str] = {}

    def add(self, url: str) -> None:
        u = httpx.URL(url)
        port = f":{u.port}" if u.port else ""
        with self._lock:
            self._subs[str(u)] = f"{u.scheme}://{u.host}{port}/***"
            path = u.raw_path.decode("ascii", "replace")
            if len(path) > 1:
                self._subs[path] = "/***"

    def _clean(self, text: str, subs: dict[str, str]) -> str:
        for secret in sorted(subs, key=len, reverse=True):  # longest first
            text = text.replace(secret, subs[secret])
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            subs = dict(self._subs)
        if not subs:
            return True
        if isinstance(record.msg, str):
            record.msg = self._clean(record.msg, subs)
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._clean(str(a), subs) if any(k in str(a) for k in subs) else a
                for a in record.args
            )
        return True


_redact = _RedactUrls()
for _name in (
    "httpx",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.connection",
    "httpcore.proxy",
):
    logging.getLogger(_name).addFilter(_redact)


def signing_key(secret: str) -> bytes:
    """The HMAC key of a configured secret (see the module doc).

    Raises ``ValueError`` (without the secret) when a ``whsec_`` secret is not
    base64 or is empty."""
    if secret.startswith("whsec_"):
        raw = secret[len("whsec_") :]
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("webhook secret with the whsec_ prefix is not valid base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def encode_body(payload: Mapping[str, Any]) -> str:
    """The exact text that is signed and sent: compact, ASCII-only, strict JSON.
    Raises ``PayloadError`` for a NaN or an infinity (never sends ``NaN``)."""
    return encode_json(payload)


def signers(config: WebhookNotifier) -> list[Webhook]:
    """One signer per configured secret (none: the webhook goes unsigned).
    Raises ``ValueError`` like ``signing_key``."""
    secrets = config.signing_secrets()
    if not secrets:
        return []
    # imported on use: a daemon whose webhooks are unsigned need not load it
    from standardwebhooks import Webhook

    return [Webhook(signing_key(s.get_secret_value())) for s in secrets]


class WebhookSender:
    """``Notifier`` for a ``type: webhook`` notifier.

    ``http`` lets a caller share a client (its redirect setting is overridden
    per request: never followed). ``disabled_reason`` restores a disabled state
    the caller persisted (e.g. keyed by the notifier's config hash). Webhooks
    do not want summaries: machines read one event per alert.
    """

    wants_summary = False

    def __init__(
        self,
        name: str,
        config: WebhookNotifier,
        *,
        http: httpx.Client | None = None,
        disabled_reason: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._url = config.url  # SecretStr: the path may carry a token
        _redact.add(self._url.get_secret_value())
        self._timeout = httpx.Timeout(config.timeout)
        self.send_timeout = float(config.timeout)
        self._signers = signers(config)
        self._own_http = http is None
        self._http = (
            http
            if http is not None
            else httpx.Client(follow_redirects=False, verify=client_context())
        )
        self._clock = clock
        self._disabled_reason = disabled_reason

    def __repr__(self) -> str:
        state = f", disabled={self._disabled_reason!r}" if self._disabled_reason else ""
        return f"WebhookSender(name={self.name!r}, url=***, secrets={len(self._signers)}{state})"

    __str__ = __repr__

    @property
    def disabled(self) -> bool:
        return self._disabled_reason is not None

    @property
    def disabled_reason(self) -> str | None:
        return self._disabled_reason

    def disable(self, reason: str) -> None:
        self._disabled_reason = reason

    def enable(self) -> None:
        self._disabled_reason = None

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # ------------------------------------------------------------------ Notifier

    def headers_for(self, msg_id: str, body: str, timestamp: int) -> dict[str, str]:
        """The request headers of one attempt (signatures for every secret)."""
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._signers:
            ts = datetime.fromtimestamp(timestamp, UTC)
            headers["webhook-signature"] = " ".join(
                w.sign(msg_id=msg_id, timestamp=ts, data=body) for w in self._signers
            )
        return headers

    def _err(
        self, what: str, *, permanent: bool, retry_after: float | None = None
    ) -> DeliveryError:
        return DeliveryError.of(
            "webhook", self.name, what, permanent=permanent, retry_after=retry_after
        )

    def send(self, alert: Alert) -> None:
        """POST the payload once. Returns None on 2xx; raises
        ``DeliveryError(permanent=..., retry_after=...)`` (see the module doc)."""
        if self._disabled_reason is not None:
            raise self._err(
                f"disabled ({self._disabled_reason}); change its config to re-enable",
                permanent=True,
            )
        try:
            body = encode_body(alert.payload)
        except PayloadError:
            raise self._err("the payload holds a non-finite number", permanent=True) from None
        headers = self.headers_for(alert.id, body, int(self._clock()))
        try:
            resp = self._http.post(
                self._url.get_secret_value(),
                content=body.encode("ascii"),
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException as e:
            raise self._err(f"timed out ({type(e).__name__})", permanent=False) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            raise self._err(f"bad url ({type(e).__name__})", permanent=True) from None
        except httpx.TransportError as e:
            raise self._err(f"connection error ({type(e).__name__})", permanent=False) from None
        status = resp.status_code
        if 200 <= status < 300:
            return
        c = classify_status(status, retry_after=resp.headers.get("retry-after"))
        if c.gone:
            self._disabled_reason = "endpoint returned 410 Gone"
            raise self._err(
                "HTTP 410 Gone: notifier disabled until its config changes", permanent=True
            )
        raise self._err(c.what, permanent=c.permanent, retry_after=c.retry_after)
