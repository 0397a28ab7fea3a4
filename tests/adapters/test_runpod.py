"""RunPod adapters against the simulator over loopback: parameters, mapping, pods."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from daemon.adapters.runpod import DEFAULT_BASE_URLS, RequestInfo, make_api
from daemon.core.model import PodStatus, Resource, SpendRecord
from daemon.core.ports import ApiError, RunPodApi
from daemon.simulator import Simulator
from tests.adapters.runpod_support import (
    BILLING_PODS,
    PODS,
    VERSIONS,
    fast_api,
    inject,
    simulator,
    utc,
    v2_body,
)

__all__ = ["simulator"]  # the fixture, imported for pytest

A4500 = "NVIDIA  RTX A4500"
H100 = "NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize("version", VERSIONS)
def test_adapters_satisfy_the_port(simulator: Simulator, version: str) -> None:
    api: RunPodApi = fast_api(simulator, version)
    assert api.version == version
    assert "pods" in api.families


# --------------------------------------------------------------------- v1 billing


def test_v1_pod_billing_hourly_by_pod(simulator: Simulator) -> None:
    recs = fast_api(simulator).billing("pods", bucket="hour", start=utc(2026, 11, 24, 13),
                                       end=utc(2026, 11, 24, 15))
    mine = [r for r in recs if r.resource == "pod-a100-train"]
    assert mine == [
        SpendRecord("pods", "pod-a100-train", utc(2026, 11, 24, 13), utc(2026, 11, 24, 14), 1.64),
        SpendRecord("pods", "pod-a100-train", utc(2026, 11, 24, 14), utc(2026, 11, 24, 15),
                    0.142133),
    ]
    assert {r.resource for r in recs} == {"pod-a100-train", "pod-h100-runaway"}
    sent = simulator.requests[-1]
    assert sent.path == "/v1/billing/pods"
    assert sent.query == {"bucketSize": ["hour"], "grouping": ["podId"],
                          "startTime": ["2026-11-24T13:00:00Z"],
                          "endTime": ["2026-11-24T15:00:00Z"]}


@pytest.mark.parametrize(("bucket", "hours"), [("hour", 1), ("day", 24)])
def test_v1_bucket_sizes(simulator: Simulator, bucket: str, hours: int) -> None:
    recs = fast_api(simulator).billing("pods", bucket=bucket,  # type: ignore[arg-type]
                                       start=utc(2026, 11, 23), end=utc(2026, 11, 25))
    assert simulator.requests[-1].param("bucketSize") == bucket
    assert {r.hours for r in recs} == {hours}
    h100 = sum(r.amount for r in recs if r.resource == "pod-h100-runaway")
    assert h100 == pytest.approx(93.208267, abs=1e-5)


def test_naive_times_are_refused(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fast_api(simulator).billing("pods", bucket="hour", start=datetime(2026, 11, 24),
                                    end=utc(2026, 11, 25))


def test_v1_storage_and_serverless(simulator: Simulator) -> None:
    api = fast_api(simulator)
    vols = api.billing("storage", bucket="day", start=utc(2026, 11, 24), end=utc(2026, 11, 25))
    assert vols == [SpendRecord("storage", "", utc(2026, 11, 24), utc(2026, 11, 25), 0.704333)]
    assert simulator.requests[-1].path == "/v1/billing/networkvolumes"
    assert api.billing("serverless", bucket="day", start=utc(2026, 11, 1),
                       end=utc(2026, 12, 1)) == []
    q = simulator.requests[-1].query
    assert (simulator.requests[-1].path, q["grouping"]) == ("/v1/billing/endpoints",
                                                           ["endpointId"])


def test_v1_account_sums_the_three_calls_per_bucket(simulator: Simulator) -> None:
    api = fast_api(simulator)
    start, end = utc(2026, 11, 24, 12), utc(2026, 11, 24, 15)
    pods = api.billing("pods", bucket="hour", start=start, end=end)
    vols = api.billing("storage", bucket="hour", start=start, end=end)
    simulator.requests.clear()
    account = api.billing("account", bucket="hour", start=start, end=end)
    assert [r.path for r in simulator.requests] == [
        "/v1/billing/pods", "/v1/billing/endpoints", "/v1/billing/networkvolumes"]
    assert [r.start for r in account] == [utc(2026, 11, 24, h) for h in (12, 13, 14)]
    for rec in account:
        p = sum(r.amount for r in pods if r.start == rec.start)
        v = sum(r.amount for r in vols if r.start == rec.start)
        assert (rec.family, rec.resource) == ("account", "total")
        assert dict(rec.components) == pytest.approx({"pods": p, "serverless": 0.0, "storage": v})
        assert rec.amount == pytest.approx(p + v)


@pytest.mark.parametrize("family", ["clusters", "public_endpoints"])
def test_v1_has_no_cluster_or_public_endpoint_billing(simulator: Simulator, family: str) -> None:
    api = fast_api(simulator)
    assert family not in api.families
    with pytest.raises(ApiError) as e:
        api.billing(family, bucket="hour", start=utc(2026, 11, 24), end=utc(2026, 11, 25))
    assert (e.value.reason, e.value.permanent) == ("client", True)
    assert f"v1 has no {family} billing" in str(e.value)
    assert simulator.requests == []


# --------------------------------------------------------------------- v1 pods


def test_v1_list_and_stop_pods(simulator: Simulator) -> None:
    api = fast_api(simulator)
    pods = {p.id: p for p in api.list_pods()}
    h100 = pods["pod-h100-runaway"]
    assert (h100.name, h100.desired_status, h100.cost_per_hr, h100.gpu_type, h100.gpu_count) == (
        "train-sweep", PodStatus.RUNNING, 5.98, H100, 2)
    assert (h100.running, h100.locked, h100.can_stop, h100.gpu_util) == (True, False, True, None)
    assert h100.started_at == utc(2026, 11, 23, 22, 30)
    assert pods["pod-a4500-nb"].gpu_type == A4500  # two spaces, verbatim
    assert not pods["pod-a4500-nb"].running

    api.stop_pod("pod-h100-runaway")
    assert simulator.requests[-1].path == "/v1/pods/pod-h100-runaway/stop"
    simulator.clock.advance(timedelta(hours=1))
    assert {p.id: p for p in api.list_pods()}["pod-h100-runaway"].status is PodStatus.EXITED
    later = api.billing("pods", bucket="hour", start=utc(2026, 11, 24, 14),
                        end=utc(2026, 11, 24, 16))
    assert [r.amount for r in later if r.resource == "pod-h100-runaway"] == [0.518267]


def test_v1_pod_fallbacks_and_extra_fields(simulator: Simulator) -> None:
    pods = [
        {"id": "a", "name": "x", "desiredStatus": "RUNNING", "costPerHr": "0.74",
         "gpu": {"displayName": "RTX 4090", "count": 1}, "unknown": True, "locked": True},
        {"id": "b", "name": "y", "desiredStatus": "TERMINATED", "costPerHr": 0,
         "machine": {"gpuTypeId": "NVIDIA L4"}},
        {"id": "c", "name": None, "desiredStatus": "EXITED", "costPerHr": 0.06},
    ]
    inject(simulator, "/v1/pods", pods)
    a, b, c = fast_api(simulator).list_pods()
    # the v1 spec types costPerHr as "currency" with a string example: accepted there only
    assert (a.cost_per_hr, a.gpu_type, a.gpu_count, a.locked) == (0.74, "RTX 4090", 1, True)
    assert (b.desired_status, b.gpu_type, b.gpu_count) == (PodStatus.TERMINATED, "NVIDIA L4", 0)
    assert (c.name, c.gpu_type, c.started_at) == ("", None, None)


def test_v1_lists_no_resources(simulator: Simulator) -> None:
    api = fast_api(simulator)
    assert api.list_resources("serverless") == []
    assert api.list_resources("storage") == []
    assert simulator.requests == []


# --------------------------------------------------------------------- v2 (injected answers)

V2_ACCOUNT = {
    "startTime": "2026-11-24T10:00:00Z", "endTime": "2026-11-24T11:00:00Z",
    "totalAmount": 42.34, "podGpuAmount": 18.2, "podCpuAmount": 0.5, "podDiskAmount": 1.1,
    "serverlessGpuAmount": 12.6, "serverlessCpuAmount": 0, "serverlessDiskAmount": 0.44,
    "serverlessFeeAmount": 1.25, "storageStandardAmount": 0, "storageHighPerformanceAmount": 2.5,
    "endpointAmount": 3.21, "clusterGpuAmount": 2.5, "clusterDiskAmount": 0.3,
    "clusterNetworkingAmount": 0.24,
}


def test_v2_account_components(simulator: Simulator) -> None:
    inject(simulator, "/v2/billing", v2_body([V2_ACCOUNT]))
    (rec,) = fast_api(simulator, "v2").billing("account", bucket="hour",
                                               start=utc(2026, 11, 24), end=utc(2026, 11, 25))
    assert (rec.family, rec.resource, rec.amount) == ("account", "total", 42.34)
    assert (rec.start, rec.end) == (utc(2026, 11, 24, 10), utc(2026, 11, 24, 11))
    assert dict(rec.components) == pytest.approx({
        "pods": 19.8, "serverless": 14.29, "storage": 2.5, "public_endpoints": 3.21,
        "clusters": 3.04})
    sent = simulator.requests[-1]
    assert sent.path == "/v2/billing"
    assert sent.query == {"bucketSize": ["hour"], "startTime": ["2026-11-24T00:00:00Z"],
                          "endTime": ["2026-11-25T00:00:00Z"]}


@pytest.mark.parametrize(("family", "path", "id_field"), [
    ("pods", "/v2/billing/pods", "podId"),
    ("serverless", "/v2/billing/serverless", "serverlessId"),
    ("storage", "/v2/billing/network-volumes", "networkVolumeId"),
    ("clusters", "/v2/billing/clusters", "clusterId"),
    ("public_endpoints", "/v2/billing/endpoints", None),
])
def test_v2_family_paths_and_resources(
    simulator: Simulator, family: str, path: str, id_field: str | None
) -> None:
    rec: dict[str, object] = {"startTime": "2026-11-24T00:00:00Z",
                              "endTime": "2026-11-25T00:00:00Z", "totalAmount": 2.5}
    if id_field:
        rec[id_field] = "res-1"
    inject(simulator, path, v2_body([rec]))
    (got,) = fast_api(simulator, "v2").billing(family, bucket="day",  # type: ignore[arg-type]
                                               start=utc(2026, 11, 24), end=utc(2026, 11, 25))
    assert got == SpendRecord(family, "res-1" if id_field else "",  # type: ignore[arg-type]
                              utc(2026, 11, 24), utc(2026, 11, 25), 2.5)
    assert simulator.requests[-1].path == path


V2_PODS = {"pods": [
    {"id": "run1", "name": "train", "status": "RUNNING", "actions": ["stop", "restart"],
     "gpu": {"id": H100, "count": 2}, "cost": 5.98, "locked": False,
     "runtime": {"uptime": 60, "gpus": [{"util": 94, "memoryUtil": 78}, {"util": 3}]},
     "createdAt": "2026-11-20T00:00:00Z", "startedAt": "2026-11-24T08:00:00Z"},
    {"id": "lock1", "name": "keep", "status": "RUNNING", "actions": ["stop"], "locked": True,
     "gpu": {"id": "NVIDIA L4"}, "cost": 0.4, "runtime": None, "startedAt": None},
    {"id": "cpu1", "name": "cpu", "status": "EXITED", "actions": ["start", "terminate"],
     "locked": False, "cost": 0.0, "runtime": None, "startedAt": "2026-11-23T08:00:00Z"},
]}


def test_v2_pods_mapping(simulator: Simulator) -> None:
    inject(simulator, "/v2/pods", V2_PODS)
    run, lock, cpu = fast_api(simulator, "v2").list_pods()
    assert (run.status, run.cost_per_hr, run.gpu_type, run.gpu_count) == (
        PodStatus.RUNNING, 5.98, H100, 2)
    assert (run.locked, run.can_stop, run.gpu_util) == (False, True, (94.0, 3.0))
    assert run.started_at == utc(2026, 11, 24, 8)
    assert (lock.locked, lock.gpu_count, lock.gpu_util, lock.started_at) == (True, 1, None, None)
    assert (cpu.can_stop, cpu.gpu_type, cpu.gpu_count, cpu.running) == (False, None, 0, False)


def test_v2_pod_without_locked_or_actions_is_refused(simulator: Simulator) -> None:
    pod = dict(V2_PODS["pods"][0])
    del pod["locked"]
    inject(simulator, "/v2/pods", {"pods": [pod]})
    with pytest.raises(ApiError, match=r"record 0: field 'locked': missing") as e:
        fast_api(simulator, "v2").list_pods()
    assert e.value.reason == "bad_record"


def test_v2_resources(simulator: Simulator) -> None:
    inject(simulator, "/v2/serverless", {"endpoints": [{"id": "ep1", "name": "infer"}]})
    inject(simulator, "/v2/network-volumes",
           {"networkVolumes": [{"id": "vol1", "name": "data", "size": 50}]})
    api = fast_api(simulator, "v2")
    assert api.list_resources("serverless") == [Resource("serverless", "ep1", "infer")]
    assert api.list_resources("storage") == [Resource("storage", "vol1", "data")]


# --------------------------------------------------------------------- shared plumbing


@pytest.mark.parametrize("version", VERSIONS)
def test_on_request_sees_each_attempt_with_the_path_template(
    simulator: Simulator, version: str
) -> None:
    seen: list[RequestInfo] = []
    api = fast_api(simulator, version, on_request=seen.append)
    simulator.fail(PODS[version], status=500, times=1)
    simulator.fail(PODS[version], status=404, times=1, method="POST")
    inject(simulator, PODS[version], [] if version == "v1" else {"pods": []}, times=1)
    assert api.list_pods() == []
    with pytest.raises(ApiError):
        api.stop_pod("nope")
    stop = "/pods/{podId}/stop" if version == "v1" else "/pods/{id}/action"
    assert [(i.method, i.path, i.status, i.error) for i in seen] == [
        ("GET", "/pods", 500, "server"),
        ("GET", "/pods", 200, None),
        ("POST", stop, 404, "not_found"),
    ]
    assert all(i.elapsed >= 0 for i in seen)


@pytest.mark.parametrize("version", VERSIONS)
def test_factory_env_default_and_repr(
    monkeypatch: pytest.MonkeyPatch, simulator: Simulator, version: str
) -> None:
    monkeypatch.setenv("RUNPOD_API_BASE_URL", simulator.base_url)
    api = make_api(version, simulator.api_key)  # type: ignore[arg-type]
    assert api.base_url == simulator.base_url
    assert repr(api) == (f"{type(api).__name__}(version={version!r}, "
                         f"base_url={simulator.base_url!r})")
    monkeypatch.delenv("RUNPOD_API_BASE_URL")
    assert make_api(version, "k").base_url == DEFAULT_BASE_URLS[version]  # type: ignore[arg-type]
    assert DEFAULT_BASE_URLS == {"v1": "https://rest.runpod.io/v1",
                                 "v2": "https://api.runpod.io/v2"}
    with pytest.raises(ValueError, match="empty"):
        make_api(version, "")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown RunPod API version"):
        make_api("v3", "k")  # type: ignore[arg-type]


def test_base_url_credentials_are_not_shown() -> None:
    api = make_api("v2", "k", base_url="https://user:pw@gateway.example/v2?token=abc")
    assert api.base_url == "https://gateway.example/v2"
    assert "pw" not in repr(api) and "abc" not in repr(api)


def test_v2_billing_parameters_leave_no_grouping(simulator: Simulator) -> None:
    inject(simulator, BILLING_PODS["v2"], v2_body([]))
    assert fast_api(simulator, "v2").billing("pods", bucket="day", start=utc(2026, 11, 1),
                                             end=utc(2026, 12, 1)) == []
    assert simulator.requests[-1].query == {
        "bucketSize": ["day"], "startTime": ["2026-11-01T00:00:00Z"],
        "endTime": ["2026-12-01T00:00:00Z"]}

