"""The simulator as a RunPod stand-in: billing semantics, pods, auth, faults, scenarios.

Raw httpx over loopback, so these tests pin the simulator's wire behaviour
independently of our client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.simulator import FakeClock, Scenario, Simulator
from tests.support.simulator import PINNED_NOW, TEST_KEY, http, running_simulator, simulator

__all__ = ["simulator"]  # the fixture, imported for pytest

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
A4500 = "NVIDIA  RTX A4500"  # two spaces, as in RunPod's own list


def get(sim: Simulator, path: str, **params: Any) -> Any:
    r = http.get(sim.base_url + path, params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def by(records: list[dict[str, Any]], key: str) -> dict[tuple[str, str], float]:
    return {(r["time"], r[key]): r["amount"] for r in records}


# --------------------------------------------------------------------- billing/pods


def test_hour_buckets_by_pod_with_partial_current_hour(simulator: Simulator) -> None:
    recs = get(simulator, "/billing/pods", bucketSize="hour", grouping="podId",
               startTime="2026-11-24T12:00:00Z", endTime="2026-11-24T15:00:00Z")
    assert by(recs, "podId") == {
        ("2026-11-24T12:00:00Z", "pod-a100-train"): 1.64,
        ("2026-11-24T12:00:00Z", "pod-h100-runaway"): 5.98,
        ("2026-11-24T13:00:00Z", "pod-a100-train"): 1.64,
        ("2026-11-24T13:00:00Z", "pod-h100-runaway"): 5.98,
        # 5 min 12 s into the current hour
        ("2026-11-24T14:00:00Z", "pod-a100-train"): 0.142133,
        ("2026-11-24T14:00:00Z", "pod-h100-runaway"): 0.518267,
    }
    full = next(r for r in recs if r["time"] == "2026-11-24T12:00:00Z")
    assert full["timeBilledMs"] == 3_600_000
    assert full["diskSpaceBilledGb"] == 70
    assert [r["time"] for r in recs] == sorted(r["time"] for r in recs)


def test_half_hour_start_is_billed_pro_rata(simulator: Simulator) -> None:
    recs = get(simulator, "/billing/pods", bucketSize="hour", grouping="podId",
               podId="pod-h100-runaway", startTime="2026-11-23T20:00:00Z",
               endTime="2026-11-24T00:00:00Z")
    assert by(recs, "podId") == {
        ("2026-11-23T22:00:00Z", "pod-h100-runaway"): 2.99,
        ("2026-11-23T23:00:00Z", "pod-h100-runaway"): 5.98,
    }


def test_day_buckets_by_gpu_type_default_range(simulator: Simulator) -> None:
    recs = get(simulator, "/billing/pods")  # defaults: bucketSize=day, grouping=gpuTypeId
    assert by(recs, "gpuTypeId") == {
        ("2026-11-20T00:00:00Z", A4500): 3.5,
        ("2026-11-21T00:00:00Z", A4500): 6.0,
        ("2026-11-22T00:00:00Z", A4500): 2.5,
        ("2026-11-23T00:00:00Z", "NVIDIA H100 80GB HBM3"): 8.97,
        ("2026-11-24T00:00:00Z", "NVIDIA A100 80GB PCIe"): 9.982133,
        ("2026-11-24T00:00:00Z", "NVIDIA H100 80GB HBM3"): 84.238267,
    }
    assert all("podId" not in r for r in recs)


def test_default_range_is_the_last_30_days(simulator: Simulator) -> None:
    simulator.clock.set(datetime(2026, 12, 21, 12, tzinfo=UTC))
    simulator.stop_pod("pod-a100-train")
    simulator.stop_pod("pod-h100-runaway")
    simulator.clock.set(datetime(2026, 12, 21, 12, tzinfo=UTC) + timedelta(days=10))
    days = {r["time"][:10] for r in get(simulator, "/billing/pods")}
    # now = 12-31 12:00, so buckets starting from 12-01 12:00 on: 11-20..11-22 are gone
    assert min(days) == "2026-12-02"
    assert max(days) == "2026-12-21"


def test_week_buckets_start_on_monday(simulator: Simulator) -> None:
    recs = get(simulator, "/billing/pods", bucketSize="week",
               startTime="2026-11-01T00:00:00Z", endTime="2026-12-01T00:00:00Z")
    assert by(recs, "gpuTypeId") == {
        ("2026-11-16T00:00:00Z", A4500): 12.0,  # Fri 20th - Sun 22nd, week of Mon 16th
        ("2026-11-23T00:00:00Z", "NVIDIA A100 80GB PCIe"): 9.982133,
        ("2026-11-23T00:00:00Z", "NVIDIA H100 80GB HBM3"): 93.208267,
    }
    for r in recs:
        assert datetime.fromisoformat(r["time"].replace("Z", "+00:00")).weekday() == 0


@pytest.mark.parametrize(("size", "start"), [("month", "2026-11-01T00:00:00Z"),
                                             ("year", "2026-01-01T00:00:00Z")])
def test_month_and_year_buckets(simulator: Simulator, size: str, start: str) -> None:
    recs = get(simulator, "/billing/pods", bucketSize=size, startTime="2026-01-01T00:00:00Z")
    assert by(recs, "gpuTypeId") == {
        (start, A4500): 12.0,
        (start, "NVIDIA A100 80GB PCIe"): 9.982133,
        (start, "NVIDIA H100 80GB HBM3"): 93.208267,
    }


def test_month_bucket_spans_a_month_boundary() -> None:
    scenario = {"pods": [{"id": "p", "gpu_type": "NVIDIA L4", "cost_per_hr": 1.0,
                          "running": [["2026-10-31T22:00:00Z", "2026-11-01T03:00:00Z"]]}]}
    with running_simulator(scenario) as sim:
        recs = get(sim, "/billing/pods", bucketSize="month", startTime="2026-01-01T00:00:00Z")
        years = get(sim, "/billing/pods", bucketSize="year", startTime="2026-01-01T00:00:00Z")
    assert by(recs, "gpuTypeId") == {("2026-10-01T00:00:00Z", "NVIDIA L4"): 2.0,
                                     ("2026-11-01T00:00:00Z", "NVIDIA L4"): 3.0}
    assert by(years, "gpuTypeId") == {("2026-01-01T00:00:00Z", "NVIDIA L4"): 5.0}


def test_range_covers_buckets_starting_in_start_inclusive_end_exclusive(
    simulator: Simulator,
) -> None:
    recs = get(simulator, "/billing/pods", bucketSize="hour", podId="pod-a100-train",
               startTime="2026-11-24T09:30:00Z", endTime="2026-11-24T11:00:00Z")
    # 09:00 starts before startTime; 11:00 starts at endTime: both excluded
    assert [r["time"] for r in recs] == ["2026-11-24T10:00:00Z"]


def test_current_bucket_grows_with_the_clock_closed_ones_do_not(simulator: Simulator) -> None:
    def hours() -> dict[str, float]:
        recs = get(simulator, "/billing/pods", bucketSize="hour", podId="pod-a100-train",
                   startTime="2026-11-24T13:00:00Z")
        return {r["time"][11:16]: r["amount"] for r in recs}

    assert hours() == {"13:00": 1.64, "14:00": 0.142133}
    simulator.clock.advance(timedelta(minutes=30))
    assert hours() == {"13:00": 1.64, "14:00": 0.962133}
    simulator.clock.advance(timedelta(minutes=30))
    assert hours() == {"13:00": 1.64, "14:00": 1.64, "15:00": 0.142133}


def test_filters_pod_id_and_gpu_type_verbatim(simulator: Simulator) -> None:
    one = get(simulator, "/billing/pods", grouping="podId", podId="pod-a4500-nb")
    assert {r["podId"] for r in one} == {"pod-a4500-nb"}
    two_spaces = get(simulator, "/billing/pods", gpuTypeId=A4500, grouping="podId")
    assert {r["podId"] for r in two_spaces} == {"pod-a4500-nb"}
    assert sum(r["amount"] for r in two_spaces) == pytest.approx(12.0)
    assert get(simulator, "/billing/pods", gpuTypeId="NVIDIA RTX A4500") == []
    both = get(simulator, "/billing/pods", podId="pod-a100-train",
               gpuTypeId="NVIDIA H100 80GB HBM3")
    assert both == []


@pytest.mark.parametrize("params", [{"bucketSize": "minute"}, {"grouping": "endpointId"},
                                    {"startTime": "last tuesday"}])
def test_bad_parameters_get_400(simulator: Simulator, params: dict[str, str]) -> None:
    r = http.get(simulator.base_url + "/billing/pods", params=params, headers=AUTH)
    assert r.status_code == 400
    assert next(iter(params)) in r.json()["error"]


# --------------------------------------------------------------------- other billing


def test_network_volumes_and_endpoints(simulator: Simulator) -> None:
    vols = get(simulator, "/billing/networkvolumes", bucketSize="day",
               startTime="2026-11-23T00:00:00Z")
    assert vols == [
        {"amount": 1.2, "time": "2026-11-23T00:00:00Z", "diskSpaceBilledGb": 200},
        {"amount": 0.704333, "time": "2026-11-24T00:00:00Z", "diskSpaceBilledGb": 200},
    ]
    assert get(simulator, "/billing/endpoints", bucketSize="hour", grouping="gpuTypeId",
               dataCenterId=["EU-RO-1", "CA-MTL-1"], endpointId="x") == []


# --------------------------------------------------------------------- pods


def test_pods_list_get_and_filters(simulator: Simulator) -> None:
    pods = {p["id"]: p for p in get(simulator, "/pods")}
    assert set(pods) == {"pod-a100-train", "pod-h100-runaway", "pod-a4500-nb"}
    h100 = pods["pod-h100-runaway"]
    assert h100["desiredStatus"] == "RUNNING"
    assert h100["costPerHr"] == 5.98
    assert h100["gpu"] == {"id": "NVIDIA H100 80GB HBM3", "count": 2,
                           "displayName": "H100 80GB HBM3"}
    assert pods["pod-a4500-nb"]["desiredStatus"] == "EXITED"
    running = get(simulator, "/pods", desiredStatus="RUNNING")
    assert {p["id"] for p in running} == {"pod-a100-train", "pod-h100-runaway"}
    gpus = get(simulator, "/pods", gpuTypeId=[A4500, "NVIDIA A100 80GB PCIe"])
    assert {p["id"] for p in gpus} == {"pod-a100-train", "pod-a4500-nb"}
    assert get(simulator, "/pods/pod-a4500-nb")["name"] == "notebook"
    with_machine = get(simulator, "/pods/pod-a4500-nb", includeMachine="true")
    assert with_machine["machine"]["gpuTypeId"] == A4500


def test_stop_halts_accrual_from_that_instant(simulator: Simulator) -> None:
    clock: FakeClock = simulator.clock
    r = http.post(simulator.base_url + "/pods/pod-h100-runaway/stop", headers=AUTH)
    assert r.status_code == 200
    assert r.json()["desiredStatus"] == "EXITED"
    clock.advance(timedelta(hours=3))
    recs = get(simulator, "/billing/pods", bucketSize="hour", podId="pod-h100-runaway",
               startTime="2026-11-24T14:00:00Z")
    assert [(r["time"], r["amount"]) for r in recs] == [("2026-11-24T14:00:00Z", 0.518267)]
    assert get(simulator, "/pods/pod-h100-runaway")["desiredStatus"] == "EXITED"
    # stopping again is harmless
    again = http.post(simulator.base_url + "/pods/pod-h100-runaway/stop", headers=AUTH)
    assert again.status_code == 200


def test_unknown_pod_is_404(simulator: Simulator) -> None:
    for r in (http.post(simulator.base_url + "/pods/nope/stop", headers=AUTH),
              http.get(simulator.base_url + "/pods/nope", headers=AUTH)):
        assert r.status_code == 404
        assert r.json()["error"]


# --------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TEST_KEY}])
def test_missing_or_wrong_key_is_401_json(simulator: Simulator, headers: dict[str, str]) -> None:
    r = http.get(simulator.base_url + "/billing/pods", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    assert "error" in r.json()
    stop = http.post(simulator.base_url + "/pods/pod-a100-train/stop", headers=headers)
    assert stop.status_code == 401
    assert simulator.pod("pod-a100-train").desired_status == "RUNNING"


# --------------------------------------------------------------------- faults + log


def test_status_fault_hits_the_next_n_matching_requests_only(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", status=503, times=2)
    url = simulator.base_url + "/billing/pods"
    assert http.get(simulator.base_url + "/pods", headers=AUTH).status_code == 200
    assert [http.get(url, headers=AUTH).status_code for _ in range(3)] == [503, 503, 200]


def test_rate_limit_fault_sends_retry_after(simulator: Simulator) -> None:
    simulator.fail("/v1/billing", retry_after=7)
    r = http.get(simulator.base_url + "/billing/pods", headers=AUTH)
    assert (r.status_code, r.headers["retry-after"]) == (429, "7")


@pytest.mark.parametrize("kind", ["garbage", "html"])
def test_body_faults(simulator: Simulator, kind: str) -> None:
    simulator.fail("/v1/pods", kind)
    r = http.get(simulator.base_url + "/pods", headers=AUTH)
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_truncated_fault_cuts_the_body(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", "truncated")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(simulator.base_url + "/pods", headers=AUTH)


def test_bad_record_fault_spoils_record_zero(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", "bad_record", record="negative_amount")
    recs = get(simulator, "/billing/pods")
    assert recs[0]["amount"] == -1.25
    assert all(r["amount"] > 0 for r in recs[1:])


def test_huge_fault_and_request_log_counts_bytes(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", "huge", size=300_000, declare_length=False)
    r = http.get(simulator.base_url + "/billing/pods", headers=AUTH)
    assert r.json() == []
    assert len(r.content) == 300_000
    normal = http.get(simulator.base_url + "/pods", headers=AUTH, params={"name": "notebook"})
    last = simulator.requests[-1]
    assert (last.method, last.path, last.status) == ("GET", "/v1/pods", 200)
    assert last.param("name") == "notebook"
    assert last.bytes == len(normal.content)
    assert simulator.requests[-2].bytes == 300_000


def test_delay_fault_delays_then_answers(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", delay=0.2)
    with pytest.raises(httpx.ReadTimeout):
        http.get(simulator.base_url + "/pods", headers=AUTH, timeout=0.05)
    assert http.get(simulator.base_url + "/pods", headers=AUTH).status_code == 200


def test_unknown_fault_kind_is_refused(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        simulator.fail("/v1/pods", "gremlins")


def test_scenario_faults_apply_from_the_start() -> None:
    scenario = {"pods": [], "faults": [{"path": "/v1/pods", "status": 502, "times": 1}]}
    with running_simulator(scenario) as sim:
        assert http.get(sim.base_url + "/pods", headers=AUTH).status_code == 502
        assert http.get(sim.base_url + "/pods", headers=AUTH).json() == []


def test_stop_refuses_further_connections() -> None:
    with running_simulator() as sim:
        url = sim.base_url
    with pytest.raises(httpx.ConnectError):
        http.get(url + "/pods", headers=AUTH)


# --------------------------------------------------------------------- scenarios


def test_relative_times_resolve_against_the_clock(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("pods:\n  - {id: p1, gpu_type: NVIDIA L4, cost_per_hr: 2, "
                 "running: [[-90m, null]]}\n")
    s = Scenario.load(f, now=PINNED_NOW)
    assert s.pods[0].running == [(PINNED_NOW - timedelta(minutes=90), None)]
    with running_simulator(str(f)) as sim:
        recs = get(sim, "/billing/pods", bucketSize="hour", grouping="podId")
    assert sum(r["amount"] for r in recs) == pytest.approx(3.0)


def test_json_scenario_and_bad_times(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"pods": [{"id": "p", "cost_per_hr": 1,
                                       "running": [["2026-11-24T00:00:00Z", None]]}]}))
    assert Scenario.load(f).pods[0].gpu_type is None
    with pytest.raises(ValueError, match="bad scenario time"):
        Scenario.from_dict({"pods": [{"id": "p", "cost_per_hr": 1, "running": [["soon", None]]}]})
    with pytest.raises(ValueError, match="cost_per_hr"):
        Scenario.from_dict({"pods": [{"id": "p"}]})


def test_builtin_demo_has_a_runaway_h100_crossing_a_small_budget_in_seconds() -> None:
    clock = FakeClock(PINNED_NOW)
    with running_simulator("demo", clock=clock) as sim:
        pods = get(sim, "/pods", desiredStatus="RUNNING")
        assert any(p["gpu"]["id"] == "NVIDIA H100 80GB HBM3" for p in pods)
        clock.advance(timedelta(seconds=10))
        recs = get(sim, "/billing/pods", bucketSize="day", gpuTypeId="NVIDIA H100 80GB HBM3")
    assert recs[0]["amount"] >= 5.0  # a $5 daily budget is spent after 10 s


def test_builtin_month_has_a_month_of_hourly_history() -> None:
    with running_simulator("month") as sim:
        recs = get(sim, "/billing/pods", bucketSize="hour", grouping="podId",
                   startTime="2026-10-24T14:00:00Z")
        pods = get(sim, "/pods")
    assert len(pods) == 20
    assert len({r["time"] for r in recs}) > 24 * 25
    assert min(r["time"] for r in recs) < "2026-10-26"


def test_cli_serves_and_prints_urls_and_key() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.simulator", "--port", "0", "--api-key", "cli-key",
         "--retire", "graphql"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        env = dict(ln.strip().split("=", 1) for ln in lines if ln[:1].isupper() and "=" in ln)
        v1_url = next(ln.rsplit("=", 1)[1].strip() for ln in lines if ln.startswith("#"))
        assert env["RUNPOD_API_KEY"] == "cli-key"
        auth = {"Authorization": "Bearer cli-key"}
        v2 = http.get(env["RUNPOD_API_BASE_URL"] + "/pods", headers=auth)
        assert env["RUNPOD_API_BASE_URL"].endswith("/v2")
        assert v2.status_code == 200
        assert any(p["gpu"]["id"] == "NVIDIA H100 80GB HBM3" for p in v2.json()["pods"])
        v1 = http.get(v1_url + "/pods", headers=auth)
        assert v1.status_code == 200
        assert len(v1.json()) == len(v2.json()["pods"])
        gql = http.post(env["RUNPOD_GRAPHQL_URL"], headers=auth,
                         json={"query": "{ myself { clientBalance } }"})
        assert gql.status_code == 410
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
