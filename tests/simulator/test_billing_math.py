"""Properties of the simulator's billing arithmetic: no spend lost or invented by bucketing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.simulator.billing import (
    BUCKETS,
    ceil_bucket,
    edges,
    floor_bucket,
    iso_z,
    next_bucket,
    pod_records,
)
from daemon.simulator.billing_v2 import family_answer
from daemon.simulator.scenario import PodSpec, Scenario

NOW = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)
EPOCH = datetime(2025, 12, 20, tzinfo=UTC)

minutes = st.integers(min_value=0, max_value=int((NOW - EPOCH).total_seconds() // 60) + 600)


@st.composite
def pods(draw: st.DrawFn) -> list[PodSpec]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        cuts = sorted(draw(st.lists(minutes, min_size=2, max_size=6, unique=True)))
        pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
        running: list[tuple[datetime, datetime | None]] = [
            (EPOCH + timedelta(minutes=a), EPOCH + timedelta(minutes=b)) for a, b in pairs]
        if draw(st.booleans()):
            running.append((EPOCH + timedelta(minutes=cuts[-1] + 1), None))
        out.append(PodSpec(id=f"p{i}", cost_per_hr=draw(st.sampled_from([0.25, 1.64, 5.98])),
                           gpu_type=draw(st.sampled_from(["NVIDIA L4", "NVIDIA  RTX A4500"])),
                           running=running))
    return out


def expected_total(ps: list[PodSpec]) -> float:
    total = 0.0
    for p in ps:
        for s, e in p.running:
            end = min(NOW, e or NOW)
            if end > s:
                total += p.cost_per_hr * (end - s).total_seconds() / 3600
    return total


@settings(max_examples=60, deadline=None)
@given(pods(), st.sampled_from(BUCKETS), st.sampled_from(["podId", "gpuTypeId"]))
def test_every_bucket_size_sums_to_the_same_spend(
    ps: list[PodSpec], size: str, grouping: str
) -> None:
    recs = pod_records(ps, size=size, start=EPOCH - timedelta(days=400),
                       end=NOW + timedelta(days=400), grouping=grouping, now=NOW)
    # each record is rounded to 6 places: allow half a micro-dollar per record
    assert abs(sum(r["amount"] for r in recs) - expected_total(ps)) <= 5e-7 * len(recs) + 1e-9
    for r in recs:
        t = datetime.fromisoformat(r["time"].replace("Z", "+00:00"))
        assert floor_bucket(t, size) == t
        assert t <= NOW
        assert r["amount"] > 0


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)), st.sampled_from(BUCKETS))
def test_buckets_tile_time(t: datetime, size: str) -> None:
    start = floor_bucket(t, size)
    assert start <= t < next_bucket(start, size)
    assert floor_bucket(next_bucket(start, size), size) == next_bucket(start, size)
    if size == "week":
        assert start.weekday() == 0


@settings(max_examples=40, deadline=None)
@given(pods(), st.sampled_from(BUCKETS), st.integers(0, 400), st.integers(1, 400))
def test_v2_pod_records_keep_every_cent_once(
    ps: list[PodSpec], size: str, back_days: int, span_days: int
) -> None:
    """v2: one record per pod per bucket inside the window, components adding up,
    and over a window covering everything the same spend as the intervals."""
    start = floor_bucket(NOW - timedelta(days=back_days), size)
    end = ceil_bucket(start + timedelta(days=span_days), size)
    doc = family_answer(Scenario(pods=ps), "pods", edges(start, end, size), NOW,
                        query={})
    keys = [(r["startTime"], r["podId"]) for r in doc["records"]]
    assert len(keys) == len(set(keys)) == doc["metadata"]["recordCount"]
    assert keys == sorted(keys)
    for r in doc["records"]:
        assert iso_z(start) <= r["startTime"] < iso_z(end)
        assert r["endTime"] == iso_z(next_bucket(
            datetime.fromisoformat(r["startTime"].replace("Z", "+00:00")), size))
        assert abs(r["gpuAmount"] + r["cpuAmount"] + r["diskAmount"] - r["totalAmount"]) < 1e-9
    whole = family_answer(Scenario(pods=ps), "pods",
                          edges(floor_bucket(EPOCH, size),
                                ceil_bucket(NOW + timedelta(hours=1), size), size),
                          NOW, query={})
    assert abs(whole["metadata"]["totals"]["totalAmount"] - expected_total(ps)) <= (
        5e-7 * len(whole["records"]) + 1e-9)
