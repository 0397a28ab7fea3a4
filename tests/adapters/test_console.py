"""Console notifier and the notifier factory."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from daemon.adapters.console import ConsoleSender
from daemon.adapters.notifiers import build_notifiers, close_notifiers
from daemon.adapters.slack import SlackSender
from daemon.adapters.webhook import WebhookSender
from daemon.config.models import (
    Config,
    ConsoleNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from daemon.core.model import Alert
from daemon.core.payload import test_payload as make_test_payload
from daemon.core.ports import DeliveryError
from tests.support.receiver import Receiver

FIRED = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)


def make_alert(name: str = "out") -> Alert:
    p = make_test_payload(name, FIRED)
    return Alert(id=p["id"], kind="test", notifiers=(name,), payload=p)


def test_console_writes_readable_lines() -> None:
    buf = io.StringIO()
    ConsoleSender("out", buf).send(make_alert())
    ConsoleSender("out", buf).send(make_alert())
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[TEST]") and "TEST message" in lines[0]


def test_console_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleSender("out").send(make_alert())
    assert "[TEST]" in capsys.readouterr().out


def test_console_closed_stream_is_a_delivery_error() -> None:
    buf = io.StringIO()
    buf.close()
    with pytest.raises(DeliveryError) as ei:
        ConsoleSender("out", buf).send(make_alert())
    assert ei.value.permanent is False
    assert "'out'" in str(ei.value)


def test_build_notifiers_end_to_end() -> None:
    token, hook_secret, wh_secret = "xoxb-SECRET-TOK", "SECRET-HOOK-PATH", "SECRET-SIGNING"
    with Receiver() as rx:
        cfg = Config(
            version=1,
            notifiers={
                "ops": SlackNotifier(
                    type="slack", webhook_url=SecretStr(f"{rx.url}/services/T/B/{hook_secret}")
                ),
                "bot": SlackNotifier(type="slack", token=SecretStr(token), channel="C1"),
                "finance": WebhookNotifier(
                    type="webhook",
                    url=SecretStr(f"{rx.url}/hook"),
                    secret=SecretStr(wh_secret),
                ),
                "gone": WebhookNotifier(type="webhook", url=SecretStr(f"{rx.url}/gone")),
                "out": ConsoleNotifier(type="console"),
            },
        )
        buf = io.StringIO()
        results: list[tuple[str, bool]] = []
        notifiers = build_notifiers(
            cfg.notifiers,
            zone=ZoneInfo("UTC"),
            console_stream=buf,
            slack_base_url=rx.url + "/api/",
            disabled={"gone": "endpoint returned 410 Gone"},
        )
        assert set(notifiers) == {"ops", "bot", "finance", "gone", "out"}
        assert isinstance(notifiers["ops"], SlackSender)
        assert isinstance(notifiers["bot"], SlackSender)
        assert isinstance(notifiers["finance"], WebhookSender)
        assert isinstance(notifiers["out"], ConsoleSender)
        assert notifiers["gone"].disabled  # type: ignore[attr-defined]
        for name in ("ops", "bot", "finance", "out"):
            notifiers[name].send(make_alert(name))
            results.append((name, True))
        with pytest.raises(DeliveryError):
            notifiers["gone"].send(make_alert("gone"))
        results.append(("gone", False))
        assert notifiers["gone"].disabled_reason == "endpoint returned 410 Gone"
        assert {n: notifiers[n].wants_summary for n in notifiers} == {
            "ops": True,
            "bot": True,
            "finance": False,
            "gone": False,
            "out": True,
        }
        paths = sorted(r.path for r in rx.wait_for(3))
        assert paths == ["/api/chat.postMessage", "/hook", f"/services/T/B/{hook_secret}"]
        assert "[TEST]" in buf.getvalue()
        assert sorted(results) == [
            ("bot", True),
            ("finance", True),
            ("gone", False),
            ("ops", True),
            ("out", True),
        ]
        reprs = " ".join(repr(n) for n in notifiers.values())
        for secret in (token, hook_secret, wh_secret):
            assert secret not in reprs
        close_notifiers(notifiers)


def test_build_notifiers_bad_secret_names_the_notifier_not_the_secret() -> None:
    cfg = Config(
        version=1,
        notifiers={
            "finance": WebhookNotifier(
                type="webhook",
                url=SecretStr("https://example.test/h"),
                secret=SecretStr("whsec_%%SECRET%%"),
            )
        },
    )
    with pytest.raises(ValueError) as ei:
        build_notifiers(cfg.notifiers, zone=ZoneInfo("UTC"))
    assert "'finance'" in str(ei.value)
    assert "SECRET" not in str(ei.value)


def test_console_shows_times_in_its_zone() -> None:
    from zoneinfo import ZoneInfo

    from tests.adapters.conftest import make_alert as make_budget_alert

    buf = io.StringIO()
    ConsoleSender("out", buf, zone=ZoneInfo("America/New_York")).send(make_budget_alert())
    assert "Mon 23 Nov 19:00 → Tue 24 Nov 19:00 EST" in buf.getvalue()
