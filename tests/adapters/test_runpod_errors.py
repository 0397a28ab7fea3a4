"""RunPodClient failure handling against simulator faults: what users see when RunPod fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import structlog
from structlog.testing import capture_logs

from daemon.core.ports import ApiError
from daemon.simulator import BAD_RECORDS, Simulator
from tests.support.simulator import fast_client, running_simulator, simulator

__all__ = ["simulator"]  # the fixture, imported for pytest


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Backoff sleeps requested by the retry loop, recorded instead of slept.

    The simulator never calls time.sleep (it waits on Events), so only the
    client's retry waits land here.
    """
    recorded: list[float] = []
    monkeypatch.setattr("time.sleep", recorded.append)
    yield recorded


def calls(sim: Simulator, path: str) -> int:
    return sum(1 for r in sim.requests if r.path == path)


# --------------------------------------------------------------------- permanent


def test_wrong_key_is_permanent_auth_error_without_retry(simulator: Simulator) -> None:
    with pytest.raises(ApiError) as e:
        fast_client(simulator, api_key="wrong-key").billing_pods()
    err = e.value
    assert (err.permanent, err.status, err.reason) == (True, 401, "auth")
    assert "API key is wrong or expired" in str(err)
    assert calls(simulator, "/v1/billing/pods") == 1


def test_forbidden_is_permanent(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", status=403, times=5)
    with pytest.raises(ApiError) as e:
        fast_client(simulator).list_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (True, 403, "forbidden")
    assert "lacks permission" in str(e.value)
    assert calls(simulator, "/v1/pods") == 1


def test_unknown_pod_is_permanent_not_found(simulator: Simulator) -> None:
    client = fast_client(simulator)
    for call in (lambda: client.get_pod("nope"), lambda: client.stop_pod("nope")):
        with pytest.raises(ApiError) as e:
            call()
        assert (e.value.permanent, e.value.status, e.value.reason) == (True, 404, "not_found")


def test_other_4xx_is_permanent_client_error(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", status=422, body='{"error": "startTime after endTime"}',
                   times=5)
    with pytest.raises(ApiError) as e:
        fast_client(simulator).billing_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (True, 422, "client")
    assert "startTime after endTime" in str(e.value)
    assert calls(simulator, "/v1/billing/pods") == 1


# --------------------------------------------------------------------- 429


def test_429_retry_after_seconds_is_honoured(simulator: Simulator, sleeps: list[float]) -> None:
    simulator.fail("/v1/billing/pods", retry_after=1, times=1)
    assert fast_client(simulator).billing_pods()
    assert sleeps == [1.0]
    assert calls(simulator, "/v1/billing/pods") == 2


def test_429_retry_after_http_date_is_honoured(simulator: Simulator, sleeps: list[float]) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    simulator.fail("/v1/billing/pods", retry_after=format_datetime(when, usegmt=True))
    assert fast_client(simulator, deadline=10).billing_pods()
    (slept,) = sleeps
    assert 1.0 < slept <= 3.0


def test_429_retry_after_is_capped(simulator: Simulator, sleeps: list[float]) -> None:
    simulator.fail("/v1/billing/pods", retry_after=3600, times=2)
    assert fast_client(simulator, retry_after_cap=0.5).billing_pods()
    assert sleeps == [0.5, 0.5]


def test_429_past_the_deadline_fails_at_once(simulator: Simulator, sleeps: list[float]) -> None:
    simulator.fail("/v1/billing/pods", retry_after=30, times=5)
    with pytest.raises(ApiError) as e:
        fast_client(simulator, retry_after_cap=60, deadline=5).billing_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, 429, "rate_limited")
    assert sleeps == []


# --------------------------------------------------------------------- transient


def test_5xx_is_retried_with_growing_backoff_then_succeeds(
    simulator: Simulator, sleeps: list[float]
) -> None:
    simulator.fail("/v1/billing/pods", status=503, times=3)
    client = fast_client(simulator, wait_initial=0.1, wait_max=1.0, wait_jitter=0.0)
    assert client.billing_pods(bucket_size="day")
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert calls(simulator, "/v1/billing/pods") == 4


def test_5xx_until_the_deadline_is_a_transient_error(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", status=502, times=10_000)
    with pytest.raises(ApiError) as e:
        fast_client(simulator, deadline=0.3, max_attempts=10_000).billing_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, 502, "server")
    n = calls(simulator, "/v1/billing/pods")
    assert n > 2
    assert f"after {n} attempts" in str(e.value)


def test_attempts_are_bounded_too(simulator: Simulator, sleeps: list[float]) -> None:
    simulator.fail("/v1/pods", status=500, times=100)
    with pytest.raises(ApiError) as e:
        fast_client(simulator, max_attempts=4).list_pods()
    assert e.value.reason == "server"
    assert calls(simulator, "/v1/pods") == 4


def test_stop_pod_retries_5xx(simulator: Simulator) -> None:
    simulator.fail("/v1/pods/pod-h100-runaway/stop", status=502, times=2, method="POST")
    fast_client(simulator).stop_pod("pod-h100-runaway")
    assert simulator.pod("pod-h100-runaway").desired_status == "EXITED"
    assert calls(simulator, "/v1/pods/pod-h100-runaway/stop") == 3


