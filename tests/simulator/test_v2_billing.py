"""REST v2 billing of the simulator: windows, buckets, per-resource records, totals.

``FULL_SCENARIO`` at 2026-11-24T14:05:12Z (see tests/support/simulator.py).
Raw httpx over loopback.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from daemon.simulator import Simulator
from tests.support.simulator import (
    TEST_KEY,
    full_simulator,
    http,
    running_simulator,
    v2_get,
)

__all__ = ["full_simulator"]  # the fixture, imported for pytest

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
POD_PARTS = ("gpuAmount", "cpuAmount", "diskAmount")
ACCOUNT_PARTS = {  # GET /billing component -> (family route, family component)
    "podGpuAmount": ("pods", "gpuAmount"), "podCpuAmount": ("pods", "cpuAmount"),
    "podDiskAmount": ("pods", "diskAmount"),
    "serverlessGpuAmount": ("serverless", "gpuAmount"),
    "serverlessCpuAmount": ("serverless", "cpuAmount"),
    "serverlessDiskAmount": ("serverless", "diskAmount"),
    "serverlessFeeAmount": ("serverless", "feeAmount"),
    "storageStandardAmount": ("network-volumes", "standardAmount"),
    "storageHighPerformanceAmount": ("network-volumes", "highPerformanceAmount"),
    "endpointAmount": ("endpoints", "totalAmount"),
    "clusterGpuAmount": ("clusters", "gpuAmount"), "clusterDiskAmount": ("clusters", "diskAmount"),
    "clusterNetworkingAmount": ("clusters", "networkingAmount"),
}


def amounts(doc: dict[str, Any], key: str = "podId") -> dict[tuple[str, str], float]:
    return {(r["startTime"], r[key]): r["totalAmount"] for r in doc["records"]}


def test_hour_records_per_pod_with_bucket_bounds_and_partial_current_hour(
    full_simulator: Simulator,
) -> None:
    doc = v2_get(full_simulator, "/billing/pods", bucketSize="hour",
                 startTime="2026-11-24T12:00:00Z", endTime="2026-11-24T15:00:00Z")
    got = amounts(doc)
    assert got[("2026-11-24T12:00:00Z", "pod-a100-train")] == 1.64
    assert got[("2026-11-24T13:00:00Z", "pod-h100-runaway")] == 5.98
    assert got[("2026-11-24T14:00:00Z", "pod-a100-train")] == 0.142133  # 5 min 12 s
    assert got[("2026-11-24T12:00:00Z", "pod-cpu-etl")] == 0.12
    # the locked pod restarted at 13:00; billing runs on without a gap
    assert got[("2026-11-24T13:00:00Z", "pod-l4-locked")] == 0.43
    assert not any(pid.startswith("clu-") for _, pid in got)  # clusters bill apart
    first = doc["records"][0]
    assert (first["startTime"], first["endTime"]) == ("2026-11-24T12:00:00Z",
                                                      "2026-11-24T13:00:00Z")
    assert [r["startTime"] for r in doc["records"]] == sorted(r["startTime"]
                                                              for r in doc["records"])
    a100 = next(r for r in doc["records"] if r["podId"] == "pod-a100-train")
    assert a100["diskAmount"] == 0.009589  # 70 GB at $0.10/GB/month
    assert a100["gpuAmount"] == 1.630411 and a100["cpuAmount"] == 0.0
    cpu = next(r for r in doc["records"] if r["podId"] == "pod-cpu-etl")
    assert cpu["gpuAmount"] == 0.0 and cpu["cpuAmount"] > 0
    meta = doc["metadata"]
    assert meta["query"] == {"startTime": "2026-11-24T12:00:00Z",
                             "endTime": "2026-11-24T15:00:00Z", "bucketSize": "hour",
                             "podId": None}
    assert meta["recordCount"] == len(doc["records"])
    assert meta["uniquePodCount"] == len({r["podId"] for r in doc["records"]}) == 4


@pytest.mark.parametrize(("start", "end", "echo", "buckets"), [
    # startTime snapped down, endTime snapped up
    ("2026-11-24T12:30:00Z", "2026-11-24T13:10:00Z", ("12:00", "14:00"), ["12:00", "13:00"]),
    # endTime on a boundary is exclusive and not widened
    ("2026-11-24T12:00:00Z", "2026-11-24T13:00:00Z", ("12:00", "13:00"), ["12:00"]),
    # an offset is converted to UTC first
    ("2026-11-24T13:30:00+01:00", "2026-11-24T15:00:00+02:00", ("12:00", "13:00"), ["12:00"]),
])
def test_window_snapping_and_exclusive_end(full_simulator: Simulator, start: str, end: str,
                                           echo: tuple[str, str], buckets: list[str]) -> None:
    doc = v2_get(full_simulator, "/billing/pods", bucketSize="hour", podId="pod-a100-train",
                 startTime=start, endTime=end)
    q = doc["metadata"]["query"]
    assert (q["startTime"][11:16], q["endTime"][11:16]) == echo
    assert q["podId"] == "pod-a100-train"
    assert [r["startTime"][11:16] for r in doc["records"]] == buckets


def test_last_n_ends_with_the_current_bucket(full_simulator: Simulator) -> None:
    doc = v2_get(full_simulator, "/billing/pods", bucketSize="hour", lastN=3,
                 podId="pod-a100-train")
    assert doc["metadata"]["query"]["startTime"] == "2026-11-24T12:00:00Z"
    assert doc["metadata"]["query"]["endTime"] == "2026-11-24T15:00:00Z"
    assert [r["totalAmount"] for r in doc["records"]] == [1.64, 1.64, 0.142133]
    week = v2_get(full_simulator, "/billing", bucketSize="week", lastN=1)
    assert week["metadata"]["query"]["startTime"] == "2026-11-23T00:00:00Z"  # Monday
    assert len(week["records"]) == 1
    month = v2_get(full_simulator, "/billing", bucketSize="month", lastN=2)
    assert [r["startTime"][:10] for r in month["records"]] == ["2026-10-01", "2026-11-01"]


def test_default_window_is_the_last_30_days_in_days(full_simulator: Simulator) -> None:
    q = v2_get(full_simulator, "/billing/serverless")["metadata"]["query"]
    assert q == {"startTime": "2026-10-25T00:00:00Z", "endTime": "2026-11-25T00:00:00Z",
                 "bucketSize": "day", "serverlessId": None}


@pytest.mark.parametrize("params", [
    {"lastN": "2", "startTime": "2026-11-01T00:00:00Z"},
    {"lastN": "2", "endTime": "2026-11-01T00:00:00Z"},
    {"lastN": "0"}, {"lastN": "many"}, {"bucketSize": "minute"},
    {"startTime": "2026-11-24T00:00:00"},  # no zone
    {"startTime": "2026-11-24T00:00:00Z", "endTime": "2026-11-23T00:00:00Z"},
])
def test_bad_windows_are_400_problems(full_simulator: Simulator,
                                      params: dict[str, str]) -> None:
    r = http.get(full_simulator.base_url_for("v2") + "/billing/pods", params=params,
                  headers=AUTH)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 400 and body["title"] == "Bad Request" and body["detail"]


@pytest.mark.parametrize("family", ["pods", "serverless", "network-volumes", "clusters",
                                    "endpoints", ""])
def test_every_bucket_size_sums_to_the_same_spend(full_simulator: Simulator,
                                                  family: str) -> None:
    totals = set()
    for size in ("hour", "day", "week", "month", "year"):
        doc = v2_get(full_simulator, f"/billing/{family}".rstrip("/"), bucketSize=size,
                     startTime="2026-01-01T00:00:00Z", endTime="2027-01-01T00:00:00Z")
        totals.add(round(doc["metadata"]["totals"]["totalAmount"], 4))
        for r in doc["records"]:
            start = datetime.fromisoformat(r["startTime"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(r["endTime"].replace("Z", "+00:00"))
            assert start < end
            if size == "week":
                assert start.weekday() == 0 and end - start == timedelta(days=7)
    assert len(totals) == 1


def _by_bucket(sim: Simulator, family: str, field: str, **params: Any) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in v2_get(sim, f"/billing/{family}", **params)["records"]:
        out[r["startTime"]] += r[field]
    return out


@pytest.mark.parametrize("params", [{"bucketSize": "hour", "lastN": "30"},
                                    {"bucketSize": "day", "lastN": "10"}])
def test_account_total_is_the_sum_of_its_components_and_of_the_families(
    full_simulator: Simulator, params: dict[str, str],
) -> None:
    doc = v2_get(full_simulator, "/billing", **params)
    assert len(doc["records"]) == int(params["lastN"])  # a record for every bucket
    for rec in doc["records"]:
        parts = [rec[k] for k in ACCOUNT_PARTS]
        assert rec["totalAmount"] == round(sum(parts), 6)
    for part, (family, field) in ACCOUNT_PARTS.items():
        fam = _by_bucket(full_simulator, family, field, **params)
        for rec in doc["records"]:
            assert rec[part] == pytest.approx(fam.get(rec["startTime"], 0.0), abs=1e-9), part
    totals = doc["metadata"]["totals"]
    for k, v in totals.items():
        assert v == pytest.approx(sum(r[k] for r in doc["records"]), abs=1e-9)
    assert totals["totalAmount"] > 100  # the cluster alone burns $48/h
    assert doc["metadata"]["recordCount"] == len(doc["records"])


@pytest.mark.parametrize("family", ["pods", "serverless", "network-volumes", "clusters"])
def test_each_record_total_is_its_components(full_simulator: Simulator, family: str) -> None:
    doc = v2_get(full_simulator, f"/billing/{family}", bucketSize="hour", lastN="48")
    assert doc["records"]
    for r in doc["records"]:
        parts = [v for k, v in r.items() if k.endswith("Amount") and k != "totalAmount"]
        assert r["totalAmount"] == pytest.approx(sum(parts), abs=1e-9)
        assert all(p >= 0 for p in parts)


def test_families_split_by_kind(full_simulator: Simulator) -> None:
    vols = v2_get(full_simulator, "/billing/network-volumes", bucketSize="day", lastN="1")
    by_id = {r["networkVolumeId"]: r for r in vols["records"]}
    assert by_id["vol-fast"]["highPerformanceAmount"] == by_id["vol-fast"]["totalAmount"] > 0
    assert by_id["vol-data"]["standardAmount"] == by_id["vol-data"]["totalAmount"] > 0
    assert vols["metadata"]["uniqueNetworkVolumeCount"] == 2
    eps = v2_get(full_simulator, "/billing/serverless", bucketSize="day", lastN="2")
    cpu = next(r for r in eps["records"] if r["serverlessId"] == "ep-cpu")
    assert (cpu["totalAmount"], cpu["gpuAmount"]) == (4.0, 0.0)
    assert (cpu["cpuAmount"], cpu["diskAmount"], cpu["feeAmount"]) == (3.68, 0.12, 0.2)
    clusters = v2_get(full_simulator, "/billing/clusters", bucketSize="hour", lastN="3")
    assert [r["totalAmount"] for r in clusters["records"]] == [48.0, 48.0, 4.16]
    public = v2_get(full_simulator, "/billing/endpoints", bucketSize="day", lastN="1")
    assert public["records"] == [{"startTime": "2026-11-24T00:00:00Z",
                                  "endTime": "2026-11-25T00:00:00Z",
                                  "totalAmount": round(0.2 * 14.0866667, 6)}]


def test_filters_and_terminated_pods_keep_their_history(full_simulator: Simulator) -> None:
    gone = v2_get(full_simulator, "/billing/pods", podId="pod-gone", lastN="3")
    assert [(r["startTime"][:10], r["totalAmount"]) for r in gone["records"]] == [
        ("2026-11-23", 2.0)]
    assert v2_get(full_simulator, "/billing/pods", podId="nope", lastN="3")["records"] == []
    one = v2_get(full_simulator, "/billing/clusters", clusterId="clu-train", lastN="1")
    assert one["metadata"]["uniqueClusterCount"] == 1


def test_v1_and_v2_bill_the_same_spend(full_simulator: Simulator) -> None:
    params = {"bucketSize": "hour", "startTime": "2026-11-23T00:00:00Z",
              "endTime": "2026-11-25T00:00:00Z"}
    v1 = http.get(full_simulator.base_url + "/billing/pods", headers=AUTH,
                   params={**params, "grouping": "podId"}).json()
    v2 = v2_get(full_simulator, "/billing/pods", **params)
    assert {(r["time"], r["podId"]): r["amount"] for r in v1} == amounts(v2)
    v1_eps = http.get(full_simulator.base_url + "/billing/endpoints", headers=AUTH,
                       params=params).json()
    assert {(r["time"], r["endpointId"]): r["amount"] for r in v1_eps} == amounts(
        v2_get(full_simulator, "/billing/serverless", **params), "serverlessId")
    v1_vols = http.get(full_simulator.base_url + "/billing/networkvolumes", headers=AUTH,
                        params=params).json()
    v2_vols = _by_bucket(full_simulator, "network-volumes", "totalAmount", **params)
    # v1 rounds the sum of the volumes, v2 each volume: a micro-dollar apart at most
    assert {r["time"]: r["amount"] for r in v1_vols} == pytest.approx(dict(v2_vols), abs=2e-6)
    assert all(r["highPerformanceStorageAmount"] == 0.14 for r in v1_vols
               if r["time"] < "2026-11-24T14")


def test_stopped_disk_charge_is_opt_in_and_counts_as_disk() -> None:
    scenario = {"pods": [{"id": "p", "gpu_type": "NVIDIA L4", "cost_per_hr": 1.0,
                          "stopped_cost_per_hr": 0.01,
                          "running": [["2026-11-24T10:00:00Z", "2026-11-24T12:00:00Z"]]}]}
    with running_simulator(scenario) as sim:
        doc = v2_get(sim, "/billing/pods", bucketSize="hour",
                     startTime="2026-11-24T11:00:00Z", endTime="2026-11-24T14:00:00Z")
        v1 = http.get(sim.base_url + "/billing/pods", headers=AUTH, params={
            "bucketSize": "hour", "grouping": "podId", "startTime": "2026-11-24T11:00:00Z",
            "endTime": "2026-11-24T14:00:00Z"}).json()
    recs = {r["startTime"][11:16]: r for r in doc["records"]}
    assert recs["11:00"]["totalAmount"] == 1.0
    assert recs["12:00"] == {"startTime": "2026-11-24T12:00:00Z",
                             "endTime": "2026-11-24T13:00:00Z", "podId": "p",
                             "totalAmount": 0.01, "gpuAmount": 0.0, "cpuAmount": 0.0,
                             "diskAmount": 0.01}
    assert [r["amount"] for r in v1] == [1.0, 0.01, 0.01]
    assert [r["timeBilledMs"] for r in v1] == [3_600_000, 0, 0]


def test_stop_action_halts_v2_accrual(full_simulator: Simulator) -> None:
    r = http.post(full_simulator.base_url_for("v2") + "/pods/pod-h100-runaway/action",
                   json={"action": "stop"}, headers=AUTH)
    assert r.status_code == 200
    full_simulator.clock.advance(timedelta(hours=2))
    doc = v2_get(full_simulator, "/billing/pods", bucketSize="hour", lastN="3",
                 podId="pod-h100-runaway")
    assert [(x["startTime"][11:16], x["totalAmount"]) for x in doc["records"]] == [
        ("14:00", 0.518267)]

