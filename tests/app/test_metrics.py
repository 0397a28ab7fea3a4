"""Metrics names, label housekeeping and a promtool lint of the exposition."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.adapters.runpod import RequestInfo
from daemon.app.metrics import CONTENT_TYPE, Metrics, register_process_metrics
from daemon.core.model import Group, InstanceStatus, Window


def status(
    budget: str = "team-monthly",
    group: Group | None = None,
    spend: float = 50.0,
    limit: float = 200.0,
    forecast: float | None = 180.0,
) -> InstanceStatus:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return InstanceStatus(
        account="research",
        budget=budget,
        group=group or Group(),
        window=Window(
            size="month", start=start, end=datetime(2026, 12, 1, tzinfo=UTC), rolling=False
        ),
        spend=spend,
        limit=limit,
        forecast=forecast,
        thresholds=(80.0, 100.0),
        forecast_enabled=True,
    )


def exercise(m: Metrics) -> None:
    """Set one value of every metric (also used by tests/deploy)."""
    m.replace_instances([status(), status("per-pod", Group(pod_id="p1", pod_name="train-1"))])
    m.observe_api("/billing/pods", 200, 0.2)
    m.observe_api("/pods", None, 10.0, reason="timeout")
    m.init_notifiers(["ops"])
    m.notification("ops", "threshold", ok=True)
    m.notification("ops", "threshold", ok=False, permanent=True)
    m.set_pending({"ops": 2})
    m.enforcement("would_stop", "budget_exceeded")
    m.poll(ok=True, at=1_700_000_000.0, seconds=1.5)
    m.poll(ok=False, at=1_700_000_300.0)
    m.observe_cycle(0.5)
    m.job_error("digest")
    m.config_reload(ok=True)


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, tuple(sorted(labels.items()))))


def names(m: Metrics) -> set[str]:
    return {name for name, _ in samples(m)}


EXPECTED = {
    "runpod_budget_budget_spend_usd",
    "runpod_budget_budget_limit_usd",
    "runpod_budget_budget_used_ratio",
    "runpod_budget_budget_forecast_usd",
    "runpod_budget_budget_window_end_timestamp_seconds",
    "runpod_budget_budget_instances",
    "runpod_budget_api_requests_total",
    "runpod_budget_api_errors_total",
    "runpod_budget_api_request_duration_seconds_bucket",
    "runpod_budget_api_request_duration_seconds_sum",
    "runpod_budget_api_request_duration_seconds_count",
    "runpod_budget_notifications_sent_total",
    "runpod_budget_notifications_failed_total",
    "runpod_budget_outbox_pending",
    "runpod_budget_enforcement_actions_total",
    "runpod_budget_polls_total",
    "runpod_budget_last_successful_poll_timestamp_seconds",
    "runpod_budget_cycle_duration_seconds_bucket",
    "runpod_budget_job_errors_total",
    "runpod_budget_config_reloads_total",
    "runpod_budget_build_info",
}


def test_every_metric_is_exported_with_conventional_names() -> None:
    m = Metrics(version="1.2.3")
    exercise(m)
    got = names(m)
    assert got >= EXPECTED, EXPECTED - got
    for n in got:
        assert n.startswith(("runpod_budget_", "process_", "python_")), n


def test_registries_are_private() -> None:
    a, b = Metrics(version="x"), Metrics(version="x")
    a.poll(ok=True, at=10.0)
    assert value(a, "runpod_budget_polls_total", result="ok") == 1.0
    assert value(b, "runpod_budget_polls_total", result="ok") == 0.0


def test_instance_values_and_ratio() -> None:
    m = Metrics(version="x")
    m.set_instance(status(spend=50.0, limit=200.0, forecast=180.0))
    labels = {"account": "research", "budget": "team-monthly", "group": "all", "window": "month"}
    assert value(m, "runpod_budget_budget_spend_usd", **labels) == 50.0
    assert value(m, "runpod_budget_budget_limit_usd", **labels) == 200.0
    assert value(m, "runpod_budget_budget_used_ratio", **labels) == 0.25
    assert value(m, "runpod_budget_budget_forecast_usd", **labels) == 180.0
    assert value(m, "runpod_budget_budget_window_end_timestamp_seconds", **labels) == (
        datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    )
    m.set_instance(status(spend=60.0, forecast=None))
    assert value(m, "runpod_budget_budget_spend_usd", **labels) == 60.0
    assert value(m, "runpod_budget_budget_forecast_usd", **labels) is None


def test_replace_instances_drops_stale_label_sets() -> None:
    m = Metrics(version="x")
    pod1 = status("per-pod", Group(pod_id="p1"))
    pod2 = status("per-pod", Group(pod_id="p2"), forecast=None)
    m.replace_instances([pod1, pod2])
    assert value(m, "runpod_budget_budget_instances") == 2.0
    m.replace_instances([pod2])
    got = samples(m)
    groups = {dict(lbl).get("group") for (n, lbl) in got if n.startswith("runpod_budget_budget_")}
    assert "pod=p1" not in groups
    assert "pod=p2" in groups
    assert value(m, "runpod_budget_budget_instances") == 1.0
    m.replace_instances([])
    assert not [n for (n, lbl) in samples(m) if n == "runpod_budget_budget_spend_usd"]


def test_api_counters() -> None:
    m = Metrics(version="x")
    m.observe_api("/billing/pods", 200, 0.3)
    m.observe_api("/billing/pods", 429, 0.1, reason="http_429")
    m.on_api_request(RequestInfo("GET", "/billing/pods", None, 10.0, "timeout"))
    assert value(m, "runpod_budget_api_requests_total", endpoint="/billing/pods", status="200") == 1
    assert value(m, "runpod_budget_api_requests_total", endpoint="/billing/pods", status="429") == 1
    assert (
        value(m, "runpod_budget_api_requests_total", endpoint="/billing/pods", status="error") == 1
    )
    assert (
        value(m, "runpod_budget_api_errors_total", endpoint="/billing/pods", reason="timeout") == 1
    )
    assert (
        value(m, "runpod_budget_api_request_duration_seconds_count", endpoint="/billing/pods") == 3
    )


def test_notifications_and_pending() -> None:
    m = Metrics(version="x")
    m.init_notifiers(["ops", "finance"])
    assert (
        value(m, "runpod_budget_notifications_failed_total", notifier="ops", permanent="true") == 0
    )
    m.notification("ops", "forecast", ok=True)
    m.notification("ops", "forecast", ok=False, permanent=False)
    assert value(m, "runpod_budget_notifications_sent_total", notifier="ops", kind="forecast") == 1
    assert (
        value(m, "runpod_budget_notifications_failed_total", notifier="ops", permanent="false") == 1
    )
    m.set_pending({"ops": 3, "finance": 1})
    assert value(m, "runpod_budget_outbox_pending", notifier="ops") == 3
    m.set_pending({"finance": 0})
    assert value(m, "runpod_budget_outbox_pending", notifier="ops") == 0


def test_enforcement_actions_are_validated() -> None:
    m = Metrics(version="x")
    m.enforcement("stopped", "budget_exceeded")
    assert (
        value(
            m, "runpod_budget_enforcement_actions_total", action="stopped", reason="budget_exceeded"
        )
        == 1
    )
    with pytest.raises(ValueError, match="unknown enforcement action"):
        m.enforcement("exploded", "x")


def test_poll_sets_last_success_only_when_ok() -> None:
    m = Metrics(version="x")
    assert value(m, "runpod_budget_polls_total", result="error") == 0  # pre-created
    m.poll(ok=True, at=100.0)
    m.poll(ok=False, at=200.0)
    assert value(m, "runpod_budget_last_successful_poll_timestamp_seconds") == 100.0
    assert value(m, "runpod_budget_polls_total", result="ok") == 1
    assert value(m, "runpod_budget_polls_total", result="error") == 1


def test_build_info_version() -> None:
    m = Metrics(version="9.9.9")
    assert value(m, "runpod_budget_build_info", version="9.9.9") == 1.0


def test_content_type_is_classic_text_format() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_promtool_check_metrics_passes() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    m = Metrics(version="1.0.0")
    exercise(m)
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=m.render(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_process_metrics_without_proc_stat(tmp_path: Path) -> None:
    """Under ProcSubset=pid /proc/stat is hidden: the fallback still exports
    memory, CPU and fds from /proc/self."""
    fake_proc = tmp_path / "proc"
    fake_proc.mkdir()
    (fake_proc / "self").symlink_to(Path("/proc/self"))
    registry = CollectorRegistry()
    register_process_metrics(registry, proc=str(fake_proc))
    got = {
        s.name: s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    assert got["process_resident_memory_bytes"] > 0
    assert got["process_cpu_seconds_total"] > 0
    assert got["process_open_fds"] > 0
    assert got["process_start_time_seconds"] > 1_600_000_000


def test_process_metrics_standard_collector() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    text = generate_latest(registry).decode()
    assert "process_resident_memory_bytes" in text
    assert "process_max_fds" in text  # only the standard collector has it