def test_slow_answer_times_out_and_is_retried(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", delay=2.0, times=1)
    assert len(fast_client(simulator, timeout=0.1).list_pods()) == 3


def test_always_slow_is_a_timeout_error(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", delay=2.0, times=100)
    with pytest.raises(ApiError) as e:
        fast_client(simulator, timeout=0.05, deadline=0.3).list_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, None, "timeout")


def test_truncated_body_is_retried(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", "truncated", times=1)
    assert fast_client(simulator).billing_pods(bucket_size="day")
    simulator.fail("/v1/billing/pods", "truncated", times=100)
    with pytest.raises(ApiError) as e:
        fast_client(simulator, deadline=0.3).billing_pods(bucket_size="day")
    assert (e.value.permanent, e.value.reason) == (False, "transport")


def test_connection_refused_is_transient() -> None:
    with running_simulator() as sim:
        client = fast_client(sim, deadline=0.2)
    with pytest.raises(ApiError) as e:
        client.list_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, None, "transport")


# --------------------------------------------------------------------- bad bodies


def test_garbage_json_is_retried_twice_then_bad_body(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", "garbage", times=1)
    assert fast_client(simulator).billing_pods(bucket_size="day")
    simulator.requests.clear()
    simulator.fail("/v1/billing/pods", "garbage", times=100)
    with pytest.raises(ApiError) as e:
        fast_client(simulator).billing_pods()
    assert (e.value.permanent, e.value.reason) == (False, "bad_body")
    assert "malformed JSON" in str(e.value)
    assert calls(simulator, "/v1/billing/pods") == 3


def test_html_page_is_bad_body_and_html_5xx_is_server(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", "html", times=100)
    with pytest.raises(ApiError) as e:
        fast_client(simulator).list_pods()
    assert (e.value.reason, e.value.status) == ("bad_body", 200)
    assert "HTML page" in str(e.value)
    simulator.clear_faults()
    simulator.fail("/v1/pods", "html", status=502, times=1)
    assert fast_client(simulator).list_pods()


def test_top_level_must_be_an_array(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", status=200, body='{"records": []}')
    with pytest.raises(ApiError) as e:
        fast_client(simulator).billing_pods()
    assert (e.value.permanent, e.value.reason) == (False, "bad_body")
    assert "expected an array" in str(e.value)


@pytest.mark.parametrize("record", BAD_RECORDS)
def test_bad_record_is_refused_not_zeroed(simulator: Simulator, record: str) -> None:
    simulator.fail("/v1/billing/pods", "bad_record", record=record, times=100)
    with pytest.raises(ApiError) as e:
        fast_client(simulator).billing_pods(bucket_size="day")
    err = e.value
    assert (err.permanent, err.reason) == (False, "bad_record")
    field = record.rsplit("_", maxsplit=1)[-1]
    assert "record 0" in str(err)
    assert f"'{field}'" in str(err)
    assert calls(simulator, "/v1/billing/pods") == 1  # the same answer would come back


def test_bad_record_deeper_in_the_list_is_named(simulator: Simulator) -> None:
    body = [{"amount": 1, "time": "2026-11-24T00:00:00Z"},
            {"amount": 2, "time": "2026-11-24T01:00:00Z"},
            {"amount": "NaN", "time": "2026-11-24T02:00:00Z"}]
    simulator.fail("/v1/billing/networkvolumes", status=200, body=json.dumps(body))
    with pytest.raises(ApiError, match=r"record 2: field 'amount'"):
        fast_client(simulator).billing_network_volumes()


def test_bad_pod_is_refused(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", status=200,
                   body=json.dumps([{"id": "p", "desiredStatus": "RUNNING", "costPerHr": -1}]))
    with pytest.raises(ApiError, match=r"record 0: field 'costPerHr'") as e:
        fast_client(simulator).list_pods()
    assert e.value.reason == "bad_record"


@pytest.mark.parametrize("declare_length", [True, False])
def test_body_over_the_cap_is_refused(simulator: Simulator, declare_length: bool) -> None:
    size = 64 * 1024 * 1024
    simulator.fail("/v1/billing/pods", "huge", size=size, declare_length=declare_length)
    with pytest.raises(ApiError) as e:
        fast_client(simulator, max_body_bytes=256 * 1024).billing_pods()
    assert (e.value.permanent, e.value.reason) == (False, "too_large")
    assert calls(simulator, "/v1/billing/pods") <= 1
    # the server could not push the whole body: we stopped reading
    assert all(r.bytes < size for r in simulator.requests)


# --------------------------------------------------------------------- secrets


def test_key_never_in_errors_logs_or_repr(capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    secret = "rpa_SECRET_7f3a9c_do_not_print"
    wrong = "rpa_WRONG_51be2_do_not_print"
    texts: list[str] = []
    with running_simulator(api_key=secret) as sim, capture_logs() as logs:
        good = fast_client(sim, deadline=0.3)
        bad = fast_client(sim, api_key=wrong)
        texts += [repr(good), str(good), repr(bad)]
        sim.fail("/v1/billing/pods", status=500, body=json.dumps({"error": f"echo {secret}"}),
                 times=100)
        sim.fail("/v1/pods", "garbage", times=100)
        sim.fail("/v1/billing/networkvolumes", "bad_record", record="nan_amount", times=1)
        sim.fail("/v1/billing/endpoints", status=400, body=json.dumps({"error": secret}))
        for call in (good.billing_pods, good.list_pods, good.billing_network_volumes,
                     good.billing_endpoints, bad.list_pods, lambda: good.get_pod("nope")):
            with pytest.raises(ApiError) as e:
                call()
            texts += [str(e.value), repr(e.value), repr(e.value.args)]
        structlog.get_logger("test").warning("probe")
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text, repr(logs)]
    assert any("runpod.retry" in repr(ev) for ev in logs)
    blob = "\n".join(texts)
    assert secret not in blob
    assert wrong not in blob
