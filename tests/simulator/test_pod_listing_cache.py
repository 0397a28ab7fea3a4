"""``GET /pods`` of both APIs answers from serialized pods kept between answers:
every answer is what the pods are at that instant, whatever changed in between
(an action, a test's own edit of a pod, the clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from daemon.simulator import Simulator
from daemon.simulator.pods import v1_json, v2_json
from tests.support.simulator import full_simulator, http, v2_get

__all__ = ["full_simulator"]  # the fixture, imported for pytest


def _v1_get(sim: Simulator, **params: Any) -> Any:
    r = http.get(sim.base_url_for("v1") + "/pods", params=params,
                 headers={"Authorization": f"Bearer {sim.api_key}"})
    assert r.status_code == 200, r.text
    return r.json()


def _expected_v2(sim: Simulator, *, clusters: bool = False) -> list[dict[str, Any]]:
    sc, now = sim.scenario, sim.clock()
    pods = sc.all_pods() if clusters else sc.pods
    return [v2_json(p, now, sc.loaded_at) for p in pods if p.desired_status != "TERMINATED"]


def _same(sim: Simulator) -> None:
    assert v2_get(sim, "/pods")["pods"] == _expected_v2(sim)
    assert v2_get(sim, "/pods", includeClusterPods="true")["pods"] == _expected_v2(
        sim, clusters=True)
    for machine in (False, True):
        params = {"includeMachine": "true"} if machine else {}
        assert _v1_get(sim, **params) == [v1_json(p, machine) for p in sim.scenario.pods]


def test_listings_follow_every_change(full_simulator: Simulator) -> None:
    sim = full_simulator
    _same(sim)
    _same(sim)  # answered from what the first answer kept
    sim.clock.advance(timedelta(minutes=7, seconds=3))  # uptime moves
    _same(sim)
    sim.stop_pod("pod-h100-runaway")
    sim.set_gpu_util("pod-a100-train", 12.0)
    _same(sim)
    pod = sim.pod("pod-a4500-nb")
    pod.name, pod.locked, pod.cost_per_hr = "renamed", True, 0.31  # a test's direct edits
    sim.start_pod("pod-cpu-etl")
    _same(sim)
    r = httpx.post(f"{sim.base_url_for('v2')}/pods/pod-a100-train/action",
                   headers={"Authorization": f"Bearer {sim.api_key}"},
                   json={"action": "terminate"})
    assert r.status_code == 204
    _same(sim)
    assert "pod-a100-train" not in {p["id"] for p in v2_get(sim, "/pods")["pods"]}


def test_a_pod_created_later_than_now_says_created_now(full_simulator: Simulator) -> None:
    sim = full_simulator
    pod = sim.pod("pod-a4500-nb")
    pod.created_at = sim.clock() + timedelta(hours=2)
    (doc,) = [p for p in v2_get(sim, "/pods")["pods"] if p["id"] == pod.id]
    assert doc["createdAt"] == sim.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    _same(sim)
