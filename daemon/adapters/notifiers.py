"""Build the configured notifiers: ``{name: Notifier}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from daemon.adapters.console import ConsoleSender
from daemon.config.models import ConsoleNotifier, NotifierConfig, SlackNotifier, WebhookNotifier
from daemon.core.ports import Notifier

if TYPE_CHECKING:
    import httpx


def build_notifiers(
    configs: Mapping[str, NotifierConfig],
    *,
    zone: ZoneInfo,
    console_stream: TextIO | None = None,
    slack_base_url: str | None = None,
    http: httpx.Client | None = None,
    disabled: Mapping[str, str] | None = None,
) -> dict[str, Notifier]:
    """One sender per entry of ``configs`` (the config's ``notifiers``).

    ``zone`` is the display zone of times in messages (the config's
    ``timezone``); ``slack_base_url`` overrides Slack's Web API base (tests,
    proxies); ``http`` is a shared client for webhooks; ``disabled`` maps
    webhook notifier names to a persisted disabled reason (after a 410 Gone).
    Raises ``ValueError`` (naming the notifier, never the secret) when a
    webhook secret is malformed.
    """
    out: dict[str, Notifier] = {}
    for name, cfg in configs.items():
        if isinstance(cfg, SlackNotifier):
            # imported on use: slack-sdk costs ~10 MB of a daemon that may not use it
            from daemon.adapters.slack import SlackSender

            out[name] = SlackSender(name, cfg, base_url=slack_base_url, zone=zone)
        elif isinstance(cfg, WebhookNotifier):
            # likewise httpx and the signer for a daemon without webhooks
            from daemon.adapters.webhook import WebhookSender

            try:
                out[name] = WebhookSender(
                    name, cfg, http=http, disabled_reason=(disabled or {}).get(name)
                )
            except ValueError as e:
                raise ValueError(f"notifier {name!r}: {e}") from None
        elif isinstance(cfg, ConsoleNotifier):
            out[name] = ConsoleSender(name, console_stream, zone=zone)
    return out


def close_notifiers(notifiers: Mapping[str, Notifier]) -> None:
    """Close what holds connections (webhook clients the senders own)."""
    for n in notifiers.values():
        n.close()
