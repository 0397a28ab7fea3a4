"""The v2 adapter against the simulator's own v2 routes (FULL_SCENARIO)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from daemon.core.model import PodStatus, Resource
from daemon.core.ports import ApiError
from daemon.simulator import Simulator
from tests.adapters.runpod_support import fast_api, full_simulator, utc

__all__ = ["full_simulator"]  # the fixture, imported for pytest

NOON, TWO = utc(2026, 11, 24, 12), utc(2026, 11, 24, 14)


def test_account_total_and_components_per_family(full_simulator: Simulator) -> None:
    recs = fast_api(full_simulator, "v2").billing("account", bucket="hour", start=NOON, end=TWO)
    assert [(r.resource, r.start, r.hours) for r in recs] == [
        ("total", NOON, 1), ("total", utc(2026, 11, 24, 13), 1)]
    parts = dict(recs[0].components)
    assert parts == pytest.approx({"pods": 8.17, "serverless": 0.9, "storage": 0.19,
                                   "public_endpoints": 0.2, "clusters": 48.0})
    assert recs[0].amount == pytest.approx(sum(parts.values()))
    assert full_simulator.requests[-1].path == "/v2/billing"


@pytest.mark.parametrize(("family", "resources"), [
    ("pods", {"pod-a100-train", "pod-h100-runaway", "pod-cpu-etl", "pod-l4-locked"}),
    ("serverless", {"ep-sdxl"}),
    ("storage", {"vol-data", "vol-fast"}),
    ("clusters", {"clu-train"}),
    ("public_endpoints", {""}),
])
def test_each_family_names_its_resources(full_simulator: Simulator, family: str,
                                         resources: set[str]) -> None:
    recs = fast_api(full_simulator, "v2").billing(family, bucket="hour",  # type: ignore[arg-type]
                                                  start=NOON, end=TWO)
    assert {r.resource for r in recs} == resources
    assert all(r.family == family and NOON <= r.start < TWO and r.hours == 1 for r in recs)


def test_day_buckets(full_simulator: Simulator) -> None:
    recs = fast_api(full_simulator, "v2").billing("clusters", bucket="day",
                                                  start=utc(2026, 11, 24), end=utc(2026, 11, 25))
    (rec,) = recs
    assert (rec.start, rec.end) == (utc(2026, 11, 24), utc(2026, 11, 25))
    assert full_simulator.requests[-1].query["bucketSize"] == ["day"]


def test_pods_lock_actions_utilisation_and_start(full_simulator: Simulator) -> None:
    pods = {p.id: p for p in fast_api(full_simulator, "v2").list_pods()}
    assert "pod-gone" not in pods  # v2 lists only pods that still exist
    locked = pods["pod-l4-locked"]
    assert (locked.locked, locked.can_stop, locked.gpu_count) == (True, False, 2)
    assert locked.gpu_util == (0.0, 0.0)
    assert locked.started_at == utc(2026, 11, 24, 13)  # the second run
    cpu = pods["pod-cpu-etl"]
    assert (cpu.gpu_type, cpu.gpu_count, cpu.gpu_util, cpu.can_stop) == (None, 0, None, True)
    stopped = pods["pod-a4500-nb"]
    assert (stopped.status, stopped.cost_per_hr, stopped.can_stop, stopped.gpu_util) == (
        PodStatus.EXITED, 0.0, False, None)
    assert pods["pod-h100-runaway"].gpu_type == "NVIDIA H100 80GB HBM3"


def test_stop_pod_and_409_for_a_locked_pod(full_simulator: Simulator) -> None:
    api = fast_api(full_simulator, "v2")
    api.stop_pod("pod-h100-runaway")
    sent = full_simulator.requests[-1]
    assert (sent.method, sent.path, sent.status) == (
        "POST", "/v2/pods/pod-h100-runaway/action", 200)
    full_simulator.clock.advance(timedelta(minutes=5))
    assert {p.id: p for p in api.list_pods()}["pod-h100-runaway"].status is PodStatus.EXITED
    with pytest.raises(ApiError) as e:
        api.stop_pod("pod-l4-locked")
    assert (e.value.reason, e.value.permanent, e.value.status) == ("conflict", True, 409)
    assert "pod pod-l4-locked is locked" in str(e.value)
    assert sum(1 for r in full_simulator.requests if r.status == 409) == 1


def test_resources_with_names(full_simulator: Simulator) -> None:
    api = fast_api(full_simulator, "v2")
    assert api.list_resources("serverless") == [Resource("serverless", "ep-sdxl", "sdxl"),
                                                Resource("serverless", "ep-cpu", "cpu-jobs")]
    assert api.list_resources("storage") == [Resource("storage", "vol-data", "data"),
                                             Resource("storage", "vol-fast", "fast")]


def test_retired_v1_and_v2_say_how_to_switch() -> None:
    from tests.adapters.runpod_support import running_simulator

    with running_simulator(retired=("v1",)) as sim:
        with pytest.raises(ApiError) as e:
            fast_api(sim, "v1").list_pods()
        assert (e.value.reason, e.value.permanent) == ("gone", True)
        assert str(e.value) == ("RunPod has retired API v1 (HTTP 410 Gone): set api.version: v2 "
                                f"in the config (GET /pods at {sim.root_url.split('//')[1]})")
        assert fast_api(sim, "v2").list_pods()


def test_v1_and_v2_agree_on_the_families_both_bill(full_simulator: Simulator) -> None:
    old = fast_api(full_simulator, "v1").billing("account", bucket="hour", start=NOON, end=TWO)
    new = fast_api(full_simulator, "v2").billing("account", bucket="hour", start=NOON, end=TWO)
    assert [r.start for r in old] == [r.start for r in new]
    for a, b in zip(old, new, strict=True):
        shared = {k: v for k, v in b.components if k in ("pods", "serverless", "storage")}
        assert dict(a.components) == pytest.approx(shared)
        assert b.amount == pytest.approx(a.amount + 0.2 + 48.0)  # + public endpoints, cluster
