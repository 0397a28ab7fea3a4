"""Grouping: many alerts for one person-facing notifier become one summary alert."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from daemon.core.model import Alert, Finding, Group, InstanceStatus, Window
from daemon.core.payload import alert_from_finding, encode_json
from daemon.core.summary import summarize, summary_id

NOW = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)
DAY = Window(
    size="day",
    start=datetime(2026, 11, 24, tzinfo=UTC),
    end=datetime(2026, 11, 25, tzinfo=UTC),
    rolling=False,
)


def alert(budget: str, pod: str, spend: float, limit: float = 100.0) -> Alert:
    s = InstanceStatus(
        account="research",
        budget=budget,
        group=Group(pod_id=pod, pod_name=f"train-{pod}"),
        window=DAY,
        spend=spend,
        limit=limit,
        forecast=None,
        thresholds=(80.0,),
        forecast_enabled=False,
    )
    return alert_from_finding(Finding(kind="threshold", status=s, threshold=80.0), ["ops"], NOW)


def many() -> list[Alert]:
    # 23 alerts: 12 of any-pod-daily, 8 of h100-daily, 3 of team-monthly
    out = [alert("any-pod-daily", f"a{i}", 80 + i) for i in range(12)]
    out += [alert("h100-daily", f"h{i}", 85 + 2 * i) for i in range(8)]
    out += [alert("team-monthly", f"t{i}", 81.0) for i in range(3)]
    return out


def test_summary_payload_fields() -> None:
    alerts = many()
    s = summarize(alerts, "ops", NOW)
    p = s.payload
    assert s.kind == "summary" and s.notifiers == ("ops",)
    assert list(p) == ["id", "kind", "fired_at", "count", "top", "by_budget", "alert_ids"]
    assert p["count"] == 23
    assert p["fired_at"] == "2026-11-24T14:05:12Z"
    assert [t["percent"] for t in p["top"]] == [99.0, 97.0, 95.0, 93.0, 91.0]
    assert p["top"][0] == {
        "id": alerts[19].id,
        "kind": "threshold",
        "account": "research",
        "budget": "h100-daily",
        "group": "pod=h7",
        "percent": 99.0,
        "spend_usd": 99.0,
        "limit_usd": 100.0,
    }
    assert p["by_budget"] == [
        {"budget": "any-pod-daily", "count": 12},
        {"budget": "h100-daily", "count": 8},
        {"budget": "team-monthly", "count": 3},
    ]
    assert p["alert_ids"] == sorted(a.id for a in alerts)
    encode_json(p)  # strict JSON


def test_summary_id_is_the_sha_of_the_sorted_member_ids() -> None:
    alerts = many()
    s = summarize(alerts, "ops", NOW)
    sha = hashlib.sha256("\n".join(sorted(a.id for a in alerts)).encode()).hexdigest()[:16]
    assert s.id == f"summary:ops:{sha}" == summary_id("ops", [a.id for a in alerts])
    # order does not matter; other members or another notifier give another id
    assert summarize(list(reversed(alerts)), "ops", NOW).id == s.id
    assert summarize(alerts[1:], "ops", NOW).id != s.id
    assert summarize(alerts, "console", NOW).id != s.id


def test_summary_ranks_alerts_without_percent_last() -> None:
    idle = Alert(
        id="research:idle-dev:pod=p9:2026-11-24T01:00:00Z:idle:2026-11-24T11:00:00Z",
        kind="idle",
        notifiers=("ops",),
        payload={
            "id": "research:idle-dev:pod=p9:2026-11-24T01:00:00Z:idle:2026-11-24T11:00:00Z",
            "kind": "idle",
            "account": "research",
            "guard": "idle-dev",
            "pod_id": "p9",
            "fired_at": "2026-11-24T14:05:12Z",
        },
    )
    p = summarize([idle, alert("h100-daily", "h1", 50.0)], "ops", NOW).payload
    assert [t["kind"] for t in p["top"]] == ["threshold", "idle"]
    assert p["top"][1]["budget"] == "idle-dev" and p["top"][1]["group"] == "pod=p9"
    assert p["top"][1]["percent"] is None


def test_summary_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        summarize([], "ops", NOW)
