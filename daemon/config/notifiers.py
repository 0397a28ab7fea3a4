"""Notifiers: where alerts go (Slack, a signed webhook, the console).

Secrets are ``SecretStr`` so they never show in a ``repr``, a log line or a
validation message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from daemon.config.base import Strict, fail

NOTIFIER_TYPES = ("slack", "webhook", "console")


def _is_http_url(v: SecretStr) -> bool:
    return v.get_secret_value().startswith(("https://", "http://"))


class SlackNotifier(Strict):
    """Slack: an incoming webhook (``webhook_url``) or a bot ``token`` + ``channel``."""

    type: Literal["slack"]
    webhook_url: SecretStr | None = Field(
        default=None, description="Incoming webhook URL (secret; use ${VAR})."
    )
    token: SecretStr | None = Field(
        default=None, description="Bot token for chat.postMessage (secret; use ${VAR})."
    )
    channel: str | None = Field(default=None, description="Channel for the bot token.")
    console_url: str = Field(
        default="https://console.runpod.io/pods", description="Link shown in messages."
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds per request.")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _is_http_url(v):
            raise ValueError("must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> SlackNotifier:
        if self.webhook_url is None and self.token is None:
            fail("SlackNotifier", [((), "needs webhook_url, or token and channel")])
        if self.webhook_url is not None and self.token is not None:
            fail("SlackNotifier", [(("token",), "set webhook_url or token, not both")])
        if self.token is not None and not self.channel:
            fail("SlackNotifier", [(("channel",), "required with token")])
        return self


class WebhookNotifier(Strict):
    """A JSON POST of the contract's payload, signed per Standard Webhooks when
    ``secret`` is set. ``secrets`` (a list) allows two secrets during rotation."""

    type: Literal["webhook"]
    url: SecretStr = Field(description="Where to POST (may carry a token; use ${VAR}).")
    secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret (whsec_…)."
    )
    secrets: list[SecretStr] = Field(
        default_factory=list,
        max_length=2,
        description="Two signing secrets during rotation (instead of secret).",
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds per request.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        if not _is_http_url(v):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> WebhookNotifier:
        if self.secret is not None and self.secrets:
            fail("WebhookNotifier", [(("secrets",), "set secret or secrets, not both")])
        return self

    def signing_secrets(self) -> list[SecretStr]:
        return [self.secret] if self.secret is not None else list(self.secrets)


class ConsoleNotifier(Strict):
    """Prints alerts on standard output (the demo uses it)."""

    type: Literal["console"]


NotifierConfig = Annotated[
    SlackNotifier | WebhookNotifier | ConsoleNotifier, Field(discriminator="type")
]
