"""Every REST v2 answer of the simulator validates against RunPod's own v2 schema.

The spec is read in place from ``../shared/runpod-api/openapi-v2-subset.json``
(beside the repository). It is OpenAPI 3.1, so its schemas are JSON Schema
2020-12 already: ``$ref``s are inlined from ``components``, ``discriminator``
and examples are dropped, and every object schema outside an ``allOf`` list gets
``unevaluatedProperties: false`` (seeing through ``allOf``) so the simulator
cannot invent fields RunPod does not have. Answers are checked by status:
200 against the operation's schema, errors against ``ErrorResponse`` with
``application/problem+json``; authenticated answers must carry the rate-limit
headers in their structured-field form.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from daemon.simulator import Simulator
from tests.support.simulator import FULL_SCENARIO, TEST_KEY, http, running_simulator

SPEC = (Path(__file__).resolve().parents[2] / "../shared/runpod-api/openapi-v2-subset.json")
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
RATELIMIT = re.compile(r'^"(minute|hour|day)";r=\d+;t=\d+(, "(minute|hour|day)";r=\d+;t=\d+)*$')
POLICY = re.compile(r'^"(minute|hour|day)";q=\d+;w=\d+(, "(minute|hour|day)";q=\d+;w=\d+)*$')
DROP = ("example", "examples", "description", "discriminator", "x-enum-varnames")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"RunPod v2 spec not found at {SPEC.resolve()}: ../shared is absent")
    return json.loads(SPEC.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def closed(node: Any, comps: dict[str, Any], in_all_of: bool = False, depth: int = 0) -> Any:
    """OpenAPI 3.1 schema -> self-contained, closed JSON Schema (see module doc)."""
    assert depth < 60, "unexpectedly deep or cyclic $ref chain"
    if isinstance(node, list):
        return [closed(x, comps, False, depth + 1) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = comps[node["$ref"].removeprefix("#/components/schemas/")]
        return closed(target, comps, in_all_of, depth + 1)
    out = {k: closed(v, comps, False, depth + 1) for k, v in node.items()
           if k not in DROP and k != "allOf" and k != "properties"}
    if "properties" in node:
        out["properties"] = {k: closed(v, comps, False, depth + 1)
                             for k, v in node["properties"].items()}
    if "allOf" in node:
        out["allOf"] = [closed(x, comps, True, depth + 1) for x in node["allOf"]]
    if not in_all_of and ("properties" in node or "allOf" in node):
        out["unevaluatedProperties"] = False
    return out


def schema_for(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    comps = spec["components"]["schemas"]
    if status >= 400:
        return closed(comps["ErrorResponse"], comps)  # type: ignore[no-any-return]
    op = spec["paths"][path][method.lower()]
    content = op["responses"][str(status)]["content"]["application/json"]["schema"]
    return closed(content, comps)  # type: ignore[no-any-return]


def check(spec: dict[str, Any], r: httpx.Response, template: str) -> None:
    """``r`` (an answer to ``template``'s operation) is what the schema allows."""
    method = r.request.method
    op = spec["paths"][template][method.lower()]
    assert str(r.status_code) in op["responses"] or r.status_code >= 400, r.status_code
    if r.status_code != 401:
        assert RATELIMIT.match(r.headers["RateLimit"]), r.headers.get("RateLimit")
        assert POLICY.match(r.headers["RateLimit-Policy"])
    if r.status_code == 204:
        assert r.content == b""
        return
    want = "application/problem+json" if r.status_code >= 400 else "application/json"
    assert r.headers["content-type"].startswith(want)
    jsonschema.Draft202012Validator(schema_for(spec, template, method, r.status_code)).validate(
        r.json())


def call(sim: Simulator, method: str, path: str, **kw: Any) -> httpx.Response:
    return http.request(method, sim.base_url_for("v2") + path, headers=AUTH, **kw)


BILLING = ["/v2/billing", "/v2/billing/pods", "/v2/billing/serverless",
           "/v2/billing/network-volumes", "/v2/billing/clusters", "/v2/billing/endpoints"]


@pytest.fixture(scope="module")
def full() -> Any:
    with running_simulator(FULL_SCENARIO) as sim:
        yield sim


@pytest.mark.parametrize("template", BILLING)
@pytest.mark.parametrize("params", [
    {}, {"bucketSize": "hour", "startTime": "2026-11-24T09:30:00Z"},
    {"bucketSize": "week", "lastN": "3"}, {"bucketSize": "month", "lastN": "2"},
    {"bucketSize": "year", "startTime": "2026-01-01T00:00:00Z",
     "endTime": "2026-12-31T00:00:00Z"},
])
def test_billing_answers(spec: dict[str, Any], full: Simulator, template: str,
                         params: dict[str, str]) -> None:
    r = call(full, "GET", template.removeprefix("/v2"), params=params)
    assert r.status_code == 200, r.text
    check(spec, r, template)
    assert r.json()["records"], "every family of FULL_SCENARIO has spend today"


@pytest.mark.parametrize(("template", "param", "value"), [
    ("/v2/billing/pods", "podId", "pod-l4-locked"),
    ("/v2/billing/serverless", "serverlessId", "ep-cpu"),
    ("/v2/billing/network-volumes", "networkVolumeId", "vol-fast"),
    ("/v2/billing/clusters", "clusterId", "clu-train"),
])
def test_filtered_billing(spec: dict[str, Any], full: Simulator, template: str, param: str,
                          value: str) -> None:
    r = call(full, "GET", template.removeprefix("/v2"), params={param: value, "lastN": "7"})
    check(spec, r, template)
    assert {rec[param] for rec in r.json()["records"]} == {value}


def test_resource_answers(spec: dict[str, Any], full: Simulator) -> None:
    listing = call(full, "GET", "/pods", params={"includeClusterPods": "true"})
    check(spec, listing, "/v2/pods")
    pods = listing.json()["pods"]
    statuses = {p["status"] for p in pods}
    assert {"RUNNING", "EXITED"} <= statuses
    assert any("cpu" in p for p in pods) and any("gpu" in p for p in pods)
    assert any("cluster" in p for p in pods) and any(p["locked"] for p in pods)
    for p in pods:
        check(spec, call(full, "GET", f"/pods/{p['id']}"), "/v2/pods/{id}")
    check(spec, call(full, "GET", "/pods"), "/v2/pods")
    eps = call(full, "GET", "/serverless")
    check(spec, eps, "/v2/serverless")
    for e in eps.json()["endpoints"]:
        check(spec, call(full, "GET", f"/serverless/{e['id']}"), "/v2/serverless/{id}")
    vols = call(full, "GET", "/network-volumes")
    check(spec, vols, "/v2/network-volumes")
    for v in vols.json()["networkVolumes"]:
        check(spec, call(full, "GET", f"/network-volumes/{v['id']}"),
              "/v2/network-volumes/{id}")


def test_action_answers_and_refusals(spec: dict[str, Any]) -> None:
    action = "/v2/pods/{id}/action"
    with running_simulator(FULL_SCENARIO) as sim:
        for pod, act, status in [
            ("pod-a100-train", "restart", 200), ("pod-a100-train", "stop", 200),
            ("pod-a100-train", "stop", 409), ("pod-a100-train", "start", 200),
            ("pod-l4-locked", "stop", 409), ("clu-train-node0", "stop", 409),
            ("pod-h100-runaway", "terminate", 204), ("pod-h100-runaway", "stop", 404),
        ]:
            r = call(sim, "POST", f"/pods/{pod}/action", json={"action": act})
            assert r.status_code == status, (pod, act, r.text)
            check(spec, r, action)
        for body in ({"action": "explode"}, {"action": "stop", "force": True}, {}):
            r = call(sim, "POST", "/pods/pod-a100-train/action", json=body)
            assert r.status_code == 422
            check(spec, r, action)
        r = call(sim, "POST", "/pods/pod-a100-train/action", content=b"{nope")
        assert r.status_code == 400
        check(spec, r, action)


@pytest.mark.parametrize(("path", "params"), [
    ("/billing/pods", {"bucketSize": "minute"}),
    ("/billing", {"lastN": "2", "startTime": "2026-11-01T00:00:00Z"}),
    ("/billing/serverless", {"lastN": "0"}),
    ("/billing/clusters", {"startTime": "2026-11-24T00:00:00"}),
    ("/pods/nope", {}), ("/serverless/nope", {}), ("/network-volumes/nope", {}),
    ("/nowhere", {}),
])
def test_error_answers_are_problems(spec: dict[str, Any], full: Simulator, path: str,
                                    params: dict[str, str]) -> None:
    r = call(full, "GET", path, params=params)
    assert r.status_code in (400, 404)
    check(spec, r, "/v2/billing")  # ErrorResponse is shared by every operation


def test_unauthorized_and_rate_limited_answers(spec: dict[str, Any]) -> None:
    with running_simulator(FULL_SCENARIO, rate_limit={"minute": 1}) as sim:
        r = http.get(sim.base_url_for("v2") + "/pods", headers={"Authorization": "Bearer x"})
        assert r.status_code == 401
        check(spec, r, "/v2/pods")
        check(spec, call(sim, "GET", "/pods"), "/v2/pods")
        limited = call(sim, "GET", "/pods")
        assert limited.status_code == 429
        check(spec, limited, "/v2/pods")


def test_closed_schema_catches_invented_fields(spec: dict[str, Any], full: Simulator) -> None:
    doc = call(full, "GET", "/pods/pod-a100-train").json()
    schema = schema_for(spec, "/v2/pods/{id}", "GET", 200)
    jsonschema.Draft202012Validator(schema).validate(doc)
    for bad in ({**doc, "costPerHr": 1.0}, {**doc, "gpu": {**doc["gpu"], "displayName": "x"}},
                {k: v for k, v in doc.items() if k != "startedAt"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema).validate(bad)
