"""Payloads (the contract's JSON) and their Slack / console renderings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.model import Contributor, Finding, Group, InstanceStatus, Window
from daemon.core.render import (
    SPARK_CHARS,
    DigestBudget,
    DigestData,
    DigestItem,
    PodAction,
    alert_from_finding,
    console_text,
    digest_payload,
    enforcement_payload,
    health_payload,
    progress_bar,
    slack_blocks,
    sparkline,
    threshold_payload,
)
from daemon.core.render import test_payload as make_test_payload

CONTRACT_JSON = """
{
  "id": "research:h100-daily:gpu=NVIDIA H100 80GB HBM3:2026-11-24T00:00:00Z:threshold:80",
  "kind": "threshold",
  "account": "research",
  "budget": "h100-daily",
  "group": {"pod_id": null, "pod_name": null, "gpu_type": "NVIDIA H100 80GB HBM3"},
  "window": {"size": "day", "start": "2026-11-24T00:00:00Z", "end": "2026-11-25T00:00:00Z"},
  "spend_usd": 241.37,
  "limit_usd": 300.0,
  "percent": 80.46,
  "threshold_percent": 80,
  "forecast_usd": 331.02,
  "fired_at": "2026-11-24T14:05:12Z"
}
"""

FIRED = datetime(2026, 11, 24, 14, 5, 12, 345000, tzinfo=UTC)
DAY = Window(
    size="day",
    start=datetime(2026, 11, 24, tzinfo=UTC),
    end=datetime(2026, 11, 25, tzinfo=UTC),
    rolling=False,
)


def status(
    *,
    spend: float = 241.37,
    limit: float = 300.0,
    forecast: float | None = 331.02,
    group: Group | None = None,
    budget: str = "h100-daily",
    contributors: tuple[Contributor, ...] = (),
) -> InstanceStatus:
    return InstanceStatus(
        account="research",
        budget=budget,
        group=group if group is not None else Group(gpu_type="NVIDIA H100 80GB HBM3"),
        window=DAY,
        spend=spend,
        limit=limit,
        forecast=forecast,
        thresholds=(50.0, 80.0, 100.0),
        forecast_enabled=True,
        top_contributors=contributors,
    )


def contract_finding() -> Finding:
    return Finding(kind="threshold", status=status(), threshold=80.0)


def all_text(blocks: list[dict[str, object]]) -> str:
    """Every string inside the blocks, for content assertions."""
    out: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(blocks)
    return "\n".join(out)


# --------------------------------------------------------------------------- payloads


def test_contract_example_payload_is_exactly_the_contract() -> None:
    expected = json.loads(CONTRACT_JSON)
    got = threshold_payload(contract_finding(), FIRED)
    assert got == expected
    assert list(got) == list(expected)  # same keys, same order
    assert list(got["group"]) == list(expected["group"])
    assert list(got["window"]) == list(expected["window"])
    # types as in the contract
    assert type(got["threshold_percent"]) is int
    assert type(got["limit_usd"]) is float
    assert type(got["percent"]) is float
    # the webhook body round-trips to the same JSON
    assert json.loads(json.dumps(got)) == expected


def test_alert_from_finding() -> None:
    alert = alert_from_finding(contract_finding(), ["ops", "finance"], FIRED)
    assert alert.id == json.loads(CONTRACT_JSON)["id"]
    assert alert.kind == "threshold"
    assert alert.notifiers == ("ops", "finance")
    assert alert.payload == json.loads(CONTRACT_JSON)


def test_forecast_payload() -> None:
    f = Finding(kind="forecast", status=status(spend=150.0, forecast=320.456), threshold=None)
    p = threshold_payload(f, FIRED)
    assert p["kind"] == "forecast"
    assert p["id"].endswith(":forecast")
    assert p["threshold_percent"] is None
    assert p["forecast_usd"] == 320.46
    assert p["percent"] == 50.0


def test_fractional_threshold_and_rounding() -> None:
    f = Finding(kind="threshold", status=status(spend=262.5049, forecast=None), threshold=87.5)
    p = threshold_payload(f, FIRED)
    assert p["threshold_percent"] == 87.5
    assert type(p["threshold_percent"]) is float
    assert p["spend_usd"] == 262.5
    assert p["forecast_usd"] is None
    assert p["id"].endswith(":threshold:87.5")


def test_contributors_are_extra_keys_after_the_contract_ones() -> None:
    s = status(
        group=Group(),
        budget="team-monthly",
        contributors=(Contributor("train-1 (abc)", 120.123), Contributor("NVIDIA A40", 20.0)),
    )
    p = threshold_payload(Finding(kind="threshold", status=s, threshold=80.0), FIRED)
    contract_keys = list(json.loads(CONTRACT_JSON))
    assert list(p)[: len(contract_keys)] == contract_keys
    assert list(p)[len(contract_keys) :] == ["top_contributors"]
    assert p["top_contributors"] == [
        {"label": "train-1 (abc)", "spend_usd": 120.12},
        {"label": "NVIDIA A40", "spend_usd": 20.0},
    ]
    assert p["group"] == {"pod_id": None, "pod_name": None, "gpu_type": None}


# --------------------------------------------------------------------------- Slack


def test_slack_blocks_for_the_contract_example() -> None:
    text, blocks = slack_blocks(threshold_payload(contract_finding(), FIRED))
    body = all_text(blocks)
    assert blocks[0]["type"] == "header"
    header = blocks[0]["text"]["text"]
    assert header.startswith("🟠")
    assert "h100-daily" in header
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
        "2026-11-24 00:00 UTC",
        "<https://console.runpod.io/pods|",
    ):
        assert needle in body, needle
    assert "h100-daily" in text and "$241.37" in text
    json.dumps(blocks)  # serialisable
    assert len(blocks) <= 50


def test_slack_pod_group_links_to_the_pod_and_shows_name_and_id() -> None:
    s = status(group=Group(pod_id="abc123xyz", pod_name="train-<7>"), spend=330.0, forecast=None)
    p = threshold_payload(Finding(kind="threshold", status=s, threshold=100.0), FIRED)
    _, blocks = slack_blocks(p)
    body = all_text(blocks)
    assert blocks[0]["text"]["text"].startswith("🔴")
    assert "https://console.runpod.io/pods?id=abc123xyz" in body
    assert "train-&lt;7&gt; (abc123xyz)" in body  # escaped for mrkdwn
    assert "▓▓▓▓▓▓▓▓▓▓ 110%" in body


def test_slack_custom_console_url() -> None:
    _, blocks = slack_blocks(threshold_payload(contract_finding(), FIRED), "https://example.test/c")
    assert "<https://example.test/c|" in all_text(blocks)


def test_slack_aggregate_budget_lists_top_contributors() -> None:
    s = status(
        group=Group(),
        budget="team-monthly",
        spend=100.0,
        contributors=(Contributor("train-1", 70.0), Contributor("eval-2", 30.0)),
    )
    p = threshold_payload(Finding(kind="threshold", status=s, threshold=50.0), FIRED)
    _, blocks = slack_blocks(p)
    body = all_text(blocks)
    assert blocks[0]["text"]["text"].startswith("🟡")
    assert "Top contributors" in body
    assert "train-1: $70.00" in body and "eval-2: $30.00" in body
    assert "all pods" in body


@pytest.mark.parametrize(
    ("payload", "emoji"),
    [
        (
            threshold_payload(Finding(kind="forecast", status=status(), threshold=None), FIRED),
            "🔮",
        ),
        (make_test_payload("ops", FIRED), "🧪"),
        (health_payload("unusable", "research", FIRED, "HTTP 503 from RunPod", FIRED), "⚠️"),
        (health_payload("recovered", "research", FIRED, None, FIRED), "✅"),
        (
            enforcement_payload(
                status(spend=400.0),
                enforce_at=120,
                dry_run=True,
                actions=[PodAction("p1", "would_stop", pod_name="train-1")],
                fired_at=FIRED,
            ),
            "🛑",
        ),
    ],
)
def test_header_emoji_by_kind(payload: dict[str, object], emoji: str) -> None:
    text, blocks = slack_blocks(payload)
    assert blocks[0]["text"]["text"].startswith(emoji)
    assert text.startswith(emoji)


def test_test_message_says_it_is_a_test() -> None:
    p = make_test_payload("ops", FIRED)
    assert p["kind"] == "test"
    assert p["id"] == "test:ops:2026-11-24T14:05:12Z"
    text, blocks = slack_blocks(p)
    assert "TEST" in text
    assert "test" in all_text(blocks).lower()
    assert "TEST" in console_text(p)


def test_health_payload() -> None:
    since = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    p = health_payload("unusable", "research", since, "x" * 1000, FIRED)
    assert p["id"] == "research:health:unusable:2026-11-24T13:00:00Z"
    assert p["kind"] == "health"
    assert len(p["last_error"]) == 300
    assert "unusable" in console_text(p)


def test_enforcement_payload_and_render() -> None:
    p = enforcement_payload(
        status(spend=400.0, group=Group(pod_id="p1", pod_name="train-1")),
        enforce_at=120,
        dry_run=False,
        actions=[PodAction("p1", "stopped", pod_name="train-1")],
        fired_at=FIRED,
    )
    assert p["id"] == "research:h100-daily:pod=p1:2026-11-24T00:00:00Z:enforce:120"
    assert p["kind"] == "enforcement"
    assert p["enforcement"]["pods"] == [
        {"pod_id": "p1", "pod_name": "train-1", "result": "stopped", "detail": ""}
    ]
    _, blocks = slack_blocks(p)
    assert "train-1 (p1): stopped" in all_text(blocks)
    assert "p1=stopped" in console_text(p)


# --------------------------------------------------------------------------- digest


def digest() -> DigestData:
    return DigestData(
        period="daily",
        date=date(2026, 11, 24),
        timezone="Europe/Berlin",
        account="research",
        spend_today=123.456,
        spend_week=500.0,
        spend_month=2100.5,
        top_pods=(DigestItem("train-1 (abc)", 100.0, (0.0, 1.0, 2.0, 4.0, 8.0)),),
        top_gpu_types=(DigestItem("NVIDIA H100 80GB HBM3", 120.0, (3.0, 3.0)),),
        budgets=(
            DigestBudget.from_status(status()),
            DigestBudget("team-monthly", "all pods", "month", 2100.5, 2000.0, 105.03),
        ),
    )


def test_digest_payload() -> None:
    p = digest_payload(digest(), FIRED)
    assert p["id"] == "digest:research:2026-11-24"
    assert p["kind"] == "digest"
    assert p["spend_usd"] == {"today": 123.46, "week_to_date": 500.0, "month_to_date": 2100.5}
    assert p["budgets"][0]["group"] == "GPU NVIDIA H100 80GB HBM3"
    assert p["budgets"][0]["percent"] == 80.46
    no_account = DigestData(
        period="daily",
        date=date(2026, 11, 24),
        timezone="UTC",
        account=None,
        spend_today=0,
        spend_week=0,
        spend_month=0,
    )
    assert digest_payload(no_account, FIRED)["id"] == "digest:all:2026-11-24"


def test_digest_render() -> None:
    p = digest_payload(digest(), FIRED)
    _, blocks = slack_blocks(p)
    body = all_text(blocks)
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
    line = console_text(p)
    assert "h100-daily 80.46%" in line and "team-monthly 105.03%" in line
    assert len(line.splitlines()) == 2


def test_console_text_is_short_and_readable() -> None:
    line = console_text(threshold_payload(contract_finding(), FIRED))
    lines = line.splitlines()
    assert 1 <= len(lines) <= 2
    assert lines[0].startswith("[THRESHOLD]")
    for needle in ("research/h100-daily", "NVIDIA H100 80GB HBM3", "$241.37 / $300.00", "80%"):
        assert needle in line


# --------------------------------------------------------------------------- helpers


def test_sparkline_examples() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0, 7]) == "▁█"
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▂▃▄▅▅▆▇█"
    assert sparkline([5, 5]) == "██"
    assert sparkline([-1, 2]) == "▁█"


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=48))
def test_sparkline_properties(values: list[float]) -> None:
    s = sparkline(values)
    assert len(s) == len(values)
    assert set(s) <= set(SPARK_CHARS)
    if max(values) > 0:
        assert s[values.index(max(values))] == "█"


def test_progress_bar() -> None:
    assert progress_bar(0) == "░░░░░░░░░░ 0%"
    assert progress_bar(80.46) == "▓▓▓▓▓▓▓▓░░ 80%"
    assert progress_bar(100) == "▓▓▓▓▓▓▓▓▓▓ 100%"
    assert progress_bar(250) == "▓▓▓▓▓▓▓▓▓▓ 250%"
    assert progress_bar(79.99) == "▓▓▓▓▓▓▓░░░ 79%"
