"""The composition root: a webhook that answered 410 Gone stays disabled across
restarts until its config changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.app.runtime import build_runtime
from daemon.core.model import Alert
from daemon.core.ports import DeliveryError
from daemon.pipeline.outbox import deliver_due
from tests.support.receiver import Receiver

NOW = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)


def _config(tmp_path: Path, url: str) -> Path:
    p = tmp_path / "budgets.yaml"
    p.write_text(
        "version: 1\n"
        "http: {enabled: false}\n"
        f"notifiers:\n  hook: {{type: webhook, url: '{url}'}}\n"
        "defaults: {notify: [hook]}\n"
        "budgets:\n  - {name: b, window: day, limit: 10}\n"
    )
    return p


def _alert(n: int) -> Alert:
    return Alert(f"a{n}", "test", ("hook",), {"id": f"a{n}", "kind": "test", "notifier": "hook"})


def test_gone_webhook_stays_disabled_until_its_config_changes(tmp_path: Path) -> None:
    env = {"RUNPOD_API_KEY": "rpa_testkey", "STATE_DIRECTORY": str(tmp_path / "state")}
    with Receiver() as rx:
        rx.respond("/gone", [(410, "gone", {})])
        cfg = _config(tmp_path, rx.url + "/gone")

        rt = build_runtime(cfg, env, clock=lambda: NOW)
        rt.store.enqueue([_alert(1)], NOW)
        report = deliver_due(rt.store, rt.notifiers, rt.clock)
        assert report.failed and report.failed[0][3] is True  # permanent
        rt.close()
        assert len(rx.requests_to("/gone")) == 1

        # a restart with the same config: the endpoint is not tried again
        rt = build_runtime(cfg, env, clock=lambda: NOW)
        with pytest.raises(DeliveryError, match="disabled") as exc:
            rt.notifiers["hook"].send(_alert(2))
        assert exc.value.permanent
        rt.close()
        assert len(rx.requests_to("/gone")) == 1

        # the user fixes the URL: the notifier is back
        cfg = _config(tmp_path, rx.url + "/new")
        rt = build_runtime(cfg, env, clock=lambda: NOW)
        rt.notifiers["hook"].send(_alert(3))
        rt.close()
        assert [r.json["id"] for r in rx.requests_to("/new")] == ["a3"]


SECRETS_CONFIG = """\
version: 1
state: postgresql://budget:pg-pass-4242@db.internal/budget
notifiers:
  bot: {type: slack, token: xoxb-secret-token-1, channel: "#ops"}
  hook:
    type: webhook
    url: https://hooks.example.com/secret-path-77
    secrets: [whsec_bmV3LXNlY3JldA==, whsec_b2xkLXNlY3JldA==]
defaults: {notify: [bot, hook]}
budgets:
  - {name: b, window: day, limit: 10}
"""


def test_every_configured_secret_reaches_the_log_redactor() -> None:
    from daemon.app.runtime import config_secrets
    from daemon.config.loader import parse_config

    env = {"RUNPOD_API_KEY": "rpa_account_key_123"}
    secrets = config_secrets(parse_config(SECRETS_CONFIG, env=env), env)
    assert set(secrets) == {
        "rpa_account_key_123",
        "xoxb-secret-token-1",
        "https://hooks.example.com/secret-path-77",
        "whsec_bmV3LXNlY3JldA==",
        "whsec_b2xkLXNlY3JldA==",
        "postgresql://budget:pg-pass-4242@db.internal/budget",
    }


def test_a_notifier_fingerprint_changes_with_any_of_its_secrets() -> None:
    from daemon.app.runtime import notifier_fingerprint
    from daemon.config.loader import parse_config

    env = {"RUNPOD_API_KEY": "rpa_account_key_123"}
    base = parse_config(SECRETS_CONFIG, env=env)
    rotated = parse_config(SECRETS_CONFIG.replace("b2xkLXNlY3JldA==", "b3RoZXI="), env=env)
    assert notifier_fingerprint(base, "hook") == notifier_fingerprint(base, "hook")
    assert notifier_fingerprint(base, "hook") != notifier_fingerprint(rotated, "hook")
    assert notifier_fingerprint(base, "bot") == notifier_fingerprint(rotated, "bot")
