"""RunPodClient against the simulator over loopback: parameters, parsing, pods."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from daemon.adapters.runpod import DEFAULT_BASE_URL, RequestInfo, RunPodClient
from daemon.core.model import BillingRecord, NetworkVolumeRecord, PodStatus
from daemon.core.ports import ApiError, RunPodApi
from daemon.simulator import Simulator
from tests.support.simulator import fast_client, simulator

__all__ = ["simulator"]  # the fixture, imported for pytest

A4500 = "NVIDIA  RTX A4500"
H100 = "NVIDIA H100 80GB HBM3"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_client_satisfies_the_port(simulator: Simulator) -> None:
    api: RunPodApi = fast_client(simulator)
    assert api.list_pods()


def test_billing_pods_hourly_by_pod(simulator: Simulator) -> None:
    recs = fast_client(simulator).billing_pods(
        bucket_size="hour", grouping="podId", pod_id="pod-a100-train",
        start=utc(2026, 11, 24, 13), end=utc(2026, 11, 24, 15),
    )
    assert recs == [
        BillingRecord(time=utc(2026, 11, 24, 13), amount=1.64, pod_id="pod-a100-train",
                      time_billed_ms=3_600_000, disk_space_billed_gb=70),
        BillingRecord(time=utc(2026, 11, 24, 14), amount=0.142133, pod_id="pod-a100-train",
                      time_billed_ms=312_000, disk_space_billed_gb=70),
    ]
    sent = simulator.requests[-1]
    assert sent.path == "/v1/billing/pods"
    assert sent.query == {"bucketSize": ["hour"], "grouping": ["podId"],
                          "podId": ["pod-a100-train"], "startTime": ["2026-11-24T13:00:00Z"],
                          "endTime": ["2026-11-24T15:00:00Z"]}


@pytest.mark.parametrize(("size", "first"), [
    ("hour", utc(2026, 11, 23, 22)), ("day", utc(2026, 11, 23)), ("week", utc(2026, 11, 23)),
    ("month", utc(2026, 11, 1)), ("year", utc(2026, 1, 1)),
])
def test_every_bucket_size(simulator: Simulator, size: str, first: datetime) -> None:
    recs = fast_client(simulator).billing_pods(
        bucket_size=size, gpu_type_id=H100, start=utc(2026, 1, 1)  # type: ignore[arg-type]
    )
    assert simulator.requests[-1].param("bucketSize") == size
    assert recs[0].time == first
    assert sum(r.amount for r in recs) == pytest.approx(93.208267, abs=1e-5)
    assert {r.gpu_type for r in recs} == {H100}


def test_grouping_by_gpu_type_and_omitted_defaults(simulator: Simulator) -> None:
    client = fast_client(simulator)
    by_gpu = client.billing_pods(bucket_size="day", grouping="gpuTypeId",
                                 start=utc(2026, 11, 24))
    assert {(r.gpu_type, r.pod_id) for r in by_gpu} == {
        ("NVIDIA A100 80GB PCIe", None), (H100, None)}
    client.billing_pods()
    assert simulator.requests[-1].query == {"bucketSize": ["hour"]}


def test_gpu_type_with_two_spaces_goes_out_verbatim(simulator: Simulator) -> None:
    recs = fast_client(simulator).billing_pods(bucket_size="day", grouping="podId",
                                               gpu_type_id=A4500)
    assert simulator.requests[-1].param("gpuTypeId") == A4500
    assert {r.pod_id for r in recs} == {"pod-a4500-nb"}
    assert sum(r.amount for r in recs) == pytest.approx(12.0)


def test_naive_times_are_refused(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fast_client(simulator).billing_pods(start=datetime(2026, 11, 24))


def test_network_volumes_and_endpoints(simulator: Simulator) -> None:
    client = fast_client(simulator)
    vols = client.billing_network_volumes(bucket_size="day", start=utc(2026, 11, 24))
    assert vols == [NetworkVolumeRecord(time=utc(2026, 11, 24), amount=0.704333,
                                        disk_space_billed_gb=200)]
    assert client.billing_endpoints(
        bucket_size="week", grouping="endpointId", endpoint_id="jpnw0v75y3qoql",
        data_center_id=["EU-RO-1", "CA-MTL-1"], gpu_type_id=[H100, A4500],
        image_name="img", template_id="tpl", start=utc(2026, 11, 1), end=utc(2026, 12, 1),
    ) == []
    q = simulator.requests[-1].query
    assert q["dataCenterId"] == ["EU-RO-1", "CA-MTL-1"]
    assert q["gpuTypeId"] == [H100, A4500]
    assert (q["grouping"], q["imageName"], q["templateId"]) == (["endpointId"], ["img"], ["tpl"])


def test_list_get_and_stop_pods(simulator: Simulator) -> None:
    client = fast_client(simulator)
    pods = {p.id: p for p in client.list_pods()}
    h100 = pods["pod-h100-runaway"]
    assert (h100.name, h100.desired_status, h100.cost_per_hr, h100.gpu_type, h100.gpu_count) == (
        "train-sweep", PodStatus.RUNNING, 5.98, H100, 2)
    assert h100.running
    assert pods["pod-a4500-nb"].gpu_type == A4500
    assert not pods["pod-a4500-nb"].running

    running = client.list_pods(desired_status=PodStatus.RUNNING, gpu_type_id=[H100],
                               include_machine=True)
    assert [p.id for p in running] == ["pod-h100-runaway"]
    q = simulator.requests[-1].query
    assert q == {"desiredStatus": ["RUNNING"], "gpuTypeId": [H100], "includeMachine": ["true"]}

    client.stop_pod("pod-h100-runaway")
    simulator.clock.advance(timedelta(hours=1))
    assert client.get_pod("pod-h100-runaway").desired_status is PodStatus.EXITED
    later = client.billing_pods(pod_id="pod-h100-runaway", start=utc(2026, 11, 24, 14))
    assert [r.amount for r in later] == [0.518267]


def test_injected_body_alias_extra_fields_and_fallbacks(simulator: Simulator) -> None:
    body = [{"amount": "2.5", "time": "2026-11-24T10:00:00+00:00", "gpuTypeId": H100,
             "diskSpaceBilledGB": 40, "timeBilledMs": 1800000.0, "newField": {"x": 1}}]
    simulator.fail("/v1/billing/pods", status=200, body=json.dumps(body))
    (rec,) = fast_client(simulator).billing_pods()
    assert rec == BillingRecord(time=utc(2026, 11, 24, 10), amount=2.5, gpu_type=H100,
                                time_billed_ms=1_800_000, disk_space_billed_gb=40)

    pods = [
        {"id": "a", "name": "x", "desiredStatus": "RUNNING", "costPerHr": "0.74",
         "gpu": {"displayName": "RTX 4090", "count": 1}, "unknown": True},
        {"id": "b", "name": "y", "desiredStatus": "TERMINATED", "costPerHr": 0,
         "machine": {"gpuTypeId": "NVIDIA L4"}},
        {"id": "c", "name": None, "desiredStatus": "EXITED", "costPerHr": 0.06},
    ]
    simulator.fail("/v1/pods", status=200, body=json.dumps(pods))
    a, b, c = fast_client(simulator).list_pods()
    assert (a.cost_per_hr, a.gpu_type, a.gpu_count) == (0.74, "RTX 4090", 1)
    assert (b.desired_status, b.gpu_type, b.gpu_count) == (PodStatus.TERMINATED, "NVIDIA L4", 0)
    assert (c.name, c.gpu_type) == ("", None)


def test_on_request_sees_each_attempt_with_the_path_template(simulator: Simulator) -> None:
    seen: list[RequestInfo] = []
    client = fast_client(simulator, on_request=seen.append)
    simulator.fail("/v1/pods/pod-a100-train", status=500, times=1)
    client.get_pod("pod-a100-train")
    with pytest.raises(ApiError):
        client.get_pod("nope")
    assert [(i.method, i.path, i.status, i.error) for i in seen] == [
        ("GET", "/pods/{podId}", 500, "server"),
        ("GET", "/pods/{podId}", 200, None),
        ("GET", "/pods/{podId}", 404, "not_found"),
    ]
    assert all(i.elapsed >= 0 for i in seen)


def test_from_env_and_repr(monkeypatch: pytest.MonkeyPatch, simulator: Simulator) -> None:
    monkeypatch.setenv("RUNPOD_API_BASE_URL", simulator.base_url)
    client = RunPodClient.from_env(simulator.api_key)
    assert repr(client) == f"RunPodClient(base_url={simulator.base_url!r})"
    assert len(client.list_pods()) == 3
    monkeypatch.delenv("RUNPOD_API_BASE_URL")
    assert RunPodClient.from_env("k").base_url == DEFAULT_BASE_URL
    with pytest.raises(ValueError, match="empty"):
        RunPodClient("")
