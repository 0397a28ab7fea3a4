"""REST v2 pods, serverless endpoints and volumes of the simulator; the pod state machine.

``FULL_SCENARIO`` at 2026-11-24T14:05:12Z (see tests/support/simulator.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from daemon.simulator import Simulator
from tests.support.simulator import TEST_KEY, full_simulator, http, running_simulator, v2_get

__all__ = ["full_simulator"]  # the fixture, imported for pytest

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def act(sim: Simulator, pod: str, action: Any) -> httpx.Response:
    return http.post(f"{sim.base_url_for('v2')}/pods/{pod}/action", headers=AUTH,
                      json={"action": action})


def test_pod_listing(full_simulator: Simulator) -> None:
    pods = {p["id"]: p for p in v2_get(full_simulator, "/pods")["pods"]}
    # terminated pods no longer exist; cluster members only on request
    assert set(pods) == {"pod-a100-train", "pod-h100-runaway", "pod-a4500-nb", "pod-cpu-etl",
                         "pod-l4-locked", "pod-hp-vol"}
    h100 = pods["pod-h100-runaway"]
    assert (h100["status"], h100["cost"], h100["gpu"]) == (
        "RUNNING", 5.98, {"id": "NVIDIA H100 80GB HBM3", "count": 2})
    assert h100["actions"] == ["stop", "restart", "terminate"]
    assert h100["startedAt"] == "2026-11-23T22:30:00Z"
    assert h100["runtime"]["uptime"] == 15 * 3600 + 35 * 60 + 12
    assert h100["runtime"]["gpus"] == [{"util": 90, "memoryUtil": 77}] * 2
    nb = pods["pod-a4500-nb"]
    assert (nb["status"], nb["cost"], nb["runtime"], nb["startedAt"]) == ("EXITED", 0.0, None,
                                                                         None)
    assert nb["actions"] == ["start", "terminate"]
    cpu = pods["pod-cpu-etl"]
    assert "gpu" not in cpu and cpu["cpu"] == {"id": "cpu3c", "vcpuCount": 4, "memory": 16}
    assert cpu["runtime"]["gpus"] == []
    assert pods["pod-hp-vol"]["mounts"] == {"network": [{"volumeId": "vol-fast",
                                                         "path": "/workspace"}]}
    with_clusters = v2_get(full_simulator, "/pods", includeClusterPods="true")["pods"]
    members = [p for p in with_clusters if "cluster" in p]
    assert [(p["cluster"], p["actions"]) for p in members] == [
        ({"id": "clu-train", "rank": 0}, []), ({"id": "clu-train", "rank": 1}, [])]


def test_restart_and_gpu_util_timeline(full_simulator: Simulator) -> None:
    pod = v2_get(full_simulator, "/pods/pod-l4-locked")
    assert pod["locked"] is True
    assert pod["actions"] == []  # running and locked: no stop, restart or terminate
    assert pod["startedAt"] == "2026-11-24T13:00:00Z"  # the current run, after a restart
    assert pod["createdAt"] == "2026-11-24T10:00:00Z"
    assert [g["util"] for g in pod["runtime"]["gpus"]] == [0, 0]  # every GPU, since 13:30
    full_simulator.set_gpu_util("pod-l4-locked", 42.4)
    assert [g["util"] for g in v2_get(full_simulator, "/pods/pod-l4-locked")["runtime"]["gpus"]
            ] == [42, 42]
    r = act(full_simulator, "pod-a100-train", "restart")
    assert r.status_code == 200
    assert (r.json()["startedAt"], r.json()["runtime"]["uptime"]) == ("2026-11-24T14:05:12Z", 0)
    full_simulator.clock.advance(timedelta(minutes=10))
    assert v2_get(full_simulator, "/pods/pod-a100-train")["runtime"]["uptime"] == 600


def test_stop_then_start_follow_the_status_rules(full_simulator: Simulator) -> None:
    r = act(full_simulator, "pod-a100-train", "stop")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["cost"], body["runtime"], body["actions"]) == (
        "EXITED", 0.0, None, ["start", "terminate"])
    again = act(full_simulator, "pod-a100-train", "stop")
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["title"] == "Conflict"
    assert "EXITED" in again.json()["detail"]
    full_simulator.clock.advance(timedelta(minutes=1))
    started = act(full_simulator, "pod-a100-train", "start")
    assert (started.status_code, started.json()["status"]) == (200, "RUNNING")
    assert started.json()["startedAt"] == "2026-11-24T14:06:12Z"
    assert act(full_simulator, "pod-a100-train", "start").status_code == 409
    assert act(full_simulator, "pod-a4500-nb", "restart").status_code == 409


def test_locked_and_cluster_pods_refuse_stop_with_409(full_simulator: Simulator) -> None:
    locked = act(full_simulator, "pod-l4-locked", "stop")
    assert locked.status_code == 409
    assert "locked" in locked.json()["detail"]
    member = act(full_simulator, "clu-train-node1", "stop")
    assert member.status_code == 409
    assert "cluster" in member.json()["detail"]
    assert full_simulator.pod("pod-l4-locked").desired_status == "RUNNING"
    assert full_simulator.pod("clu-train-node1").desired_status == "RUNNING"


def test_terminate_is_204_and_the_pod_is_gone(full_simulator: Simulator) -> None:
    r = act(full_simulator, "pod-cpu-etl", "terminate")
    assert (r.status_code, r.content) == (204, b"")
    assert "pod-cpu-etl" not in {p["id"] for p in v2_get(full_simulator, "/pods")["pods"]}
    gone = v2_get(full_simulator, "/pods/pod-cpu-etl", status=404)
    assert gone["status"] == 404 and gone["title"] == "Not Found"
    assert act(full_simulator, "pod-cpu-etl", "start").status_code == 404
    # its spend stays in the billing history
    bill = v2_get(full_simulator, "/billing/pods", podId="pod-cpu-etl", lastN="1")
    assert bill["records"][0]["totalAmount"] == round(0.12 * (2 + 312 / 3600), 6)


@pytest.mark.parametrize(("body", "status"), [
    ({"action": "explode"}, 422), ({"action": "stop", "now": True}, 422), ({}, 422),
    ([], 422), (None, 400),
])
def test_bad_action_bodies(full_simulator: Simulator, body: Any, status: int) -> None:
    url = f"{full_simulator.base_url_for('v2')}/pods/pod-a100-train/action"
    r = (http.post(url, headers=AUTH, content=b"stop please") if body is None
         else http.post(url, headers=AUTH, json=body))
    assert r.status_code == status
    problem = r.json()
    assert problem["status"] == status
    if status == 422:
        assert problem["errors"]
    assert full_simulator.pod("pod-a100-train").desired_status == "RUNNING"


def test_serverless_and_volumes(full_simulator: Simulator) -> None:
    eps = {e["id"]: e for e in v2_get(full_simulator, "/serverless")["endpoints"]}
    assert set(eps) == {"ep-sdxl", "ep-cpu"}
    assert eps["ep-sdxl"]["gpu"]["pools"] == ["ADA_24"] and "gpu" not in eps["ep-cpu"]
    assert eps["ep-cpu"]["cpu"][0]["id"] == "cpu3c"
    assert v2_get(full_simulator, "/serverless/ep-cpu")["name"] == "cpu-jobs"
    assert v2_get(full_simulator, "/serverless/nope", status=404)["status"] == 404
    vols = v2_get(full_simulator, "/network-volumes")["networkVolumes"]
    assert {(v["id"], v["type"], v["size"]) for v in vols} == {
        ("vol-data", "STANDARD", 200), ("vol-fast", "HIGH_PERFORMANCE", 500)}
    assert v2_get(full_simulator, "/network-volumes/vol-fast")["name"] == "fast"
    assert v2_get(full_simulator, "/network-volumes/nope", status=404)["title"] == "Not Found"


def test_v1_sees_the_same_pods_and_refuses_to_stop_a_locked_one(
    full_simulator: Simulator,
) -> None:
    v1 = {p["id"]: p for p in http.get(full_simulator.base_url + "/pods", headers=AUTH).json()}
    assert v1["pod-l4-locked"]["locked"] is True
    assert not any(pid.startswith("clu-") for pid in v1)
    r = http.post(full_simulator.base_url + "/pods/pod-l4-locked/stop", headers=AUTH)
    assert r.status_code == 409
    assert r.json() == {"error": "pod pod-l4-locked is locked and cannot be stopped",
                        "status": 409}


def test_builtin_demo_has_idle_busy_locked_pods_spend_and_a_low_balance() -> None:
    with running_simulator("demo") as sim:
        pods = {p["name"]: p for p in v2_get(sim, "/pods")["pods"]}
        utils = {n: [g["util"] for g in p["runtime"]["gpus"]] for n, p in pods.items()}
        assert utils["dev-notebook-idle"] == [0, 0]
        assert min(utils["train-llama-ft"]) > 80
        assert pods["prod-inference-locked"]["locked"] is True
        assert "stop" not in pods["prod-inference-locked"]["actions"]
        eps = v2_get(sim, "/billing/serverless", bucketSize="hour", lastN="2")["records"]
        assert eps and eps[0]["totalAmount"] == 0.6
        assert v2_get(sim, "/billing/network-volumes", lastN="1")["records"]
        me = http.post(sim.graphql_url, headers=AUTH, json={
            "query": "{ myself { clientBalance currentSpendPerHr } }"}).json()["data"]["myself"]
        assert me["clientBalance"] == 40.0
        sim.stop_pod("demo7runaway003")  # what the demo's enforcement does within seconds
        burn = sim.spend_per_hr()
    assert 3 < 40.0 / burn < 8  # a runway of a few hours once the runaway is stopped
