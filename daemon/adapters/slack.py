"""Slack notifier: an incoming webhook or ``chat.postMessage`` with a bot token.

slack-sdk does a couple of quick retries itself (rate limits with a short
``Retry-After``, 500/503, dropped connections); everything longer is left to
the durable outbox, which gets a ``DeliveryError`` saying whether a retry can
help (``permanent``) and when (``retry_after``).

Secrets (the token, the webhook URL) are read with ``get_secret_value()`` only
where the client is built; they never appear in errors, ``repr`` or logs. The
SDK's own logger is muted because it writes request URLs at INFO level.
"""

from __future__ import annotations

import http.client
import logging
import math
import re
from typing import Any
from urllib.error import URLError
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    FixedValueRetryIntervalCalculator,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from daemon.adapters.http_status import classify_status, header, retry_after_seconds
from daemon.adapters.slack_blocks import slack_blocks
from daemon.config.models import SlackNotifier
from daemon.core.model import Alert
from daemon.core.ports import DeliveryError

# Slack error codes after which resending the same message cannot succeed.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_token",
        "no_service",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "is_archived",
        "invalid_payload",
        "invalid_auth",
        "not_authed",
        "not_in_channel",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "restricted_action",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
        "invalid_arguments",
        "invalid_arg_name",
        "invalid_charset",
        "invalid_form_data",
        "invalid_post_type",
        "missing_post_type",
        "user_not_found",
        "ekm_access_denied",
        "method_deprecated",
        "deprecated_endpoint",
        "two_factor_setup_required",
        "org_login_required",
        "enterprise_is_restricted",
        "no_permission",
        "not_allowed_token_type",
    }
)
_ERROR_WORD = re.compile(r"^[a-z0-9_]{1,64}$")


def _muted_sdk_logger() -> logging.Logger:
    # slack-sdk logs "Going to retry the same request: POST <url>" at INFO and the
    # full request at DEBUG: for an incoming webhook the URL *is* the secret.
    log = logging.getLogger("daemon.adapters.slack.sdk")
    log.setLevel(logging.CRITICAL + 1)
    log.propagate = False
    log.disabled = True
    return log


class _ShortRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack-sdk's rate-limit handler, but only for a short ``Retry-After``:
    a long wait belongs in the outbox, not in a blocked ``send``."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None
        wait = retry_after_seconds(header(response.headers, "retry-after"))
        return wait is None or wait <= self.max_wait


def _safe_word(word: object) -> str:
    """A Slack error code if it looks like one, else ``unknown``: a server's
    free text never goes into our messages."""
    return word if isinstance(word, str) and _ERROR_WORD.match(word) else "unknown"


