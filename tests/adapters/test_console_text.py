"""Console text: the lines ``demo`` and ``check --dry-run`` print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.adapters.console_text import console_text
from daemon.core.model import Balance, Group
from daemon.core.payload import health_payload, threshold_payload
from daemon.core.payload import test_payload as make_test_payload
from daemon.core.payload_digest import digest_payload
from daemon.core.payload_enforcement import enforcement_payload
from daemon.core.payload_pods import BalanceLevel, balance_payload, idle_payload
from daemon.core.summary import summarize
from tests.adapters.test_slack_blocks import pod
from tests.core.test_payload import FIRED, contract_finding, digest, status
from tests.core.test_summary import many

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def test_console_text_is_short_and_readable() -> None:
    line = console_text(threshold_payload(contract_finding(), FIRED), UTC_ZONE)
    lines = line.splitlines()
    assert 1 <= len(lines) <= 2
    assert lines[0].startswith("[THRESHOLD]")
    for needle in ("research/h100-daily", "NVIDIA H100 80GB HBM3", "$241.37 / $300.00", "80%"):
        assert needle in line


def test_console_shows_the_window_in_the_display_zone() -> None:
    line = console_text(threshold_payload(contract_finding(), FIRED), BERLIN)
    assert "day · Tue 24 Nov 01:00 → Wed 25 Nov 01:00 CET" in line


def test_test_and_health() -> None:
    assert "TEST" in console_text(make_test_payload("ops", FIRED), UTC_ZONE)
    since = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    text = console_text(health_payload("unusable", "research", since, "x", FIRED), BERLIN)
    assert "unusable" in text
    assert "since Tue 24 Nov 14:00 CET" in text
    pods = health_payload("unusable", "research", since, None, FIRED, source="pods")
    assert console_text(pods, UTC_ZONE).startswith("[HEALTH] ⚠️ RunPod pod list unusable")


def test_enforcement_lists_pods() -> None:
    p = enforcement_payload(
        status(spend=400.0, group=Group(pod_id="p1", pod_name="train-1")), instance_key="k",
        enforce_at=120, action="stopped", reason="", pod_id="p1", pod_name="train-1",
        dry_run=False, fired_at=FIRED,
    ).to_json()  # fmt: skip
    assert "p1=stopped" in console_text(p, UTC_ZONE)


def test_digest_two_lines() -> None:
    line = console_text(digest_payload(digest(), FIRED), UTC_ZONE)
    assert "h100-daily 80.46%" in line and "team-monthly 105.03%" in line
    assert len(line.splitlines()) == 2


def test_idle_and_balance() -> None:
    p = idle_payload(
        account="research", guard="idle-dev", pod=pod(), gpu_util=2.5,
        idle_since=FIRED - timedelta(minutes=45), fired_at=FIRED,
    ).to_json()  # fmt: skip
    text = console_text(p, BERLIN)
    assert "[IDLE] 💤 Pod dev-anna idle for 45 min at $3.99/h ($2.99 so far), GPU 2.5%" in text
    assert "idle since Tue 24 Nov 14:20 CET" in text
    assert "https://console.runpod.io/pods?id=p1xyz" in text
    b = balance_payload(
        account="research", balance=Balance(balance=80.0, spend_per_hr=0.0),
        level=BalanceLevel("below_usd", 100), crossed_at=FIRED, fired_at=FIRED,
    ).to_json()  # fmt: skip
    text = console_text(b, UTC_ZONE)
    assert "balance under $100.00" in text
    assert "nothing is burning" in text
    assert "At $0 RunPod stops every pod" in text


def test_summary_line() -> None:
    text = console_text(summarize(many(), "console", FIRED).payload, UTC_ZONE)
    first, second = text.splitlines()
    assert first == "[SUMMARY] 📚 23 budget alerts"
    assert second.strip().startswith("top 5: h100-daily · pod=h7 (research): 99%")
    assert "rest by budget: any-pod-daily 11, h100-daily 4, team-monthly 3" in second
