"""The simulator's protocol behaviour beyond data: RFC 9457 errors, v2 rate limits,
retired APIs (410), GraphQL balance, and faults (the strict-parsing bad records).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from daemon.simulator import BAD_RECORDS, FakeClock, Simulator
from tests.support.simulator import (
    FULL_SCENARIO,
    PINNED_NOW,
    TEST_KEY,
    full_simulator,
    http,
    running_simulator,
)

__all__ = ["full_simulator"]  # the fixture, imported for pytest

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
NOON = int(datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp())
BALANCE = "query { myself { clientBalance currentSpendPerHr spendLimit } }"


def v2(sim: Simulator, path: str, **kw: Any) -> httpx.Response:
    return http.get(sim.base_url_for("v2") + path, headers=kw.pop("headers", AUTH), **kw)


def gql(sim: Simulator, query: Any, headers: dict[str, str] = AUTH) -> httpx.Response:
    return http.post(sim.graphql_url, headers=headers, json={"query": query})


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_v2_401_is_a_problem_without_rate_limit_headers(full_simulator: Simulator,
                                                        headers: dict[str, str]) -> None:
    r = v2(full_simulator, "/pods", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"title": "Unauthorized", "status": 401,
                        "detail": "Unauthorized: missing or invalid API key"}
    assert "RateLimit" not in r.headers
    # v1 keeps its own shape
    v1 = http.get(full_simulator.base_url + "/pods", headers=headers)
    assert v1.headers["content-type"] == "application/json" and "error" in v1.json()


def test_v2_404_and_400_problems(full_simulator: Simulator) -> None:
    r = v2(full_simulator, "/billing/nothing")
    assert (r.status_code, r.json()["title"]) == (404, "Not Found")
    bad = v2(full_simulator, "/billing", params={"bucketSize": "fortnight"})
    assert bad.status_code == 400
    assert bad.json()["errors"] == ["query.bucketSize: must be one of hour, day, week, month, "
                                    "year"]
    assert "RateLimit" in bad.headers  # an authenticated answer, even an error


# --------------------------------------------------------------------- rate limits


def test_every_authenticated_v2_answer_carries_rate_limit_headers(
    full_simulator: Simulator,
) -> None:
    r1, r2 = v2(full_simulator, "/pods"), v2(full_simulator, "/billing")
    # PINNED_NOW is 14:05:12: 48 s to the minute, 3288 s to the hour, 35688 s to the day
    assert r1.headers["RateLimit-Policy"] == ('"minute";q=600;w=60, "hour";q=30000;w=3600, '
                                              '"day";q=500000;w=86400')
    assert r1.headers["RateLimit"] == ('"minute";r=599;t=48, "hour";r=29999;t=3288, '
                                       '"day";r=499999;t=35688')
    assert r2.headers["RateLimit"].startswith('"minute";r=598;t=48')
    assert "RateLimit" not in http.get(full_simulator.base_url + "/pods",
                                        headers=AUTH).headers  # v1 has none


def test_over_quota_is_429_with_retry_after_until_the_window_resets() -> None:
    clock = FakeClock(PINNED_NOW)
    with running_simulator(FULL_SCENARIO, clock=clock,
                           rate_limit={"minute": 3, "hour": 5}) as sim:
        assert [v2(sim, "/pods").status_code for _ in range(3)] == [200, 200, 200]
        r = v2(sim, "/pods")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "48"
        assert r.headers["RateLimit"] == '"minute";r=0;t=48, "hour";r=2;t=3288'
        assert r.json() == {"title": "Too Many Requests", "status": 429,
                            "detail": "rate limit exceeded for the minute window"}
        clock.advance(timedelta(seconds=48))  # the next minute: refused calls did not count
        assert [v2(sim, "/pods").status_code for _ in range(3)] == [200, 200, 429]
        hour = v2(sim, "/pods")
        assert hour.headers["Retry-After"] == str(3288 - 48)
        assert '"hour";r=0' in hour.headers["RateLimit"]
        # GraphQL and v1 are not limited by the v2 policy
        assert gql(sim, BALANCE).status_code == 200
        assert http.get(sim.base_url + "/pods", headers=AUTH).status_code == 200


def test_rate_limit_from_scenario_and_exempt_policy() -> None:
    with running_simulator({**FULL_SCENARIO, "rate_limit": {"day": 1}}) as sim:
        assert v2(sim, "/pods").headers["RateLimit-Policy"] == '"day";q=1;w=86400'
        assert v2(sim, "/pods").status_code == 429
        sim.set_rate_limit(None)
        r = v2(sim, "/pods")
        assert r.status_code == 200 and "RateLimit" not in r.headers


# --------------------------------------------------------------------- retired APIs


def test_retire_v1_answers_410_on_every_v1_route_before_auth(full_simulator: Simulator) -> None:
    full_simulator.retire("v1")
    for method, path in [("GET", "/billing/pods"), ("GET", "/pods"), ("GET", "/pods/x"),
                         ("POST", "/pods/pod-a100-train/stop"), ("GET", "/nowhere")]:
        r = http.request(method, full_simulator.base_url + path, headers=AUTH)
        assert r.status_code == 410, path
        assert r.json()["status"] == 410
    assert http.get(full_simulator.base_url + "/pods").status_code == 410
    assert full_simulator.pod("pod-a100-train").desired_status == "RUNNING"
    assert v2(full_simulator, "/pods").status_code == 200
    full_simulator.retire("v1", retired=False)
    assert http.get(full_simulator.base_url + "/pods", headers=AUTH).status_code == 200


def test_retire_graphql_and_v2_and_from_the_scenario() -> None:
    with running_simulator({**FULL_SCENARIO, "retired": ["graphql"]}, retired=["v2"]) as sim:
        r = gql(sim, BALANCE)
        assert r.status_code == 410
        assert r.json()["errors"][0]["message"]
        gone = v2(sim, "/billing")
        assert (gone.status_code, gone.json()["title"]) == (410, "Gone")
        assert gone.headers["content-type"] == "application/problem+json"
    with pytest.raises(ValueError, match="unknown API"):
        Simulator(FULL_SCENARIO).retire("v3")


# --------------------------------------------------------------------- GraphQL


def test_balance_falls_with_the_clock_and_rises_with_a_top_up(full_simulator: Simulator) -> None:
    first = gql(full_simulator, BALANCE)
    assert first.status_code == 200
    me = first.json()["data"]["myself"]
    # running: a100 1.64 + h100 5.98 + cpu 0.12 + l4 0.43 + cluster 48 + ep-sdxl 0.9
    # + volumes 0.05 + 0.14 + public endpoints 0.2
    burn = 1.64 + 5.98 + 0.12 + 0.43 + 48 + 0.9 + 0.05 + 0.14 + 0.2
    assert me == {"clientBalance": 50.0, "currentSpendPerHr": pytest.approx(burn),
                  "spendLimit": 80.0}
    full_simulator.clock.advance(timedelta(minutes=30))
    later = gql(full_simulator, BALANCE).json()["data"]["myself"]
    assert later["clientBalance"] == pytest.approx(50.0 - burn / 2, abs=1e-5)
    http.post(full_simulator.base_url_for("v2") + "/pods/pod-h100-runaway/action",
               headers=AUTH, json={"action": "stop"})
    assert gql(full_simulator, BALANCE).json()["data"]["myself"][
        "currentSpendPerHr"] == pytest.approx(burn - 5.98)
    assert full_simulator.top_up(100) == pytest.approx(150.0 - burn / 2, abs=1e-5)
    assert gql(full_simulator, "{ myself { clientBalance } }").json() == {
        "data": {"myself": {"clientBalance": pytest.approx(150.0 - burn / 2, abs=1e-5)}}}


@pytest.mark.parametrize(("query", "message"), [
    ("query { myself { clientBalance }", "Syntax Error"),
    ("query { myself { } }", "Syntax Error"),
    ("{ myself { clientBalance password } }", 'Cannot query field "password"'),
    ("mutation { topUp }", "only answers queries"),
    (42, "Must provide query string"),
])
def test_graphql_errors_use_graphql_shape(full_simulator: Simulator, query: Any,
                                          message: str) -> None:
    r = gql(full_simulator, query)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"errors"}
    assert message in body["errors"][0]["message"]


def test_graphql_needs_the_key_and_a_named_query_works(full_simulator: Simulator) -> None:
    assert gql(full_simulator, BALANCE, headers={}).status_code == 401
    r = gql(full_simulator, "query Balance { myself { spendLimit __typename } }")
    assert r.json() == {"data": {"myself": {"spendLimit": 80.0, "__typename": "User"}}}


def test_balance_counts_only_spend_since_the_scenario_loaded() -> None:
    clock = FakeClock(datetime(2026, 11, 24, 12, tzinfo=UTC))
    scenario = {"pods": [{"id": "p", "cost_per_hr": 10, "running": [["-5h", None]]}],
                "balance": {"start": 40}}
    with running_simulator(scenario, clock=clock) as sim:
        clock.advance(timedelta(hours=3))
        me = gql(sim, BALANCE).json()["data"]["myself"]
    assert (me["clientBalance"], me["currentSpendPerHr"]) == (10.0, 10.0)


# --------------------------------------------------------------------- faults


def test_v2_proxy_faults(full_simulator: Simulator) -> None:
    full_simulator.fail("/v2/billing", status=503)
    r = v2(full_simulator, "/billing/pods")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 503
    full_simulator.fail("/v2/pods", retry_after=7)
    limited = v2(full_simulator, "/pods")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    full_simulator.fail("/v2/billing/pods", "garbage")
    with pytest.raises(json.JSONDecodeError):
        v2(full_simulator, "/billing/pods").json()
    full_simulator.fail("/v2/billing/pods", "huge", size=200_000)
    huge = v2(full_simulator, "/billing/pods")
    assert (huge.json(), len(huge.content)) == ({"records": []}, 200_000)
    full_simulator.fail("/graphql", status=502)
    assert gql(full_simulator, BALANCE).json()["errors"][0]["message"]


SPOILED_V2: dict[str, Any] = {
    "missing_amount": lambda r: "totalAmount" not in r,
    "nan_amount": lambda r: math.isnan(r["totalAmount"]),
    "inf_amount": lambda r: math.isinf(r["totalAmount"]),
    "negative_amount": lambda r: r["totalAmount"] == -1.25,
    "string_amount": lambda r: r["totalAmount"] == "1.5",
    "bool_amount": lambda r: r["totalAmount"] is True,
    "huge_amount": lambda r: r["totalAmount"] == 1e308,
    "bad_time": lambda r: r["startTime"] == "yesterday-ish",
    "missing_time": lambda r: "startTime" not in r,
    "naive_time": lambda r: (r["startTime"], r["endTime"]) == ("2026-11-24T12:00:00",
                                                               "2026-11-24T13:00:00"),
    "epoch_time": lambda r: (r["startTime"], r["endTime"]) == (NOON, NOON + 3600),
    "out_of_range": lambda r: (r["startTime"], r["endTime"]) == ("2026-11-26T15:00:00Z",
                                                                 "2026-11-26T16:00:00Z"),
    "year_2000": lambda r: (r["startTime"], r["endTime"]) == ("2000-01-01T00:00:00Z",
                                                              "2000-01-01T01:00:00Z"),
}


def test_every_bad_record_kind_is_covered() -> None:
    assert set(SPOILED_V2) | {"duplicate"} == set(BAD_RECORDS)


@pytest.mark.parametrize("how", sorted(SPOILED_V2))
def test_v2_bad_records(full_simulator: Simulator, how: str) -> None:
    params = {"bucketSize": "hour", "startTime": "2026-11-24T12:00:00Z",
              "endTime": "2026-11-24T15:00:00Z"}
    clean = v2(full_simulator, "/billing/pods", params=params).json()["records"]
    full_simulator.fail("/v2/billing/pods", "bad_record", record=how)
    r = v2(full_simulator, "/billing/pods", params=params)
    recs = json.loads(r.text)["records"]  # NaN and Infinity too
    assert SPOILED_V2[how](recs[0])
    assert recs[1:] == clean[1:]
    assert recs[0]["podId"] == clean[0]["podId"]


def test_v2_duplicate_record_and_empty_answers(full_simulator: Simulator) -> None:
    full_simulator.fail("/v2/billing/network-volumes", "bad_record", record="duplicate")
    recs = v2(full_simulator, "/billing/network-volumes", params={"lastN": "2"}).json()[
        "records"]
    assert recs[0] == recs[1]
    full_simulator.fail("/v2/billing/clusters", "bad_record", record="string_amount")
    made_up = v2(full_simulator, "/billing/clusters", params={"clusterId": "none"}).json()
    assert made_up["records"][0]["totalAmount"] == "1.5"
    assert made_up["records"][0]["clusterId"] == "none"  # the filter asked for


@pytest.mark.parametrize(("how", "check"), [
    ("string_amount", lambda r: r["amount"] == "1.5"),
    ("bool_amount", lambda r: r["amount"] is True),
    ("huge_amount", lambda r: r["amount"] == 1e308),
    ("naive_time", lambda r: r["time"] == "2026-11-24T12:00:00"),
    ("epoch_time", lambda r: r["time"] == NOON),
    ("out_of_range", lambda r: r["time"] == "2026-11-26T15:00:00Z"),
    ("year_2000", lambda r: r["time"] == "2000-01-01T00:00:00Z"),
])
def test_v1_bad_records(full_simulator: Simulator, how: str, check: Any) -> None:
    params = {"bucketSize": "hour", "grouping": "podId", "startTime": "2026-11-24T12:00:00Z",
              "endTime": "2026-11-24T15:00:00Z"}
    full_simulator.fail("/v1/billing/pods", "bad_record", record=how)
    recs = http.get(full_simulator.base_url + "/billing/pods", headers=AUTH,
                     params=params).json()
    assert check(recs[0])


def test_v1_duplicate_record(full_simulator: Simulator) -> None:
    full_simulator.fail("/v1/billing/endpoints", "bad_record", record="duplicate")
    recs = http.get(full_simulator.base_url + "/billing/endpoints", headers=AUTH).json()
    assert recs[0] == recs[1] and recs[0]["endpointId"]


def test_bad_records_on_pods_and_graphql(full_simulator: Simulator) -> None:
    full_simulator.fail("/v2/pods", "bad_record", record="string_amount")
    pods = v2(full_simulator, "/pods").json()["pods"]
    assert pods[0]["cost"] == "1.5" and isinstance(pods[1]["cost"], float)
    full_simulator.fail("/v2/pods/pod-a100-train", "bad_record", record="naive_time")
    assert v2(full_simulator, "/pods/pod-a100-train").json()["startedAt"] == "2026-11-24T08:00:00"
    full_simulator.fail("/graphql", "bad_record", record="huge_amount")
    assert gql(full_simulator, BALANCE).json()["data"]["myself"]["clientBalance"] == 1e308


def test_starting_a_pod_without_balance_is_402(full_simulator: Simulator) -> None:
    url = full_simulator.base_url_for("v2") + "/pods/pod-a4500-nb/action"
    full_simulator.clock.advance(timedelta(hours=1))  # ~$57/h burns the $50
    r = http.post(url, headers=AUTH, json={"action": "start"})
    assert (r.status_code, r.json()["title"]) == (402, "Payment Required")
    full_simulator.top_up(25)
    assert http.post(url, headers=AUTH, json={"action": "start"}).status_code == 200


def test_at_zero_balance_pods_stop_at_that_instant_when_asked_to() -> None:
    clock = FakeClock(PINNED_NOW)
    scenario = {"pods": [
        {"id": "keep", "gpu_type": "NVIDIA L4", "cost_per_hr": 6.0,
         "running": [["-1h", None]], "network_volume": "v"},
        {"id": "lose", "gpu_type": "NVIDIA L4", "cost_per_hr": 4.0, "running": [["-1h", None]]},
    ], "balance": {"start": 5.0, "stop_at_zero": True}}
    with running_simulator(scenario, clock=clock) as sim:
        clock.advance(timedelta(hours=2))  # $10/h: the $5 ran out after 30 minutes
        pods = {p["id"]: p["status"] for p in v2(sim, "/pods").json()["pods"]}
        assert pods == {"keep": "EXITED"}  # "lose" had no network volume: terminated
        me = gql(sim, BALANCE).json()["data"]["myself"]
        assert me["clientBalance"] == pytest.approx(0.0, abs=1e-6)
        assert me["currentSpendPerHr"] == 0.0
        bill = v2(sim, "/billing/pods", params={"bucketSize": "hour", "lastN": "4"}).json()
        assert sum(r["totalAmount"] for r in bill["records"]) == pytest.approx(15.0, abs=1e-5)
