"""The simulator's answers validate against RunPod's own OpenAPI schemas.

The spec is read in place from ``../shared/runpod-api/openapi-v1-subset.json``
(beside the repository). OpenAPI 3.0 is translated to JSON Schema: ``$ref``s
are inlined from ``components``, ``nullable: true`` becomes a ``null`` type,
the non-standard ``format: currency`` is dropped. Objects that list their
``properties`` are closed (``additionalProperties: false``) so the simulator
cannot invent fields RunPod does not have.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from daemon.simulator import Simulator
from tests.support.simulator import TEST_KEY, http, simulator

__all__ = ["simulator"]  # the fixture, imported for pytest

SPEC = (Path(__file__).resolve().parents[2] / "../shared/runpod-api/openapi-v1-subset.json")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"RunPod spec not found at {SPEC.resolve()}: ../shared is absent")
    return json.loads(SPEC.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def to_json_schema(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """OpenAPI 3.0 schema -> closed JSON Schema (see module doc)."""
    assert depth < 40, "unexpectedly deep or cyclic $ref chain"
    if isinstance(node, list):
        return [to_json_schema(x, components, depth + 1) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        return to_json_schema(components[name], components, depth + 1)
    out = {k: to_json_schema(v, components, depth + 1) for k, v in node.items()
           if k not in ("example", "nullable", "description")}
    if out.get("format") == "currency":
        del out["format"]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False
    return out


def response_schema(spec: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    op = spec["paths"][path][method]
    content = op["responses"]["200"]["content"]["application/json"]["schema"]
    return to_json_schema(content, spec["components"]["schemas"])  # type: ignore[no-any-return]


def fetch(sim: Simulator, path: str, method: str = "GET", **params: Any) -> Any:
    r = http.request(method, sim.base_url + path, params=params,
                      headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert r.status_code == 200, r.text
    return r.json()


def check(doc: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("grouping", ["podId", "gpuTypeId"])
@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_billing_pods(spec: dict[str, Any], simulator: Simulator, grouping: str,
                      bucket: str) -> None:
    doc = fetch(simulator, "/billing/pods", grouping=grouping, bucketSize=bucket)
    assert doc
    check(doc, response_schema(spec, "/billing/pods"))
    assert all(ISO_Z.match(r["time"]) for r in doc)
    assert all(grouping in r for r in doc)


def test_billing_network_volumes_and_endpoints(spec: dict[str, Any],
                                               simulator: Simulator) -> None:
    vols = fetch(simulator, "/billing/networkvolumes", bucketSize="day")
    assert vols
    check(vols, response_schema(spec, "/billing/networkvolumes"))
    assert all(ISO_Z.match(r["time"]) for r in vols)
    check(fetch(simulator, "/billing/endpoints"), response_schema(spec, "/billing/endpoints"))


def test_pods_list_single_and_stop(spec: dict[str, Any], simulator: Simulator) -> None:
    pods = fetch(simulator, "/pods")
    assert len(pods) == 3
    check(pods, response_schema(spec, "/pods"))
    one = fetch(simulator, "/pods/pod-a100-train", includeMachine="true")
    check(one, response_schema(spec, "/pods/{podId}"))
    stopped = fetch(simulator, "/pods/pod-a100-train/stop", method="POST")
    check(stopped, response_schema(spec, "/pods/{podId}"))


def test_closed_schema_catches_invented_fields(spec: dict[str, Any]) -> None:
    schema = response_schema(spec, "/billing/pods")
    with pytest.raises(jsonschema.ValidationError):
        check([{"amount": 1.0, "time": "2026-11-24T00:00:00Z", "costUsd": 1.0}], schema)


def test_spec_parameters_are_accepted(spec: dict[str, Any], simulator: Simulator) -> None:
    for path in ("/billing/pods", "/billing/endpoints", "/billing/networkvolumes", "/pods"):
        params: dict[str, Any] = {}
        for p in spec["paths"][path]["get"]["parameters"]:
            s = p["schema"]
            value = s.get("example", (s.get("enum") or ["x"])[0])
            if s.get("type") == "boolean":
                value = "true"
            elif s.get("format") == "date-time":
                value = value.replace("2023", "2026")
            params[p["name"]] = value
        fetch(simulator, path, **params)  # 200: every documented parameter is understood
