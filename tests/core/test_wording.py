"""Shared words: numbers, bars, sparklines, durations, local times, groups."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.model import Group
from daemon.core.wording import (
    SPARK_CHARS,
    config_duration,
    duration,
    group_label,
    local_time,
    progress_bar,
    refusal_text,
    sparkline,
    window_label,
)


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


def test_durations() -> None:
    assert duration(2 * 3600 + 10 * 60 + 59) == "2 h 10 min"
    assert duration(13 * 3600 + 5 * 60) == "13 h 5 min"
    assert duration(12 * 3600) == "12 h"
    assert duration(45 * 60) == "45 min"
    assert duration(20) == "under 1 min"
    assert duration(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert duration(None) == "—"
    assert config_duration("12h") == "12 h"
    assert config_duration("30m") == "30 min"
    assert config_duration("2w") == "14 d"


def test_local_time_in_the_display_zone() -> None:
    t = "2026-11-24T14:05:12Z"
    assert local_time(t, ZoneInfo("Europe/Berlin")) == "Tue 24 Nov 15:05 CET"
    assert local_time(t, ZoneInfo("UTC")) == "Tue 24 Nov 14:05 UTC"
    summer = datetime(2026, 7, 6, 10, 0, tzinfo=UTC)
    assert local_time(summer, ZoneInfo("Europe/Berlin")) == "Mon 6 Jul 12:00 CEST"
    assert local_time("not a time", ZoneInfo("UTC")) == "?"
    w = {"size": "day", "start": "2026-11-23T23:00:00Z", "end": "2026-11-24T23:00:00Z"}
    assert window_label(w, ZoneInfo("Europe/Berlin")) == (
        "day · Tue 24 Nov 00:00 → Wed 25 Nov 00:00 CET"
    )


def test_group_labels() -> None:
    assert group_label(Group(pod_id="abc", pod_name="train-1")) == "pod train-1 (abc)"
    assert group_label(Group(pod_id="abc", gpu_type="unknown")) == "pod abc · unknown"
    assert group_label(Group(gpu_type="NVIDIA A40")) == "GPU NVIDIA A40"
    assert group_label({"endpoint_id": "ep1", "endpoint_name": "sd-xl"}) == "endpoint sd-xl (ep1)"
    assert group_label({"volume_id": "v1", "volume_name": None}) == "volume v1"
    assert group_label(Group()) == "everything in scope"


def test_reasons_are_never_empty_or_double_negative() -> None:
    for reason in ("locked", "not_stoppable", "stale_data", "unknown", "", "new_reason"):
        text = refusal_text(reason)
        assert text
        assert "not stopping" not in text and "nothing" not in text
    assert refusal_text("unknown") == "stop sent, outcome unknown: not retried blindly"
    assert refusal_text("") == "no reason recorded"


def test_a_guards_stop_is_headed_by_the_guard_not_a_budget_at_zero_percent() -> None:
    from daemon.core.headline import headline

    guard = {
        "kind": "enforcement", "budget": "idle-dev", "percent": 0.0, "limit_usd": 0.0,
        "action": "would_stop", "reason": "dry_run", "pod_id": "p1", "pod_name": "dev-1",
        "dry_run": True,
        "enforcement": {"at_percent": 0, "dry_run": True, "pods": [
            {"pod_id": "p1", "pod_name": "dev-1", "result": "would_stop", "detail": ""}]},
    }
    line = headline(guard)
    assert "Guard idle-dev:" in line and "would stop" in line and "0%" not in line
    budget = {**guard, "budget": "team", "percent": 130.0, "limit_usd": 100.0}
    assert "Budget team at 130%" in headline(budget)
