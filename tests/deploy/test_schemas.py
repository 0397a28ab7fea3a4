"""deploy/ checked against outside references: the Kubernetes API schemas
(kubernetes-validate, schemas shipped in the package, so offline), the build
context the root .dockerignore leaves, and the install steps the README and
the unit agree on."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
UNIT = ROOT / "deploy" / "systemd" / "runpod-budget.service"
README = ROOT / "deploy" / "README.md"
# Prometheus Operator objects: not in the Kubernetes API schemas.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# The oldest and newest Kubernetes minor versions the package ships schemas for
# that we claim: manifests must be valid on both.
K8S_VERSIONS = ["1.29.0", "1.37.0"]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in YAML(typ="safe", pure=True).load_all(path.read_text()):
            if doc is not None:
                out.append((path.name, doc))
    return out


@pytest.fixture(scope="module")
def kv() -> Any:
    return pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (pip install -e '.[dev]')"
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_api_schemas(kv: Any, version: str) -> None:
    checked = []
    for name, doc in manifests():
        if doc["kind"] in OPERATOR_KINDS:
            continue
        # strict: an unknown or misplaced field is an error, not ignored
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{name} ({doc['kind']}) against Kubernetes {version}: {e}")
        checked.append(doc["kind"])
    expected = {"Deployment", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim"}
    assert expected | {"NetworkPolicy", "ServiceAccount"} <= set(checked)


def test_the_validator_rejects_a_misplaced_field(kv: Any) -> None:
    """Not vacuous: readOnlyRootFilesystem at pod level (a common slip) fails."""
    dep = copy.deepcopy(next(d for _, d in manifests() if d["kind"] == "Deployment"))
    dep["spec"]["template"]["spec"]["securityContext"]["readOnlyRootFilesystem"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(dep, K8S_VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------- Docker


def _copy_sources() -> set[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    sources: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            sources.update(p.rstrip("/") for p in parts[1:-1])
    return sources


def test_dockerignore_is_an_allow_list_of_what_the_dockerfile_copies() -> None:
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert patterns[0] == "*", "everything is excluded first (.git, tests, secrets, state)"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert allowed == _copy_sources()
    # BuildKit would prefer a Dockerfile.dockerignore over the root file
    assert not (DOCKERFILE.parent / "Dockerfile.dockerignore").exists()


def test_dockerfile_builds_with_the_legacy_builder_and_pip_args() -> None:
    text = DOCKERFILE.read_text()
    assert "# syntax=" not in text
    for arg in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CERT"):
        assert re.search(rf"^ARG {arg}=", text, re.M), arg
    # Debian 12's engine (20.10) rejects --start-interval
    health = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK"))
    assert "--start-interval" not in health
    interval = re.search(r"--interval=(\d+)s", health)
    assert interval and int(interval.group(1)) <= 10, "healthy within seconds"


# --------------------------------------------------------------------------- systemd


def readme_install_block() -> list[str]:
    text = README.read_text()
    m = re.search(r"<!-- install:begin.*?-->\n```sh\n(.*?)```\n<!-- install:end -->", text, re.S)
    assert m, "deploy/README.md lost its install block (deploy/smoke/systemd.sh runs it)"
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def test_readme_installs_into_the_venv_the_unit_runs() -> None:
    block = readme_install_block()
    exec_start = next(
        ln.split("=", 1)[1] for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")
    )
    venv = exec_start.split()[0].removesuffix("/bin/runpod-budget")
    assert f"python3 -m venv {venv}" in block
    assert any(ln.startswith(f"{venv}/bin/pip install") for ln in block)
    assert not any(re.match(r"(sudo )?pip3? install", ln) for ln in block), "PEP 668"
    assert "install -m 0644 deploy/systemd/runpod-budget.service /etc/systemd/system/" in block
