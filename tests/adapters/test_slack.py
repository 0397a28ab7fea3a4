"""Slack notifier against a loopback receiver playing Slack (real HTTP, real slack-sdk)."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from daemon.adapters.slack import SlackSender
from daemon.config.models import SlackNotifier
from daemon.core.model import Group
from daemon.core.ports import DeliveryError
from tests.adapters.conftest import block_text, make_alert
from tests.support.receiver import CLOSE, Receiver, slack_error

TOKEN = "xoxb-0000-SECRETTOKEN-7f3a9c"
HOOK_PATH = "/services/T000/B000/SECRETHOOK9d2e1"
HOOK_SECRET_SEGMENT = "SECRETHOOK9d2e1"
POST = "/api/chat.postMessage"


def webhook_sender(rx: Receiver, **kw: object) -> SlackSender:
    cfg = SlackNotifier(type="slack", webhook_url=SecretStr(rx.url + HOOK_PATH), timeout=2)
    kw.setdefault("retry_interval", 0.01)
    return SlackSender("ops", cfg, **kw)  # type: ignore[arg-type]


def bot_sender(rx: Receiver, **kw: object) -> SlackSender:
    cfg = SlackNotifier(type="slack", token=SecretStr(TOKEN), channel="#gpu-budget", timeout=2)
    kw.setdefault("retry_interval", 0.01)
    return SlackSender("ops", cfg, base_url=rx.url + "/api/", **kw)  # type: ignore[arg-type]


def assert_message_content(body: dict[str, object]) -> None:
    assert isinstance(body.get("text"), str) and "h100-daily" in body["text"]  # type: ignore[operator]
    text = block_text(body)
    for needle in (
        "h100-daily",
        "NVIDIA H100 80GB HBM3",
        "$241.37 / $300.00 (80.46%)",
        "▓▓▓▓▓▓▓▓░░ 80%",
        "$331.02",
        "https://console.runpod.io/pods",
    ):
        assert needle in text, needle


# --------------------------------------------------------------------------- delivery


def test_incoming_webhook_delivers_blocks(rx: Receiver) -> None:
    webhook_sender(rx).send(make_alert())
    (req,) = rx.wait_for(1)
    assert req.method == "POST"
    assert req.path == HOOK_PATH
    assert req.headers["content-type"].startswith("application/json")
    assert_message_content(req.json)


def test_bot_token_posts_to_channel(rx: Receiver) -> None:
    bot_sender(rx).send(make_alert(Group(pod_id="abc123", pod_name="train-1")))
    (req,) = rx.wait_for(1)
    assert req.path == POST
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.json["channel"] == "#gpu-budget"
    text = block_text(req.json)
    assert "https://console.runpod.io/pods?id=abc123" in text
    assert "train-1 (abc123)" in text


def test_console_url_from_config(rx: Receiver) -> None:
    cfg = SlackNotifier(
        type="slack",
        webhook_url=SecretStr(rx.url + HOOK_PATH),
        console_url="https://console.example.test/pods",
    )
    SlackSender("ops", cfg).send(make_alert())
    assert "https://console.example.test/pods" in block_text(rx.wait_for(1)[0].json)


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("mode", ["webhook", "bot"])
@pytest.mark.parametrize(
    "failure",
    [
        (503, "down", {}),
        (500, "oops", {}),
        (429, "slow down", {"Retry-After": "0"}),
        (CLOSE, "", {}),
    ],
    ids=["503", "500", "429", "dropped"],
)
def test_transient_failures_are_retried_then_delivered_once(
    rx: Receiver, mode: str, failure: tuple[int, str, dict[str, str]]
) -> None:
    path = HOOK_PATH if mode == "webhook" else POST
    rx.respond(path, [failure, failure])
    sender = (
        webhook_sender(rx, max_retries=2) if mode == "webhook" else bot_sender(rx, max_retries=2)
    )
    sender.send(make_alert())
    reqs = rx.wait_for(3, path=path)
    assert len(rx.requests_to(path)) == 3  # two failures, one success, nothing more
    assert reqs[0].body == reqs[2].body  # the same message each time


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_persistent_5xx_is_transient_after_a_few_quick_retries(rx: Receiver, mode: str) -> None:
    rx.set_down(True)
    sender = (
        webhook_sender(rx, max_retries=1) if mode == "webhook" else bot_sender(rx, max_retries=1)
    )
    with pytest.raises(DeliveryError) as ei:
        sender.send(make_alert())
    assert ei.value.permanent is False
    assert "503" in str(ei.value)
    assert len(rx.requests) == 2


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_long_retry_after_is_left_to_the_outbox(rx: Receiver, mode: str) -> None:
    path = HOOK_PATH if mode == "webhook" else POST
    rx.respond(path, [(429, "rate_limited", {"Retry-After": "120"})])
    sender = webhook_sender(rx) if mode == "webhook" else bot_sender(rx)
    with pytest.raises(DeliveryError) as ei:
        sender.send(make_alert())
    assert ei.value.permanent is False
    assert ei.value.retry_after == 120
    assert len(rx.requests) == 1


def test_connection_refused_is_transient() -> None:
    with Receiver() as gone:
        url = gone.url
    cfg = SlackNotifier(type="slack", webhook_url=SecretStr(url + HOOK_PATH), timeout=2)
    with pytest.raises(DeliveryError) as ei:
        SlackSender("ops", cfg, max_retries=1, retry_interval=0.01).send(make_alert())
    assert ei.value.permanent is False
    assert "connection" in str(ei.value)


def test_timeout_is_transient(rx: Receiver) -> None:
    rx.delay(HOOK_PATH, 10)
    cfg = SlackNotifier(type="slack", webhook_url=SecretStr(rx.url + HOOK_PATH), timeout=1)
    with pytest.raises(DeliveryError) as ei:
        SlackSender("ops", cfg, max_retries=0).send(make_alert())
    assert ei.value.permanent is False
    assert "timed out" in str(ei.value)


# --------------------------------------------------------------------------- permanent errors


BOT_PERMANENT = [
    "invalid_token",
    "no_service",
    "no_team",
    "team_disabled",
    "channel_not_found",
    "channel_is_archived",
    "invalid_payload",
    "invalid_auth",
    "not_in_channel",
    "account_inactive",
    "token_revoked",
    "missing_scope",
    "action_prohibited",
    "posting_to_general_channel_denied",
]


@pytest.mark.parametrize("code", BOT_PERMANENT)
def test_bot_permanent_errors_are_not_retried(rx: Receiver, code: str) -> None:
    rx.respond(POST, [slack_error(code)], default=slack_error(code))
    with pytest.raises(DeliveryError) as ei:
        bot_sender(rx, max_retries=3).send(make_alert())
    assert ei.value.permanent is True
    assert code in str(ei.value)
    assert len(rx.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (400, "no_text"),
        (403, "action_prohibited"),
        (403, "team_disabled"),
        (404, "channel_not_found"),
        (404, "no_service"),
        (404, "no_team"),
        (410, "channel_is_archived"),
        (400, "something new"),
        (403, "<html>forbidden</html>"),
        (404, ""),
    ],
)
def test_webhook_permanent_errors_are_not_retried(rx: Receiver, status: int, body: str) -> None:
    rx.respond(HOOK_PATH, [(status, body, {})], default=(status, body, {}))
    with pytest.raises(DeliveryError) as ei:
        webhook_sender(rx, max_retries=3).send(make_alert())
    assert ei.value.permanent is True
    assert f"HTTP {status}" in str(ei.value)
    assert "<html>" not in str(ei.value)  # server free text is not echoed
    assert len(rx.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 404])
def test_bot_http_4xx_is_permanent(rx: Receiver, status: int) -> None:
    rx.respond(POST, [(status, "nope", {})])
    with pytest.raises(DeliveryError) as ei:
        bot_sender(rx, max_retries=3).send(make_alert())
    assert ei.value.permanent is True
    assert len(rx.requests) == 1


def test_webhook_200_without_ok_is_not_success(rx: Receiver) -> None:
    rx.respond(HOOK_PATH, [(200, "<html>captive portal</html>", {})])
    with pytest.raises(DeliveryError) as ei:
        webhook_sender(rx).send(make_alert())
    assert ei.value.permanent is False


# --------------------------------------------------------------------------- secrets


def test_secrets_never_leak(
    rx: Receiver, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, including slack-sdk's own loggers
    texts: list[str] = []
    for sender, path in (
        (webhook_sender(rx, max_retries=1), HOOK_PATH),
        (bot_sender(rx, max_retries=1), POST),
    ):
        texts += [repr(sender), str(sender)]
        # a retried failure (the SDK logs retries with the URL unless muted)
        rx.respond(path, [(CLOSE, "", {}), (CLOSE, "", {})])
        with pytest.raises(DeliveryError) as ei:
            sender.send(make_alert())
        texts += [str(ei.value), repr(ei.value)]
        rx.respond(
            path,
            [slack_error("invalid_auth", 200)] if path == POST else [(403, "invalid_token", {})],
        )
        with pytest.raises(DeliveryError) as ei:
            sender.send(make_alert())
        texts += [str(ei.value), repr(ei.value)]
        sender.send(make_alert())
    with Receiver() as gone:
        url = gone.url
    cfg = SlackNotifier(type="slack", webhook_url=SecretStr(url + HOOK_PATH), timeout=1)
    with pytest.raises(DeliveryError) as ei:
        SlackSender("ops", cfg, max_retries=1, retry_interval=0.01).send(make_alert())
    texts += [str(ei.value), repr(ei.value)]
    out, err = capsys.readouterr()
    texts += [caplog.text, out, err]
    texts += [f"{r.getMessage()} {r.args}" for r in caplog.records]
    blob = "\n".join(texts)
    assert "ops" in blob  # the errors do name the notifier
    for secret in (TOKEN, HOOK_SECRET_SEGMENT, "SECRETTOKEN"):
        assert secret not in blob


def test_times_in_the_message_are_in_the_senders_zone(rx: Receiver) -> None:
    from zoneinfo import ZoneInfo

    webhook_sender(rx, zone=ZoneInfo("Europe/Berlin")).send(make_alert())
    text = block_text(rx.wait_for(1)[0].json)
    assert "fired Tue 24 Nov 15:05 CET" in text
    assert "2026-11-24T00:00:00Z" in text  # the id stays UTC


def test_slack_wants_summaries_and_never_disables_itself(rx: Receiver) -> None:
    s = webhook_sender(rx)
    assert s.wants_summary is True
    rx.respond(HOOK_PATH, [(410, "channel_is_archived", {})])
    with pytest.raises(DeliveryError) as ei:
        s.send(make_alert())
    assert ei.value.permanent is True
    assert s.disabled_reason is None
