"""Payloads: the contract's webhook JSON for every kind, ids, and strict numbers."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest

from daemon.core.model import Balance, Contributor, Finding, Group, InstanceStatus, Pod, Window
from daemon.core.model import PodStatus as S
from daemon.core.payload import (
    PayloadError,
    alert_from_finding,
    alert_from_payload,
    budget_payload,
    encode_json,
    health_payload,
    threshold_payload,
    to_alert,
)
from daemon.core.payload import test_payload as make_test_payload
from daemon.core.payload_digest import DigestBudget, DigestData, DigestItem, digest_payload
from daemon.core.payload_enforcement import enforcement_payload
from daemon.core.payload_pods import (
    BalanceLevel,
    balance_payload,
    idle_payload,
    uptime_payload,
)

# The contract's example, with the group keys "What a budget counts" adds.
CONTRACT_JSON = """
{
  "id": "research:h100-daily:gpu=NVIDIA H100 80GB HBM3:2026-11-24T00:00:00Z:threshold:80",
  "kind": "threshold",
  "account": "research",
  "budget": "h100-daily",
  "group": {"pod_id": null, "pod_name": null, "gpu_type": "NVIDIA H100 80GB HBM3",
            "endpoint_id": null, "endpoint_name": null, "volume_id": null, "volume_name": null},
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
STARTED = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


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


def pod(**kw: object) -> Pod:
    base: dict[str, object] = {
        "id": "xedezhzb9la3ye",
        "name": "dev-anna",
        "desired_status": S.RUNNING,
        "cost_per_hr": 3.99,
        "gpu_type": "NVIDIA H100 80GB HBM3",
        "gpu_count": 1,
        "gpu_util": (0.0,),
        "started_at": STARTED,
    }
    base.update(kw)
    return Pod(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- threshold, forecast


def test_contract_example_payload_is_exactly_the_contract() -> None:
    expected = json.loads(CONTRACT_JSON)
    got = threshold_payload(contract_finding(), FIRED)
    assert got == expected
    assert list(got) == list(expected)  # same keys, same order
    assert list(got["group"]) == list(expected["group"])
    assert list(got["window"]) == list(expected["window"])
    assert type(got["threshold_percent"]) is int
    assert type(got["limit_usd"]) is float
    assert type(got["percent"]) is float
    assert json.loads(encode_json(got)) == expected


def test_alert_from_finding() -> None:
    alert = alert_from_finding(contract_finding(), ["ops", "finance"], FIRED)
    assert alert.id == json.loads(CONTRACT_JSON)["id"]
    assert alert.kind == "threshold"
    assert alert.notifiers == ("ops", "finance")
    assert alert.payload == json.loads(CONTRACT_JSON)


def test_typed_record_and_alert_agree() -> None:
    record = budget_payload(contract_finding(), FIRED)
    assert record.id == contract_finding().alert_id
    assert to_alert(record, ["ops"]).payload == record.to_json()


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
    assert set(p["group"].values()) == {None}
    assert p["id"].split(":")[2] == "all"


@pytest.mark.parametrize(
    ("group", "key", "present"),
    [
        (
            Group(endpoint_id="ep1", endpoint_name="sd-xl"),
            "endpoint=ep1",
            ("endpoint_id", "endpoint_name"),
        ),
        (Group(volume_id="vol9", volume_name="data"), "volume=vol9", ("volume_id", "volume_name")),
        (Group(pod_id="abc", pod_name=None, gpu_type="unknown"), "pod=abc", ("pod_id", "gpu_type")),
    ],
)
def test_group_object_has_every_key_null_where_it_does_not_apply(
    group: Group, key: str, present: tuple[str, ...]
) -> None:
    p = threshold_payload(
        Finding(kind="threshold", status=status(group=group), threshold=80.0), FIRED
    )
    assert list(p["group"]) == [
        "pod_id", "pod_name", "gpu_type", "endpoint_id", "endpoint_name",
        "volume_id", "volume_name",
    ]  # fmt: skip
    assert {k for k, v in p["group"].items() if v is not None} == set(present)
    assert f":{key}:" in p["id"]


# --------------------------------------------------------------------------- strict numbers


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["spend", "forecast", "limit", "contributor"])
def test_non_finite_numbers_are_refused_when_building(bad: float, where: str) -> None:
    kw: dict[str, object] = {where: bad} if where != "contributor" else {}
    if where == "contributor":
        kw["contributors"] = (Contributor("train-1", bad),)
    f = Finding(kind="threshold", status=status(**kw), threshold=80.0)  # type: ignore[arg-type]
    with pytest.raises(PayloadError) as ei:
        alert_from_finding(f, ["ops"], FIRED)
    assert isinstance(ei.value, ValueError)  # the pipeline catches it per alert
    assert f.alert_id in str(ei.value)


def test_json_encoding_is_strict() -> None:
    p = threshold_payload(contract_finding(), FIRED)
    p["spend_usd"] = math.inf  # e.g. a payload changed after it was built
    with pytest.raises(PayloadError):
        encode_json(p)
    with pytest.raises(PayloadError):
        alert_from_payload(p, ["ops"])
    p["spend_usd"] = {"nested": [1.0, math.nan]}
    with pytest.raises(PayloadError) as ei:
        alert_from_payload(p, ["ops"])
    assert "spend_usd.nested[1]" in str(ei.value)


# --------------------------------------------------------------------------- enforcement


def enforcement(**kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "instance_key": status().instance_key,
        "enforce_at": 120,
        "action": "stopped",
        "reason": "",
        "pod_id": "p1",
        "pod_name": "train-1",
        "dry_run": False,
        "fired_at": FIRED,
    }
    args.update(kw)
    return enforcement_payload(status(spend=400.0), **args).to_json()  # type: ignore[arg-type]


def test_enforcement_payload_has_the_enforcers_fields_in_order() -> None:
    p = enforcement()
    assert p["id"] == (
        "research:h100-daily:gpu=NVIDIA H100 80GB HBM3:2026-11-24T00:00:00Z:enforce:p1:stopped"
    )
    assert list(p) == [
        "id", "kind", "account", "budget", "group", "window", "spend_usd", "limit_usd",
        "percent", "threshold_percent", "forecast_usd", "fired_at", "enforcement",
        "action", "reason", "pod_id", "pod_name", "dry_run",
    ]  # fmt: skip
    assert p["kind"] == "enforcement"
    assert p["threshold_percent"] == 120
    assert p["enforcement"] == {
        "at_percent": 120,
        "dry_run": False,
        "pods": [{"pod_id": "p1", "pod_name": "train-1", "result": "stopped", "detail": ""}],
    }


@pytest.mark.parametrize(
    ("reason", "needle"),
    [("locked", "locked"), ("not_stoppable", "no stop action"), ("protected", "except_pods")],
)
def test_refusals_carry_their_reason_and_a_sentence(reason: str, needle: str) -> None:
    p = enforcement(action="refused", reason=reason)
    assert p["id"].endswith(f":enforce:p1:refused:{reason}")
    assert p["reason"] == reason
    pod = p["enforcement"]["pods"][0]  # type: ignore[index]
    assert pod["result"] == "refused"
    assert needle in pod["detail"]


def test_unknown_outcome_and_instance_wide_refusal() -> None:
    p = enforcement(action="unknown", reason="unknown_after_crash")
    assert p["action"] == "unknown"
    assert p["id"].endswith(":enforce:p1:unknown")
    assert "not repeated blindly" in p["enforcement"]["pods"][0]["detail"]  # type: ignore[index]
    wide = enforcement(action="refused", reason="stale_data", pod_id=None, pod_name=None)
    assert wide["id"].endswith(":enforce:-:refused:stale_data")
    assert wide["enforcement"]["pods"] == []  # type: ignore[index]
    assert "stale" in wide["enforcement"]["detail"]  # type: ignore[index]


def test_failed_stop_keeps_the_error_as_detail() -> None:
    p = enforcement(action="failed", reason="server", error="RunPod API: HTTP 503")
    assert p["enforcement"]["pods"][0]["detail"] == "RunPod API: HTTP 503"  # type: ignore[index]


# --------------------------------------------------------------------------- test, health


def test_test_payload() -> None:
    p = make_test_payload("ops", FIRED)
    assert p["kind"] == "test"
    assert p["id"] == "test:ops:2026-11-24T14:05:12Z"
    assert "TEST" in p["text"]


def test_health_payload_billing_keeps_its_id_and_adds_source_last() -> None:
    since = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    p = health_payload("unusable", "research", since, "x" * 1000, FIRED)
    assert p["id"] == "research:health:unusable:2026-11-24T13:00:00Z"
    assert list(p) == [
        "id", "kind", "account", "state", "since", "last_error", "text", "fired_at", "source",
    ]  # fmt: skip
    assert p["source"] == "billing"
    assert len(p["last_error"]) == 300


@pytest.mark.parametrize("source", ["pods", "balance"])
def test_health_payload_other_sources_have_their_own_ids(source: str) -> None:
    since = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    p = health_payload("unusable", "research", since, "HTTP 410", FIRED, source=source)  # type: ignore[arg-type]
    assert p["id"] == f"research:health:{source}:unusable:2026-11-24T13:00:00Z"
    assert p["source"] == source
    recovered = health_payload("recovered", "research", since, None, FIRED, source=source)  # type: ignore[arg-type]
    assert recovered["id"] == f"research:health:{source}:recovered:2026-11-24T13:00:00Z"


# --------------------------------------------------------------------------- guards


def test_idle_payload_fields_and_id() -> None:
    idle_since = datetime(2026, 11, 24, 11, 55, tzinfo=UTC)
    r = idle_payload(
        account="research", guard="idle-dev-pods", pod=pod(), gpu_util=0.0,
        idle_since=idle_since, fired_at=FIRED,
    )  # fmt: skip
    p = r.to_json()
    assert p["id"] == (
        "research:idle-dev-pods:pod=xedezhzb9la3ye:2026-11-24T01:00:00Z:idle:2026-11-24T11:55:00Z"
    )
    assert r.id == p["id"] and r.kind == "idle"
    assert p == {
        "id": p["id"],
        "kind": "idle",
        "account": "research",
        "guard": "idle-dev-pods",
        "pod_id": "xedezhzb9la3ye",
        "pod_name": "dev-anna",
        "gpu_type": "NVIDIA H100 80GB HBM3",
        "cost_per_hr": 3.99,
        "run_started_at": "2026-11-24T01:00:00Z",
        "gpu_util": 0.0,
        "idle_since": "2026-11-24T11:55:00Z",
        "fired_at": "2026-11-24T14:05:12Z",
    }
    assert list(p)[-1] == "fired_at"


def test_idle_payload_refuses_a_non_finite_utilisation() -> None:
    with pytest.raises(PayloadError):
        idle_payload(
            account="a", guard="g", pod=pod(), gpu_util=math.nan, idle_since=FIRED, fired_at=FIRED
        )


def test_uptime_payload_fields_and_id() -> None:
    fired = STARTED + timedelta(hours=13, minutes=5)
    p = uptime_payload(
        account="research", guard="sweep-ttl", pod=pod(name="sweep-3", cost_per_hr=2.99),
        uptime_over="12h", fired_at=fired,
    ).to_json()  # fmt: skip
    assert p["id"] == "research:sweep-ttl:pod=xedezhzb9la3ye:2026-11-24T01:00:00Z:uptime"
    assert p["uptime_hours"] == 13.08
    assert p["run_started_at"] == "2026-11-24T01:00:00Z"
    assert list(p) == [
        "id", "kind", "account", "guard", "pod_id", "pod_name", "gpu_type", "cost_per_hr",
        "run_started_at", "uptime_hours", "fired_at", "uptime_over",
    ]  # fmt: skip


def test_uptime_needs_a_start_time() -> None:
    with pytest.raises(ValueError, match="no start time"):
        uptime_payload(
            account="a", guard="g", pod=pod(started_at=None), uptime_over="1h", fired_at=FIRED
        )


# --------------------------------------------------------------------------- balance


def test_balance_payload_below_usd() -> None:
    crossed = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    p = balance_payload(
        account="research", balance=Balance(balance=23.1, spend_per_hr=4.2),
        level=BalanceLevel("below_usd", 25.0), crossed_at=crossed, fired_at=FIRED,
    ).to_json()  # fmt: skip
    assert p["id"] == "research:balance:below_usd:25:2026-11-24T14:00:00Z"
    assert list(p)[:8] == [
        "id", "kind", "account", "balance_usd", "spend_per_hr_usd", "runway_hours", "level",
        "fired_at",
    ]  # fmt: skip
    assert p["level"] == {"type": "below_usd", "value": 25}
    assert type(p["level"]["value"]) is int
    assert p["runway_hours"] == 5.5
    assert "At $0 RunPod stops every pod" in p["text"]


def test_balance_payload_runway_and_nothing_burning() -> None:
    crossed = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    runway = balance_payload(
        account="research", balance=Balance(balance=20.0, spend_per_hr=4.0),
        level=BalanceLevel("runway_below", "6h"), crossed_at=crossed, fired_at=FIRED,
    ).to_json()  # fmt: skip
    assert runway["id"] == "research:balance:runway_below:6h:2026-11-24T14:00:00Z"
    assert runway["level"] == {"type": "runway_below", "value": "6h"}
    idle = balance_payload(
        account="research", balance=Balance(balance=20.0, spend_per_hr=0.0),
        level=BalanceLevel("below_usd", 25.0), crossed_at=crossed, fired_at=FIRED,
    ).to_json()  # fmt: skip
    assert idle["runway_hours"] is None
    assert json.loads(encode_json(idle))["runway_hours"] is None


def test_balance_payload_refuses_infinite_burn() -> None:
    with pytest.raises(PayloadError):
        balance_payload(
            account="a", balance=Balance(balance=10.0, spend_per_hr=math.inf),
            level=BalanceLevel("below_usd", 25.0), crossed_at=FIRED, fired_at=FIRED,
        )  # fmt: skip


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
            DigestBudget("team-monthly", "everything in scope", "month", 2100.5, 2000.0, 105.03),
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


def test_digest_refuses_a_nan_in_a_series() -> None:
    bad = DigestData(
        period="daily", date=date(2026, 11, 24), timezone="UTC", account=None,
        spend_today=1.0, spend_week=1.0, spend_month=1.0,
        top_pods=(DigestItem("p", 1.0, (1.0, math.nan)),),
    )  # fmt: skip
    with pytest.raises(PayloadError, match=r"top_pods\[0\]\.hourly\[1\]"):
        digest_payload(bad, FIRED)


def test_every_refusal_reason_has_a_sentence() -> None:
    from daemon.core.payload_enforcement import REFUSAL_REASONS
    from daemon.core.wording import refusal_text

    assert {"locked", "not_stoppable"} <= set(REFUSAL_REASONS)
    for reason in REFUSAL_REASONS:
        assert refusal_text(reason) != reason


def test_a_refusal_without_a_recorded_reason_still_says_so() -> None:
    p = enforcement(action="refused", reason="")
    assert p["enforcement"]["pods"][0]["detail"] == "no reason recorded"  # type: ignore[index]
