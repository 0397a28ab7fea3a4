"""Slack Block Kit for every kind: what a person sees in the channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.adapters.slack_blocks import slack_blocks
from daemon.core.model import Balance, Contributor, Finding, Group, Pod, PodStatus
from daemon.core.payload import health_payload, threshold_payload
from daemon.core.payload import test_payload as make_test_payload
from daemon.core.payload_digest import digest_payload
from daemon.core.payload_enforcement import enforcement_payload
from daemon.core.payload_pods import BalanceLevel, balance_payload, idle_payload, uptime_payload
from daemon.core.summary import summarize
from tests.adapters.conftest import block_text
from tests.core.test_payload import FIRED, STARTED, contract_finding, digest, status

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
Blocks = list[dict[str, object]]


def header(blocks: Blocks) -> str:
    assert blocks[0]["type"] == "header"
    return str(blocks[0]["text"]["text"])  # type: ignore[index]


def render(payload: dict[str, object], zone: ZoneInfo = UTC_ZONE) -> tuple[str, Blocks, str]:
    text, blocks = slack_blocks(payload, zone)
    json.dumps(blocks)  # serialisable
    assert len(blocks) <= 50
    return text, blocks, block_text(blocks)


def pod(**kw: object) -> Pod:
    base: dict[str, object] = {
        "id": "p1xyz",
        "name": "dev-anna",
        "desired_status": PodStatus.RUNNING,
        "cost_per_hr": 3.99,
        "gpu_type": "NVIDIA RTX A6000",
        "gpu_util": (0.0,),
        "started_at": STARTED,
    }
    base.update(kw)
    return Pod(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- budgets


def test_slack_blocks_for_the_contract_example() -> None:
    text, blocks, body = render(threshold_payload(contract_finding(), FIRED))
    assert header(blocks).startswith("🟠")
    assert "h100-daily" in header(blocks)
    for needle in (
        "h100-daily",
        "research",
        "NVIDIA H100 80GB HBM3",
        "$241.37",
        "$300.00",
        "80.46%",
        "▓▓▓▓▓▓▓▓░░ 80%",
        "80%",  # threshold
        "$331.02",  # forecast
        "Tue 24 Nov 00:00 → Wed 25 Nov 00:00 UTC",
        "<https://console.runpod.io/pods|",
    ):
        assert needle in body, needle
    assert "h100-daily" in text and "$241.37" in text


def test_times_are_shown_in_the_display_zone_ids_stay_utc() -> None:
    p = threshold_payload(contract_finding(), FIRED)
    _, _, body = render(p, BERLIN)
    assert "fired Tue 24 Nov 15:05 CET" in body
    assert "Tue 24 Nov 01:00 → Wed 25 Nov 01:00 CET" in body
    assert p["id"] in body  # the id as stored, UTC "Z"
    assert "2026-11-24T00:00:00Z" in p["id"]


def test_slack_pod_group_links_to_the_pod_and_shows_name_and_id() -> None:
    s = status(group=Group(pod_id="abc123xyz", pod_name="train-<7>"), spend=330.0, forecast=None)
    p = threshold_payload(Finding(kind="threshold", status=s, threshold=100.0), FIRED)
    _, blocks, body = render(p)
    assert header(blocks).startswith("🔴")
    assert "https://console.runpod.io/pods?id=abc123xyz" in body
    assert "train-&lt;7&gt; (abc123xyz)" in body  # escaped for mrkdwn
    assert "▓▓▓▓▓▓▓▓▓▓ 110%" in body


def test_endpoint_group_is_named() -> None:
    s = status(group=Group(endpoint_id="ep1", endpoint_name="sd-xl"))
    _, _, body = render(
        threshold_payload(Finding(kind="threshold", status=s, threshold=80.0), FIRED)
    )
    assert "endpoint sd-xl (ep1)" in body


def test_slack_custom_console_url() -> None:
    _, blocks = slack_blocks(
        threshold_payload(contract_finding(), FIRED), UTC_ZONE, "https://example.test/c"
    )
    assert "<https://example.test/c|" in block_text(blocks)


def test_slack_aggregate_budget_lists_top_contributors() -> None:
    s = status(
        group=Group(),
        budget="team-monthly",
        spend=100.0,
        contributors=(Contributor("train-1", 70.0), Contributor("eval-2", 30.0)),
    )
    _, blocks, body = render(
        threshold_payload(Finding(kind="threshold", status=s, threshold=50.0), FIRED)
    )
    assert header(blocks).startswith("🟡")
    assert "Top contributors" in body
    assert "train-1: $70.00" in body and "eval-2: $30.00" in body
    assert "everything in scope" in body


@pytest.mark.parametrize(
    ("payload", "emoji"),
    [
        (threshold_payload(Finding(kind="forecast", status=status(), threshold=None), FIRED), "🔮"),
        (make_test_payload("ops", FIRED), "🧪"),
        (health_payload("unusable", "research", FIRED, "HTTP 503 from RunPod", FIRED), "⚠️"),
        (health_payload("recovered", "research", FIRED, None, FIRED), "✅"),
        (
            enforcement_payload(
                status(spend=400.0),
                instance_key="k",
                enforce_at=120,
                action="would_stop",
                reason="",
                pod_id="p1",
                pod_name="train-1",
                dry_run=True,
                fired_at=FIRED,
            ).to_json(),
            "🛑",
        ),
    ],
)
def test_header_emoji_by_kind(payload: dict[str, object], emoji: str) -> None:
    text, blocks, _ = render(payload)
    assert header(blocks).startswith(emoji)
    assert text.startswith(emoji)


def test_test_message_says_it_is_a_test() -> None:
    text, _, body = render(make_test_payload("ops", FIRED))
    assert "TEST" in text
    assert "test" in body.lower()


# --------------------------------------------------------------------------- enforcement


def enforce(action: str, reason: str = "", **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "instance_key": "k", "enforce_at": 120, "action": action, "reason": reason,
        "pod_id": "p1", "pod_name": "train-1", "dry_run": False, "fired_at": FIRED,
    }  # fmt: skip
    args.update(kw)
    s = status(spend=400.0, group=Group(pod_id="p1", pod_name="train-1"))
    return enforcement_payload(s, **args).to_json()  # type: ignore[arg-type]


def test_enforcement_stopped() -> None:
    _text, blocks, body = render(enforce("stopped"))
    assert header(blocks) == "🛑 Budget h100-daily at 133.33%: stopped pod train-1"
    assert "train-1 (p1): stopped" in body


@pytest.mark.parametrize(
    ("action", "reason", "says"),
    [
        ("refused", "locked", "left pod train-1 running: the pod is locked in RunPod"),
        ("refused", "not_stoppable", "left pod train-1 running: RunPod offers no stop action"),
        ("unknown", "unknown_after_crash", "stop sent, outcome unknown: not retried blindly"),
        ("would_stop", "", "dry run: would stop pod train-1"),
    ],
)
def test_enforcement_outcomes_in_plain_words(action: str, reason: str, says: str) -> None:
    _text, blocks, body = render(enforce(action, reason))
    assert says in header(blocks)
    assert "not stopping" not in body and "()" not in body


def test_enforcement_without_a_pod_says_why() -> None:
    p = enforce("refused", "stale_data", pod_id=None, pod_name=None)
    _, blocks, _body = render(p)
    assert "no pod stopped: billing data is stale" in header(blocks)
    assert "nothing" not in header(blocks)


# --------------------------------------------------------------------------- guards, balance


def test_idle_message_says_what_it_costs() -> None:
    idle_since = FIRED - timedelta(hours=2, minutes=10)
    p = idle_payload(
        account="research", guard="idle-dev-pods", pod=pod(), gpu_util=0.0,
        idle_since=idle_since, fired_at=FIRED,
    ).to_json()  # fmt: skip
    _text, blocks, body = render(p, BERLIN)
    assert header(blocks) == (
        "💤 Pod dev-anna idle for 2 h 10 min at $3.99/h ($8.65 so far), GPU 0%"
    )
    for needle in (
        "NVIDIA RTX A6000",
        "https://console.runpod.io/pods?id=p1xyz",
        "Idle since*\nTue 24 Nov 12:55 CET",
        "idle-dev-pods",
    ):
        assert needle in body, needle


def test_uptime_message() -> None:
    fired = STARTED + timedelta(hours=13, minutes=5)
    p = uptime_payload(
        account="research", guard="sweep-ttl", pod=pod(name="sweep-3", cost_per_hr=2.99),
        uptime_over="12h", fired_at=fired,
    ).to_json()  # fmt: skip
    _, blocks, body = render(p)
    assert header(blocks) == "⏱️ Pod sweep-3 running for 13 h 5 min (over 12 h) at $2.99/h"
    assert "?id=p1xyz" in body


@pytest.mark.parametrize(
    ("level", "crossed"),
    [
        (BalanceLevel("below_usd", 25), "balance under $25.00"),
        (BalanceLevel("runway_below", "6h"), "runway under 6 h"),
    ],
)
def test_balance_message_always_warns_about_zero(level: BalanceLevel, crossed: str) -> None:
    p = balance_payload(
        account="research", balance=Balance(balance=23.1, spend_per_hr=4.2), level=level,
        crossed_at=FIRED, fired_at=FIRED,
    ).to_json()  # fmt: skip
    text, blocks, body = render(p)
    assert crossed in header(blocks)
    for needle in ("$23.10", "$4.20/h", "runway 5 h 30 min", crossed):
        assert needle in body, needle
    warning = "At $0 RunPod stops every pod and terminates those without a network volume."
    assert warning in body and warning in text


@pytest.mark.parametrize(
    ("source", "head", "impact"),
    [
        ("billing", "RunPod billing API unusable", "Budgets are not being evaluated"),
        ("pods", "RunPod pod list unusable", "no pod is stopped meanwhile"),
        ("balance", "RunPod balance unusable", "every other check keeps running"),
    ],
)
def test_health_message_per_source(source: str, head: str, impact: str) -> None:
    since = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    p = health_payload("unusable", "research", since, "HTTP 410 Gone", FIRED, source=source)  # type: ignore[arg-type]
    _, blocks, body = render(p, BERLIN)
    assert head in header(blocks)
    assert impact in body
    assert "since Tue 24 Nov 14:00 CET" in body
    assert "HTTP 410 Gone" in body


# --------------------------------------------------------------------------- digest, summary


def test_digest_render() -> None:
    _, _, body = render(digest_payload(digest(), FIRED))
    for needle in (
        "$123.46",
        "$500.00",
        "$2,100.50",
        "train-1 (abc)",
        "▁▂▃▅█",  # the pod's sparkline
        "NVIDIA H100 80GB HBM3",
        "h100-daily",
        "team-monthly",
        "▓▓▓▓▓▓▓▓░░ 80%",
        "▓▓▓▓▓▓▓▓▓▓ 105%",
    ):
        assert needle in body, needle


def test_summary_message() -> None:
    from tests.core.test_summary import many

    s = summarize(many(), "ops", FIRED)
    _text, blocks, body = render(s.payload)
    assert header(blocks) == "📚 23 budget alerts"
    assert "top 5 by percent" in body
    assert "h100-daily · pod=h7 (research): 99% — $99.00 of $100.00" in body
    # the rest by budget: each budget's count minus its members shown above
    assert "Rest by budget" in body
    # (91% is a tie: any-pod-daily/a11 comes first by id)
    for line in ("• any-pod-daily: 11", "• h100-daily: 4", "• team-monthly: 3"):
        assert line in body, line
