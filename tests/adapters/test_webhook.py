"""Webhook notifier against a loopback receiver: Standard Webhooks signatures,
retry classes, redirects, 410 Gone, and no secret in any message."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from daemon.adapters.http_status import retry_after_seconds
from daemon.adapters.webhook import WebhookSender, encode_body, signing_key
from daemon.config.models import WebhookNotifier
from daemon.core.model import Alert
from daemon.core.ports import DeliveryError
from tests.adapters.conftest import make_alert as make_budget_alert
from tests.support.receiver import CLOSE, Receiver

PATH = "/hooks/budget/tok-SECRETPATH-5c1d"
PATH_SECRET = "SECRETPATH-5c1d"
# a spec-form secret (base64 after whsec_) and a plain one (raw key bytes)
SECRET_A = "whsec_" + base64.b64encode(b"first-secret-key-0123456789abcdef").decode()
SECRET_B = "plain-SECRET-b-98765"


def make_alert() -> Alert:
    return make_budget_alert(notifiers=["finance"])


def sender(
    rx: Receiver, *, secrets: list[str] | None = None, timeout: float = 5, **kw: object
) -> WebhookSender:
    cfg = WebhookNotifier(
        type="webhook",
        url=SecretStr(rx.url + PATH),
        secrets=[SecretStr(s) for s in (secrets or [])],
        timeout=timeout,
    )
    return WebhookSender("finance", cfg, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the request


def test_posts_the_contract_payload_with_standard_headers(rx: Receiver) -> None:
    alert = make_alert()
    sender(rx, secrets=[SECRET_A]).send(alert)
    (req,) = rx.wait_for(1)
    assert req.method == "POST"
    assert req.path == PATH
    assert req.headers["content-type"] == "application/json"
    assert req.headers["webhook-id"] == alert.id
    assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 300
    assert req.body == encode_body(alert.payload).encode()
    assert req.json == alert.payload
    assert req.json["id"] == req.headers["webhook-id"]
    assert Webhook(SECRET_A).verify(req.body, req.headers) == alert.payload


def test_two_secrets_in_rotation_both_verify(rx: Receiver) -> None:
    sender(rx, secrets=[SECRET_A, SECRET_B]).send(make_alert())
    (req,) = rx.wait_for(1)
    sigs = req.headers["webhook-signature"].split(" ")
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs)
    # each receiver, knowing only one of the two secrets, accepts the message
    assert Webhook(SECRET_A).verify(req.body, req.headers)["kind"] == "threshold"
    assert Webhook(SECRET_B.encode()).verify(req.body, req.headers)["kind"] == "threshold"
    # the documented equivalent form of a plain secret
    whsec_b = "whsec_" + base64.b64encode(SECRET_B.encode()).decode()
    assert Webhook(whsec_b).verify(req.body, req.headers)["kind"] == "threshold"
    # and a wrong secret or a tampered body does not verify
    with pytest.raises(WebhookVerificationError):
        Webhook(b"some-other-key").verify(req.body, req.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(req.body.replace(b"241.37", b"1.37"), req.headers)


def test_no_secret_means_no_signature_header(rx: Receiver) -> None:
    sender(rx).send(make_alert())
    (req,) = rx.wait_for(1)
    assert "webhook-signature" not in req.headers
    assert req.headers["webhook-id"] == make_alert().id


def test_id_stable_timestamp_and_signature_fresh_across_attempts(rx: Receiver) -> None:
    now = int(time.time())
    ticks = itertools.count(now - 10, 7)
    s = sender(rx, secrets=[SECRET_A], clock=lambda: float(next(ticks)))
    rx.respond(PATH, [(503, "down", {})])
    alert = make_alert()
    with pytest.raises(DeliveryError) as ei:
        s.send(alert)
    assert ei.value.permanent is False
    s.send(alert)  # the outbox's retry
    first, second = rx.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == alert.id
    assert first.body == second.body
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for req in (first, second):
        Webhook(SECRET_A).verify(req.body, req.headers)


# --------------------------------------------------------------------------- failure classes


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(rx: Receiver, status: int) -> None:
    rx.respond(PATH, [(status, "", {"Location": rx.url + "/elsewhere"})])
    with pytest.raises(DeliveryError) as ei:
        sender(rx).send(make_alert())
    assert ei.value.permanent is True
    assert "redirect" in str(ei.value)
    assert [r.path for r in rx.requests] == [PATH]


def test_redirects_not_followed_with_a_shared_client(rx: Receiver) -> None:
    rx.respond(PATH, [(302, "", {"Location": rx.url + "/elsewhere"})])
    with httpx.Client(follow_redirects=True) as client, pytest.raises(DeliveryError) as ei:
        sender(rx, http=client).send(make_alert())
    assert ei.value.permanent is True
    assert [r.path for r in rx.requests] == [PATH]


def test_410_gone_disables_the_sender(rx: Receiver) -> None:
    rx.respond(PATH, [(410, "gone", {})])
    s = sender(rx)
    assert s.disabled is False
    with pytest.raises(DeliveryError) as ei:
        s.send(make_alert())
    assert ei.value.permanent is True
    assert s.disabled is True
    assert s.disabled_reason is not None and "410" in s.disabled_reason
    with pytest.raises(DeliveryError) as ei:
        s.send(make_alert())
    assert ei.value.permanent is True
    assert "disabled" in str(ei.value)
    assert len(rx.requests) == 1  # nothing sent while disabled


def test_disabled_state_can_be_restored(rx: Receiver) -> None:
    s = sender(rx, disabled_reason="endpoint returned 410 Gone")
    with pytest.raises(DeliveryError):
        s.send(make_alert())
    assert rx.requests == []
    s.enable()
    s.send(make_alert())
    assert len(rx.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("17", 17.0), (None, None)],
)
def test_429_is_transient_and_honours_retry_after(
    rx: Receiver, retry_after: str | None, expected: float | None
) -> None:
    rx.respond(PATH, [(429, "slow", {"Retry-After": retry_after} if retry_after else {})])
    with pytest.raises(DeliveryError) as ei:
        sender(rx).send(make_alert())
    assert ei.value.permanent is False
    assert ei.value.retry_after == expected
    assert len(rx.requests) == 1


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 24, 14, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Tue, 24 Nov 2026 14:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Tue, 24 Nov 2026 13:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(" 5 ") == 5.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(rx: Receiver, status: int) -> None:
    rx.respond(PATH, [(status, "x", {"Retry-After": "30"})])
    with pytest.raises(DeliveryError) as ei:
        sender(rx).send(make_alert())
    assert ei.value.permanent is False
    assert ei.value.retry_after == 30.0
    assert f"HTTP {status}" in str(ei.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 422])
def test_other_4xx_are_permanent(rx: Receiver, status: int) -> None:
    rx.respond(PATH, [(status, "no", {})])
    with pytest.raises(DeliveryError) as ei:
        sender(rx).send(make_alert())
    assert ei.value.permanent is True
    assert f"HTTP {status}" in str(ei.value)
    assert len(rx.requests) == 1


def test_timeout_is_transient(rx: Receiver) -> None:
    rx.delay(PATH, 10)
    with pytest.raises(DeliveryError) as ei:
        sender(rx, timeout=0.3).send(make_alert())
    assert ei.value.permanent is False
    assert "timed out" in str(ei.value)


def test_dropped_connection_is_transient(rx: Receiver) -> None:
    rx.respond(PATH, [(CLOSE, "", {})])
    with pytest.raises(DeliveryError) as ei:
        sender(rx).send(make_alert())
    assert ei.value.permanent is False


def test_connection_refused_is_transient() -> None:
    with Receiver() as gone:
        pass
    with pytest.raises(DeliveryError) as ei:
        sender(gone).send(make_alert())
    assert ei.value.permanent is False
    assert "connection error" in str(ei.value)


# --------------------------------------------------------------------------- secrets


def test_signing_key_forms() -> None:
    assert signing_key(SECRET_A) == b"first-secret-key-0123456789abcdef"
    assert signing_key(SECRET_B) == SECRET_B.encode()
    for bad in ("whsec_!!!not base64!!!", "whsec_", ""):
        with pytest.raises(ValueError) as ei:
            signing_key(bad)
        if bad[6:]:
            assert bad[6:] not in str(ei.value)


def test_secrets_never_leak(
    rx: Receiver, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    s = sender(rx, secrets=[SECRET_A, SECRET_B])
    texts = [repr(s), str(s)]
    rx.respond(
        PATH,
        [
            (302, "", {"Location": rx.url + PATH + "/moved"}),
            (503, "down", {}),
            (429, "slow", {"Retry-After": "3"}),
            (403, "no", {}),
            (CLOSE, "", {}),
            (410, "gone", {}),
        ],
    )
    for _ in range(7):
        with pytest.raises(DeliveryError) as ei:
            s.send(make_alert())
        texts += [str(ei.value), repr(ei.value)]
    texts.append(repr(s))
    with Receiver() as gone:
        pass
    with pytest.raises(DeliveryError) as ei:
        sender(gone, secrets=[SECRET_A]).send(make_alert())
    texts += [str(ei.value), repr(ei.value)]
    with pytest.raises(ValueError) as bad:
        sender(rx, secrets=["whsec_!!SECRET!!"])
    texts.append(str(bad.value))
    out, err = capsys.readouterr()
    texts += [caplog.text, out, err]
    texts += [f"{r.getMessage()} {r.args}" for r in caplog.records]
    blob = "\n".join(texts)
    assert "finance" in blob
    for secret in (PATH_SECRET, SECRET_A, SECRET_A[6:], SECRET_B, "SECRET"):
        assert secret not in blob, secret
    json.dumps(texts)  # all plain strings


def test_a_non_finite_number_is_never_sent(rx: Receiver) -> None:
    alert = make_alert()
    alert.payload["spend_usd"] = float("nan")  # e.g. a row stored before strict encoding
    s = sender(rx)
    assert s.wants_summary is False  # machines read one event per alert
    with pytest.raises(DeliveryError) as ei:
        s.send(alert)
    assert ei.value.permanent is True
    assert "non-finite" in str(ei.value)
    assert rx.requests == []
