"""RunPod adapter failure handling against simulator faults: what users see when RunPod fails."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from daemon.adapters.runpod import RequestInfo
from daemon.core.ports import ApiError
from daemon.simulator import BAD_RECORDS, Simulator
from tests.adapters.runpod_support import (
    BILLING_PODS,
    PODS,
    VERSIONS,
    base_url,
    calls,
    fast_api,
    inject,
    no_waits,
    pod_billing_body,
    running_simulator,
    simulator,
    utc,
)

__all__ = ["no_waits", "simulator"]  # fixtures, imported for pytest

DAY = {"bucket": "day", "start": utc(2026, 11, 24), "end": utc(2026, 11, 25)}


def billing_pods(api: Any) -> Any:
    return api.billing("pods", **DAY)


def retry_waits(logs: list[dict[str, Any]]) -> list[float]:
    return [ev["wait"] for ev in logs if ev["event"] == "runpod.retry"]


def empty_pods(version: str) -> Any:
    return [] if version == "v1" else {"pods": []}


# --------------------------------------------------------------------- permanent


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_key_is_permanent_auth_error_without_retry(simulator: Simulator,
                                                          version: str) -> None:
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, version, api_key="wrong-key"))
    err = e.value
    assert (err.permanent, err.status, err.reason) == (True, 401, "auth")
    assert "API key is wrong or expired" in str(err)
    assert calls(simulator, BILLING_PODS[version]) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_forbidden_is_permanent(simulator: Simulator, version: str) -> None:
    simulator.fail(PODS[version], status=403, times=5)
    with pytest.raises(ApiError) as e:
        fast_api(simulator, version).list_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (True, 403, "forbidden")
    assert "lacks permission" in str(e.value)
    assert calls(simulator, PODS[version]) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_pod_is_permanent_not_found(simulator: Simulator, version: str) -> None:
    with pytest.raises(ApiError) as e:
        fast_api(simulator, version).stop_pod("nope")
    assert (e.value.permanent, e.value.status, e.value.reason) == (True, 404, "not_found")


@pytest.mark.parametrize("version", VERSIONS)
def test_409_conflict_is_permanent_and_not_retried(simulator: Simulator, version: str) -> None:
    problem = {"title": "Conflict", "status": 409,
               "detail": "action stop is not valid for a pod in status EXITED"}
    simulator.fail(f"/{version}/pods/pod-a4500-nb", status=409, body=json.dumps(problem),
                   times=5, method="POST")
    with pytest.raises(ApiError) as e:
        fast_api(simulator, version).stop_pod("pod-a4500-nb")
    assert (e.value.permanent, e.value.status, e.value.reason) == (True, 409, "conflict")
    assert "not valid for a pod in status EXITED" in str(e.value)
    assert sum(1 for r in simulator.requests if r.method == "POST") == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_410_gone_says_the_version_was_retired_and_the_fix(simulator: Simulator,
                                                           version: str) -> None:
    simulator.fail(f"/{version}/", status=410, times=5)
    api = fast_api(simulator, version)
    for call in (lambda: billing_pods(api), api.list_pods, lambda: api.stop_pod("p")):
        with pytest.raises(ApiError) as e:
            call()
        assert (e.value.permanent, e.value.status, e.value.reason) == (True, 410, "gone")
        fix = (
            "RunPod has retired API v1 (HTTP 410 Gone): set api.version: v2 in the config"
            if version == "v1"
            else "RunPod answered 410 Gone for API v2: check RUNPOD_API_BASE_URL"
        )
        assert str(e.value).startswith(fix)
    assert len(simulator.requests) == 3


@pytest.mark.parametrize(("version", "body", "shown"), [
    ("v1", {"error": "startTime after endTime"}, "startTime after endTime"),
    ("v2", {"title": "Unprocessable Entity", "status": 422, "detail": "startTime after endTime",
            "errors": ["$.bucketSize: must be one of hour, day"]},
     "startTime after endTime; $.bucketSize: must be one of hour, day"),
    ("v2", {"title": "Payment Required", "status": 402}, "Payment Required"),
])
def test_other_4xx_is_permanent_client_error_with_the_detail(
    simulator: Simulator, version: str, body: dict[str, Any], shown: str
) -> None:
    status = body.get("status", 422)
    simulator.fail(BILLING_PODS[version], status=status, body=json.dumps(body), times=5)
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, version))
    assert (e.value.permanent, e.value.status, e.value.reason) == (True, status, "client")
    assert shown in str(e.value)
    assert calls(simulator, BILLING_PODS[version]) == 1


# --------------------------------------------------------------------- 429


@pytest.mark.usefixtures("no_waits")
@pytest.mark.parametrize("version", VERSIONS)
def test_429_retry_after_seconds_is_honoured(simulator: Simulator, version: str) -> None:
    simulator.fail(PODS[version], retry_after=1, times=1)
    inject(simulator, PODS[version], empty_pods(version), times=1)
    with capture_logs() as logs:
        assert fast_api(simulator, version).list_pods() == []
    assert retry_waits(logs) == [1.0]
    assert calls(simulator, PODS[version]) == 2


@pytest.mark.usefixtures("no_waits")
def test_429_retry_after_http_date_is_honoured(simulator: Simulator) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    simulator.fail("/v1/billing/pods", retry_after=format_datetime(when, usegmt=True))
    with capture_logs() as logs:
        assert billing_pods(fast_api(simulator, deadline=10, retry_after_cap=60)) is not None
    (waited,) = retry_waits(logs)
    assert 1.0 < waited <= 3.0


@pytest.mark.usefixtures("no_waits")
def test_429_retry_after_is_capped(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", retry_after=3600, times=2)
    with capture_logs() as logs:
        billing_pods(fast_api(simulator, retry_after_cap=0.5))
    assert retry_waits(logs) == [0.5, 0.5]


@pytest.mark.usefixtures("no_waits")
@pytest.mark.parametrize("version", VERSIONS)
def test_429_past_the_deadline_fails_at_once(simulator: Simulator, version: str) -> None:
    simulator.fail(BILLING_PODS[version], retry_after=30, times=5)
    with capture_logs() as logs, pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, version, retry_after_cap=60, deadline=5))
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, 429, "rate_limited")
    assert retry_waits(logs) == []
    assert calls(simulator, BILLING_PODS[version]) == 1


# --------------------------------------------------------------------- transient


@pytest.mark.usefixtures("no_waits")
def test_5xx_is_retried_with_growing_backoff_then_succeeds(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", status=503, times=3)
    api = fast_api(simulator, wait_initial=0.1, wait_max=1.0, wait_jitter=0.0)
    with capture_logs() as logs:
        billing_pods(api)
    assert retry_waits(logs) == pytest.approx([0.1, 0.2, 0.4])
    assert calls(simulator, "/v1/billing/pods") == 4


@pytest.mark.parametrize("version", VERSIONS)
def test_5xx_until_the_deadline_is_a_transient_error(simulator: Simulator, version: str) -> None:
    simulator.fail(BILLING_PODS[version], status=502, times=10_000)
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, version, deadline=1.0, max_attempts=10_000))
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, 502, "server")
    n = calls(simulator, BILLING_PODS[version])
    assert n > 2
    assert f"after {n} attempts" in str(e.value)


@pytest.mark.usefixtures("no_waits")
def test_attempts_are_bounded_too(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", status=500, times=100)
    with pytest.raises(ApiError) as e:
        fast_api(simulator, max_attempts=4).list_pods()
    assert e.value.reason == "server"
    assert calls(simulator, "/v1/pods") == 4


@pytest.mark.usefixtures("no_waits")
@pytest.mark.parametrize("version", VERSIONS)
def test_stop_pod_retries_5xx(simulator: Simulator, version: str) -> None:
    path = {"v1": "/v1/pods/pod-h100-runaway/stop", "v2": "/v2/pods/pod-h100-runaway/action"}
    simulator.fail(path[version], status=502, times=2, method="POST")
    if version == "v2":  # until the simulator routes v2: the pod it would answer
        inject(simulator, path[version], {"id": "pod-h100-runaway"}, times=1)
    fast_api(simulator, version).stop_pod("pod-h100-runaway")
    assert calls(simulator, path[version]) == 3
    if version == "v1":
        assert simulator.pod("pod-h100-runaway").desired_status == "EXITED"


def test_slow_answer_times_out_and_is_retried(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", delay=2.0, times=1)
    assert len(fast_api(simulator, timeout=0.1).list_pods()) == 3


def test_always_slow_is_a_timeout_error(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", delay=2.0, times=100)
    with pytest.raises(ApiError) as e:
        fast_api(simulator, timeout=0.05, deadline=0.3).list_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, None, "timeout")


def test_truncated_body_is_retried(simulator: Simulator) -> None:
    simulator.fail("/v1/billing/pods", "truncated", times=1)
    assert billing_pods(fast_api(simulator))
    simulator.fail("/v1/billing/pods", "truncated", times=100)
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, deadline=0.3))
    assert (e.value.permanent, e.value.reason) == (False, "transport")


@pytest.mark.parametrize("version", VERSIONS)
def test_connection_refused_fails_within_seconds_and_names_the_host(version: str) -> None:
    with running_simulator() as sim:
        seen: list[RequestInfo] = []
        # the production defaults: a 60 s deadline and half-second waits
        api = fast_api(sim, version, deadline=60, wait_initial=0.5, wait_max=10,
                       wait_jitter=1.0, on_request=seen.append)
        host = sim.base_url.split("/")[2]
    with capture_logs() as logs, pytest.raises(ApiError) as e:
        api.list_pods()
    assert (e.value.permanent, e.value.status, e.value.reason) == (False, None, "transport")
    assert str(e.value) == (f"RunPod GET /pods at {host}: connection refused "
                            f"(after 3 attempts)")
    assert len(seen) == 3
    assert sum(retry_waits(logs)) <= 3.0  # not the 60 s deadline


# --------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize("version", VERSIONS)
def test_garbage_json_is_retried_twice_then_bad_body(simulator: Simulator, version: str) -> None:
    simulator.fail(PODS[version], "garbage", times=1)
    inject(simulator, PODS[version], empty_pods(version), times=1)
    assert fast_api(simulator, version).list_pods() == []
    simulator.requests.clear()
    simulator.fail(PODS[version], "garbage", times=100)
    with pytest.raises(ApiError) as e:
        fast_api(simulator, version).list_pods()
    assert (e.value.permanent, e.value.reason) == (False, "bad_body")
    assert "malformed JSON" in str(e.value)
    assert calls(simulator, PODS[version]) == 3


def test_html_page_is_bad_body_and_html_5xx_is_server(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", "html", times=100)
    with pytest.raises(ApiError) as e:
        fast_api(simulator).list_pods()
    assert (e.value.reason, e.value.status) == ("bad_body", 200)
    assert "HTML page" in str(e.value)
    simulator.clear_faults()
    simulator.fail("/v1/pods", "html", status=502, times=1)
    assert fast_api(simulator).list_pods()


@pytest.mark.parametrize(("version", "body", "expected"), [
    ("v1", {"records": []}, "expected a JSON array"),
    ("v2", [], "expected an object with a 'records' array"),
    ("v2", {"metadata": {}}, "expected an object with a 'records' array"),
])
def test_top_level_shape_is_checked(simulator: Simulator, version: str, body: Any,
                                    expected: str) -> None:
    inject(simulator, BILLING_PODS[version], body)
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, version))
    assert (e.value.permanent, e.value.reason) == (False, "bad_body")
    assert expected in str(e.value)


#: what each simulator bad-record fault must say ({amount}/{time}: the version's field)
BAD_RECORD_MESSAGES = {
    "missing_amount": r"record 0: field '{amount}': missing",
    "nan_amount": r"record 0: field '{amount}': an amount must be a finite number",
    "inf_amount": r"record 0: field '{amount}': an amount must be a finite number",
    "negative_amount": r"record 0: field '{amount}': amount -1.25 must not be negative",
    "bad_time": r"record 0: field '{time}': time 'yesterday-ish' is not an RFC 3339 time",
    "missing_time": r"record 0: field '{time}': missing",
    "string_amount": r"record 0: field '{amount}': an amount must be a JSON number, got a "
                     r"string '1.5'",
    "bool_amount": r"record 0: field '{amount}': an amount must be a JSON number, got a boolean",
    "huge_amount": r"record 0: field '{amount}': amount 1e\+308 is above the plausibility "
                   r"bound of \$1,000,000 for one record",
    "naive_time": r"record 0: field '{time}': time '2026-11-24T00:00:00' has no zone",
    "epoch_time": r"record 0: field '{time}': expected an RFC 3339 string, got the number "
                  r"\d+ \(epoch times are refused\)",
    "out_of_range": r"record 0 \(pod 'pod-a100-train', bucket 2026-11-27T00:00:00Z\) lies "
                    r"outside the requested range \[2026-11-24T00:00:00Z, 2026-11-25T00:00:00Z\)",
    "year_2000": r"record 0 \(pod 'pod-a100-train', bucket 2000-01-01T00:00:00Z\) lies "
                 r"outside the requested range",
    "duplicate": r"record 1 \(pod 'pod-a100-train', bucket 2026-11-24T00:00:00Z\) duplicates "
                 r"record 0 \(same pod and bucket\); refused, not summed",
}
FIELDS = {"v1": {"amount": "amount", "time": "time"},
          "v2": {"amount": "totalAmount", "time": "startTime"}}


def test_every_simulator_bad_record_has_a_message() -> None:
    assert set(BAD_RECORD_MESSAGES) == set(BAD_RECORDS)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("record", BAD_RECORDS)
def test_simulator_bad_record_is_refused_with_one_clear_message(
    simulator: Simulator, version: str, record: str
) -> None:
    simulator.fail(BILLING_PODS[version], "bad_record", record=record, times=100)
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, version))
    err = e.value
    assert (err.permanent, err.reason) == (False, "bad_record")
    host = base_url(simulator, version).split("/")[2]
    assert str(err).startswith(f"RunPod GET /billing/pods at {host}: bad record ")
    expected = BAD_RECORD_MESSAGES[record].format(**FIELDS[version])
    assert re.search(expected, str(err)), str(err)
    assert calls(simulator, BILLING_PODS[version]) == 1  # the same answer would come back


def test_bad_record_deeper_in_the_list_is_named(simulator: Simulator) -> None:
    body = [{"amount": 1, "time": "2026-11-24T00:00:00Z"},
            {"amount": 2, "time": "2026-11-24T01:00:00Z"},
            {"amount": "NaN", "time": "2026-11-24T02:00:00Z"}]
    inject(simulator, "/v1/billing/networkvolumes", body)
    with pytest.raises(ApiError, match=r"record 2: field 'amount'"):
        fast_api(simulator).billing("storage", bucket="hour", start=utc(2026, 11, 24),
                                    end=utc(2026, 11, 25))


def test_bad_pod_is_refused(simulator: Simulator) -> None:
    inject(simulator, "/v1/pods", [{"id": "p", "desiredStatus": "RUNNING", "costPerHr": -1}])
    with pytest.raises(ApiError, match=r"record 0: field 'costPerHr'") as e:
        fast_api(simulator).list_pods()
    assert e.value.reason == "bad_record"


@pytest.mark.parametrize("declare_length", [True, False])
def test_body_over_the_cap_is_refused(simulator: Simulator, declare_length: bool) -> None:
    size = 64 * 1024 * 1024
    simulator.fail("/v1/billing/pods", "huge", size=size, declare_length=declare_length)
    with pytest.raises(ApiError) as e:
        billing_pods(fast_api(simulator, max_body_bytes=256 * 1024))
    assert (e.value.permanent, e.value.reason) == (False, "too_large")
    assert calls(simulator, "/v1/billing/pods") <= 1
    # the server could not push the whole body: we stopped reading
    assert all(r.bytes < size for r in simulator.requests)


# --------------------------------------------------------------------- logs and secrets


@pytest.mark.usefixtures("no_waits")
def test_one_retry_event_per_retry_without_stamina_noise(simulator: Simulator) -> None:
    simulator.fail("/v1/pods", status=503, times=2)
    with capture_logs() as logs:
        fast_api(simulator).list_pods()
    retries = [ev for ev in logs if "retry" in ev["event"]]
    assert [ev["event"] for ev in retries] == ["runpod.retry", "runpod.retry"]
    assert retries[0]["path"] == "/pods" and retries[0]["status"] == 503
    assert "<context block>" not in repr(logs)


def test_key_never_in_errors_logs_or_repr(capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    secret = "rpa_SECRET_7f3a9c_do_not_print"
    wrong = "rpa_WRONG_51be2_do_not_print"
    texts: list[str] = []
    with running_simulator(api_key=secret) as sim, capture_logs() as logs:
        good = fast_api(sim, deadline=0.3)
        good2 = fast_api(sim, "v2", deadline=0.3)
        bad = fast_api(sim, api_key=wrong)
        texts += [repr(good), str(good), repr(bad), repr(good2), repr(vars(good))]
        sim.fail("/v1/billing/pods", status=500, body=json.dumps({"error": f"echo {secret}"}),
                 times=100)
        sim.fail("/v2/billing/pods", status=400,
                 body=json.dumps({"title": "Bad", "detail": f"key {secret} refused"}), times=100)
        sim.fail("/v1/pods", "garbage", times=100, method="GET")
        sim.fail("/v1/billing/networkvolumes", "bad_record", record="nan_amount", times=1)
        sim.fail("/v1/billing/endpoints", status=400, body=json.dumps({"error": secret}))
        for call in (lambda: billing_pods(good), good.list_pods,
                     lambda: good.billing("storage", **DAY),
                     lambda: good.billing("serverless", **DAY), bad.list_pods,
                     lambda: good.stop_pod("nope"), lambda: billing_pods(good2)):
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
    assert "***" in blob  # the echoed key was masked, not dropped with its message


def test_injected_v1_body_alias_is_refused_when_the_amount_is_a_string(
    simulator: Simulator,
) -> None:
    # main's client read "2.5" as 2.5; the strict parser refuses it (one clear message)
    inject(simulator, "/v1/billing/pods",
           pod_billing_body("v1", [{"amount": "2.5", "time": "2026-11-24T10:00:00+00:00"}]))
    with pytest.raises(ApiError, match=r"record 0: field 'amount': an amount must be a JSON "
                                       r"number, got a string '2.5'"):
        billing_pods(fast_api(simulator))


def test_a_set_cancel_event_stops_retrying(simulator: Simulator) -> None:
    import threading

    stop = threading.Event()
    stop.set()  # SIGTERM arrived: the call in flight reports its failure at once
    simulator.fail("/v1/pods", status=503, times=100)
    with capture_logs() as logs, pytest.raises(ApiError) as e:
        fast_api(simulator, cancel=stop).list_pods()
    assert (e.value.reason, e.value.status) == ("server", 503)
    assert calls(simulator, "/v1/pods") == 1
    assert retry_waits(logs) == []


@pytest.mark.parametrize(("version", "record", "field"), [
    ("v1", {"amount": 1.0, "time": "2026-11-24T10:00:00Z"}, "podId"),
    ("v2", {"startTime": "2026-11-24T10:00:00Z", "endTime": "2026-11-24T11:00:00Z",
            "totalAmount": 1.0}, "podId"),
])
def test_a_pod_record_without_its_pod_id_is_refused(
    simulator: Simulator, version: str, record: dict[str, Any], field: str
) -> None:
    inject(simulator, BILLING_PODS[version], pod_billing_body(version, [record]))
    with pytest.raises(ApiError, match=rf"record 0: field '{field}': missing") as e:
        billing_pods(fast_api(simulator, version))
    assert e.value.reason == "bad_record"