class SlackSender:
    """``Notifier`` for a ``type: slack`` notifier.

    ``base_url`` overrides the Web API base (``https://slack.com/api/``) for
    ``chat.postMessage``; tests point it at a loopback receiver. The webhook URL
    is itself configurable. ``max_retries`` bounds slack-sdk's quick in-process
    retries per handler; ``retry_interval`` is their fixed pause in seconds;
    a rate limit is only retried in-process when ``Retry-After`` is at most
    ``max_retry_after`` seconds. ``zone`` is the display zone of the times in
    messages. Slack wants summaries (people read it); it never disables itself.
    """

    wants_summary = True

    def __init__(
        self,
        name: str,
        config: SlackNotifier,
        *,
        base_url: str | None = None,
        max_retries: int = 2,
        retry_interval: float = 1.0,
        max_retry_after: float = 5.0,
        zone: ZoneInfo | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._zone = zone or ZoneInfo("UTC")
        self.console_url = config.console_url
        interval = FixedValueRetryIntervalCalculator(retry_interval)
        self._retry_handlers: list[RetryHandler] = [
            _ShortRateLimitRetryHandler(max_retries, max_retry_after),
            ServerErrorRetryHandler(max_retry_count=max_retries, interval_calculator=interval),
            ConnectionErrorRetryHandler(
                max_retry_count=max_retries,
                interval_calculator=interval,
                error_types=[URLError, ConnectionError, http.client.RemoteDisconnected],
            ),
        ]
        timeout = max(1, math.ceil(config.timeout))
        # slack-sdk's handlers retry in-process: each try may take the timeout
        self.send_timeout = float(timeout * (1 + max_retries) + max_retries * 2)
        logger = _muted_sdk_logger()
        self._webhook: WebhookClient | None = None
        self._web: WebClient | None = None
        if config.webhook_url is not None:
            self.mode = "webhook"
            self._webhook = WebhookClient(
                url=config.webhook_url.get_secret_value(),
                timeout=timeout,
                logger=logger,
                retry_handlers=self._retry_handlers,
            )
        else:
            assert config.token is not None
            self.mode = "bot"
            kwargs: dict[str, Any] = {}
            if base_url is not None:
                kwargs["base_url"] = base_url
            self._web = WebClient(
                token=config.token.get_secret_value(),
                timeout=timeout,
                logger=logger,
                retry_handlers=self._retry_handlers,
                **kwargs,
            )
        self._channel = config.channel

    def __repr__(self) -> str:
        where = f"channel={self._channel!r}" if self.mode == "bot" else "webhook=***"
        return f"SlackSender(name={self.name!r}, mode={self.mode!r}, {where})"

    __str__ = __repr__

    # ------------------------------------------------------------------ Notifier

    @property
    def disabled_reason(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing to close: slack-sdk opens a connection per request."""

    def send(self, alert: Alert) -> None:
        """Post the alert's Block Kit message. Returns None once Slack said ok;
        raises ``DeliveryError(permanent=..., retry_after=...)``."""
        text, blocks = slack_blocks(alert.payload, self._zone, self.console_url)
        try:
            if self._webhook is not None:
                self._send_webhook(text, blocks)
            else:
                self._send_bot(text, blocks)
        except DeliveryError:
            raise
        except SlackApiError as e:
            raise self._api_error(e) from None
        except (TimeoutError, URLError, ConnectionError, http.client.HTTPException, OSError) as e:
            raise self._transport_error(e) from None
        except SlackClientError as e:
            raise self._err(f"client error ({type(e).__name__})", permanent=True) from None

    # ------------------------------------------------------------------ helpers

    def _err(
        self, what: str, *, permanent: bool, retry_after: float | None = None
    ) -> DeliveryError:
        return DeliveryError.of(
            "slack", self.name, what, permanent=permanent, retry_after=retry_after
        )

    def _transport_error(self, e: BaseException) -> DeliveryError:
        reason = e.reason if isinstance(e, URLError) else e
        if isinstance(reason, TimeoutError):
            return self._err("timed out", permanent=False)
        return self._err(f"connection error ({type(reason).__name__})", permanent=False)

    def _classify(self, status: int, error: str | None, headers: dict[str, Any]) -> DeliveryError:
        # Slack's own words first: "ratelimited" is a 429 whatever the status,
        # a known permanent code is permanent whatever the status (Slack
        # answers some with 200, some with 4xx/5xx)
        if error == "ratelimited":
            status = 429
        c = classify_status(status, retry_after=header(headers, "retry-after"), code=error)
        if error in PERMANENT_ERRORS and not c.rate_limited:
            return self._err(f"rejected (HTTP {status}, {error})", permanent=True)
        return self._err(c.what, permanent=c.permanent, retry_after=c.retry_after)

    def _send_webhook(self, text: str, blocks: list[dict[str, Any]]) -> None:
        assert self._webhook is not None
        resp = self._webhook.send(text=text, blocks=blocks)
        body = resp.body.strip() if isinstance(resp.body, str) else ""
        if resp.status_code == 200 and body == "ok":
            return
        error = _safe_word(body) if body else None
        raise self._classify(resp.status_code, error, dict(resp.headers or {}))

    def _send_bot(self, text: str, blocks: list[dict[str, Any]]) -> None:
        assert self._web is not None and self._channel is not None
        self._web.chat_postMessage(channel=self._channel, text=text, blocks=blocks)

    def _api_error(self, e: SlackApiError) -> DeliveryError:
        resp = e.response
        data = resp.data if isinstance(resp.data, dict) else {}
        raw = data.get("error")
        error = _safe_word(raw) if raw is not None else None
        return self._classify(int(resp.status_code), error, dict(resp.headers or {}))
