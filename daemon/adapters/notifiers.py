"""Build the configured notifiers: ``{name: Notifier}``."""

from __future__ import annotations

from typing import TextIO

import httpx

from daemon.adapters.console import ConsoleSender
from daemon.adapters.reporting import OnResult
from daemon.config.models import Config, ConsoleNotifier, SlackNotifier, WebhookNotifier
from daemon.core.ports import Notifier


def build_notifiers(
    config: Config,
    *,
    console_stream: TextIO | None = None,
    on_result: OnResult | None = None,
    slack_base_url: str | None = None,
    http: httpx.Client | None = None,
    disabled: dict[str, str] | None = None,
) -> dict[str, Notifier]:
    """One sender per entry of ``config.notifiers``.

    ``slack_base_url`` overrides Slack's Web API base (tests, proxies);
    ``http`` is a shared client for webhooks; ``disabled`` maps webhook
    notifier names to a persisted disabled reason (after a 410 Gone).
    Raises ``ValueError`` (naming the notifier, never the secret) when a
    webhook secret is malformed.
    """
    out: dict[str, Notifier] = {}
    for name, cfg in config.notifiers.items():
        if isinstance(cfg, SlackNotifier):
            # imported on use: slack-sdk costs ~10 MB of a daemon that may not use it
            from daemon.adapters.slack import SlackSender

            out[name] = SlackSender(name, cfg, base_url=slack_base_url, on_result=on_result)
        elif isinstance(cfg, WebhookNotifier):
            from daemon.adapters.webhook import WebhookSender

            try:
                out[name] = WebhookSender(
                    name,
                    cfg,
                    http=http,
                    on_result=on_result,
                    disabled_reason=(disabled or {}).get(name),
                )
            except ValueError as e:
                raise ValueError(f"notifier {name!r}: {e}") from None
        elif isinstance(cfg, ConsoleNotifier):
            out[name] = ConsoleSender(name, console_stream, on_result=on_result)
    return out


def close_notifiers(notifiers: dict[str, Notifier]) -> None:
    """Close what holds connections (webhook clients the senders own)."""
    for n in notifiers.values():
        close = getattr(n, "close", None)
        if callable(close):
            close()
