"""The deploy/ files: systemd unit, Docker, Kubernetes, Grafana, Prometheus rules.

They parse, they are hardened, and they agree with the code: ports, metric
names, health endpoints, config schema.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from daemon.app.http import DEFAULT_LISTEN, HealthServer, HealthState
from daemon.app.metrics import Metrics
from daemon.config.loader import parse_config
from daemon.config.models import Http
from tests.app.test_metrics import exercise

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "runpod-budget.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "docker" / "docker-compose.yml"
K8S = DEPLOY / "kubernetes"
DASHBOARD = DEPLOY / "grafana" / "runpod-budget.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULES_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
PORT = 9464

FAKE_ENV = {
    "RUNPOD_API_KEY": "rpa_test",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ",
    "WEBHOOK_SECRET": "whsec_dGVzdHNlY3JldA==",
}


def load_all(path: Path) -> list[Any]:
    return [d for d in YAML(typ="safe", pure=True).load_all(path.read_text()) if d is not None]


def load_one(path: Path) -> Any:
    docs = load_all(path)
    assert len(docs) == 1, path
    return docs[0]


# --------------------------------------------------------------------------- systemd


def unit_entries(path: Path = UNIT) -> list[tuple[str, str, str]]:
    """(section, key, value) in order; keys may repeat."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def unit_value(key: str) -> str:
    values = [v for s, k, v in unit_entries() if s == "Service" and k == key]
    assert values, f"{key} not set"
    return values[-1]


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    return exe


@pytest.fixture
def fake_root(tmp_path: Path) -> Iterator[Path]:
    """A root for `systemd-analyze verify --root`: the host's unit files (for
    sysinit.target etc.), a stub ExecStart binary and /bin/kill, since the real
    binary is not installed on a test machine."""
    host_units = Path("/usr/lib/systemd/system")
    if not (host_units / "sysinit.target").exists():
        pytest.skip("no systemd unit files on this machine (/usr/lib/systemd/system)")
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    for exe in ("opt/runpod-budget/bin/runpod-budget", "bin/kill"):
        p = root / exe
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    yield root


def verify(root: Path, text: str) -> subprocess.CompletedProcess[str]:
    exe = _systemd_analyze()
    (root / "etc/systemd/system/runpod-budget.service").write_text(text)
    return subprocess.run(
        [exe, "verify", f"--root={root}", "runpod-budget.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unit_passes_systemd_analyze_verify(fake_root: Path) -> None:
    proc = verify(fake_root, UNIT.read_text())
    # verify exits 0 even for unknown keys; it warns on stderr, so both must be clean.
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def test_verify_harness_catches_a_typo(fake_root: Path) -> None:
    """The check above is not vacuous: a misspelled key is reported."""
    bad = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict")
    proc = verify(fake_root, bad)
    assert "Unknown key" in proc.stderr and "ProtectSystm" in proc.stderr


def test_unit_security_exposure_is_low() -> None:
    exe = _systemd_analyze()
    proc = subprocess.run(
        [exe, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert m, proc.stdout + proc.stderr
    exposure = float(m.group(1))
    assert exposure <= 2.0, proc.stdout


def test_unit_settings() -> None:
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    assert unit_value("ExecStart").split()[:2] == ["/opt/runpod-budget/bin/runpod-budget", "run"]
    assert "-c /etc/runpod-budget/budgets.yaml" in unit_value("ExecStart")
    assert unit_value("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value("DynamicUser") == "yes"
    assert unit_value("StateDirectory") == "runpod-budget"
    assert unit_value("ConfigurationDirectory") == "runpod-budget"
    assert unit_value("Restart") == "on-failure"
    assert unit_value("MemoryMax") == "256M"
    assert unit_value("CapabilityBoundingSet") == ""
    creds = {v.split(":", 1)[0] for s, k, v in unit_entries() if k == "LoadCredential"}
    assert creds == {"RUNPOD_API_KEY", "SLACK_WEBHOOK_URL", "WEBHOOK_SECRET"}
    families = unit_value("RestrictAddressFamilies").split()
    assert set(families) == {"AF_INET", "AF_INET6", "AF_UNIX"}  # AF_UNIX: notify socket
    assert not [k for s, k, v in unit_entries() if k == "IPAddressDeny"]  # must reach RunPod


def _seconds(text: str) -> float:
    total = 0.0
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    for n, unit in re.findall(r"(\d+)\s*([a-z]*)", text):
        total += int(n) * units.get(unit or "s", 0)
    return total


def test_watchdog_exceeds_default_poll_interval_with_margin() -> None:
    watchdog = _seconds(unit_value("WatchdogSec"))
    # The daemon pings after each successful cycle; default poll_interval is 5m.
    assert watchdog >= 2 * 300, watchdog


# --------------------------------------------------------------------------- Docker


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_multistage_non_root_healthcheck() -> None:
    ins = dockerfile_instructions()
    froms = [v for k, v in ins if k == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    args = dict(v.split("=", 1) for k, v in ins if k == "ARG" and "=" in v)
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    users = [v for k, v in ins if k == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert not any(u.split(":")[0] in ("root", "0") for u in users)
    health = [v for k, v in ins if k == "HEALTHCHECK"]
    assert len(health) == 1
    assert f"http://127.0.0.1:{PORT}/healthz" in health[0]
    assert json.loads([v for k, v in ins if k == "ENTRYPOINT"][-1]) == ["runpod-budget"]
    assert json.loads([v for k, v in ins if k == "CMD"][-1]) == [
        "run",
        "-c",
        "/etc/runpod-budget/budgets.yaml",
    ]
    env = " ".join(v for k, v in ins if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/var/lib/runpod-budget" in env
    assert f"EXPOSE {PORT}" in [f"{k} {v}" for k, v in ins]
    assert any(k == "VOLUME" and "/var/lib/runpod-budget" in v for k, v in ins)


def _healthcheck_command() -> list[str]:
    line = next(v for k, v in dockerfile_instructions() if k == "HEALTHCHECK")
    cmd = json.loads(line[line.index("CMD") + 3 :].strip())
    assert isinstance(cmd, list)
    return [str(c) for c in cmd]


def test_dockerfile_healthcheck_command_works() -> None:
    """Run the HEALTHCHECK one-liner (port swapped for an ephemeral one)
    against a live HealthServer, and against nothing."""
    cmd = _healthcheck_command()
    assert cmd[:2] == ["python", "-c"]
    server = HealthServer(Metrics(version="x"), lambda: HealthState(0.0, 60.0), "127.0.0.1:0")
    with server:
        code = cmd[2].replace(f":{PORT}/", f":{server.port}/")
        ok = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        )
        port = server.port
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(
        [sys.executable, "-c", cmd[2].replace(f":{PORT}/", f":{port}/")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert down.returncode != 0


def test_compose_is_hardened_and_consistent() -> None:
    doc = load_one(COMPOSE)
    svc = doc["services"]["runpod-budget"]
    assert svc["read_only"] is True
    assert any(str(t).startswith("/tmp") for t in svc["tmpfs"])
    assert svc["user"].split(":")[0] == "10001"
    assert svc["cap_drop"] == ["ALL"]
    assert svc["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (
        COMPOSE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]
    ).resolve() == DOCKERFILE
    env = svc["environment"]
    assert env["RUNPOD_API_KEY_FILE"] == "/run/secrets/runpod_api_key"
    for var, path in env.items():
        assert var.endswith("_FILE"), "secrets only as files"
        assert Path(path).name in doc["secrets"]
    assert set(svc["secrets"]) <= set(doc["secrets"])
    assert "state:/var/lib/runpod-budget" in svc["volumes"]
    assert f"127.0.0.1:{PORT}:{PORT}" in svc["ports"]
    assert f"http://127.0.0.1:{PORT}/healthz" in " ".join(svc["healthcheck"]["test"])
    assert svc["command"] == ["run", "-c", "/etc/runpod-budget/budgets.yaml"]


def test_docker_sample_config_is_valid_and_listens_on_all_interfaces() -> None:
    cfg = parse_config((DEPLOY / "docker" / "budgets.yaml").read_text(), env=FAKE_ENV)
    assert cfg.http.listen == f"0.0.0.0:{PORT}"


def test_config_secrets_resolve_from_files(tmp_path: Path) -> None:
    (tmp_path / "slack").write_text(FAKE_ENV["SLACK_WEBHOOK_URL"] + "\n")
    env = {"RUNPOD_API_KEY": "rpa_test", "SLACK_WEBHOOK_URL_FILE": str(tmp_path / "slack")}
    cfg = parse_config((DEPLOY / "docker" / "budgets.yaml").read_text(), env=env)
    assert cfg.notifiers["ops"].type == "slack"


# --------------------------------------------------------------------------- Kubernetes


def k8s_objects() -> dict[str, Any]:
    kust = load_one(K8S / "kustomization.yaml")
    objs: dict[str, Any] = {}
    for name in kust["resources"]:
        for doc in load_all(K8S / name):
            objs[doc["kind"]] = doc
    return objs


def test_kustomization_lists_existing_files_and_all_parse() -> None:
    kust = load_one(K8S / "kustomization.yaml")
    for name in kust["resources"]:
        assert (K8S / name).is_file(), name
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            if path.name != "kustomization.yaml":
                assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
                assert "namespace" not in doc["metadata"], f"{path} must be namespace-agnostic"
    # Operator objects exist, commented out in the default list.
    text = (K8S / "kustomization.yaml").read_text()
    assert "# - servicemonitor.yaml" in text
    assert load_one(K8S / "servicemonitor.yaml")["spec"]["endpoints"][0]["port"] == "metrics"


def test_deployment_security_and_probes() -> None:
    objs = k8s_objects()
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"] == [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}]
    assert c["resources"]["limits"]["memory"]
    assert c["args"] == ["run", "-c", "/etc/runpod-budget/budgets.yaml"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/var/lib/runpod-budget"] == "state"
    assert mounts["/tmp"] == "tmp"
    # secrets reach the daemon as files (<VAR>_FILE), one per key of the Secret
    secret = objs["Secret"]
    assert not [e for e in c["env"] if "valueFrom" in e], "secrets as files, not variables"
    (vol,) = [v for v in pod["volumes"] if "secret" in v]
    assert vol["secret"]["secretName"] == secret["metadata"]["name"]
    secret_dir = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == vol["name"])
    files = {e["name"]: e["value"] for e in c["env"] if e["name"].endswith("_FILE")}
    assert {f"{secret_dir}/{key}" for key in secret["stringData"]} == set(files.values())
    for var, path in files.items():
        assert Path(path).name == var.removesuffix("_FILE"), var
    assert c["resources"]["limits"]["cpu"]
    # the service selects the pods and targets the named port
    svc = objs["Service"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["port"] == PORT
    assert svc["metadata"]["annotations"]["prometheus.io/port"] == str(PORT)


def test_configmap_config_is_valid() -> None:
    cm = k8s_objects()["ConfigMap"]
    cfg = parse_config(cm["data"]["budgets.yaml"], env=FAKE_ENV)
    assert cfg.http.listen == f"0.0.0.0:{PORT}"
    assert cfg.budgets


def test_default_listen_port_matches_everywhere() -> None:
    assert Http().listen == DEFAULT_LISTEN
    assert DEFAULT_LISTEN.endswith(f":{PORT}")


def test_prometheus_rule_matches_rules_file() -> None:
    rule = load_one(K8S / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == load_one(RULES)["groups"]


# --------------------------------------------------------------------------- metrics names


def exported_names() -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    m = Metrics(version="1.0.0")
    exercise(m)
    names: set[str] = set()
    for fam in text_string_to_metric_families(m.render().decode()):
        names.update(s.name for s in fam.samples)
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            exprs.append(t["expr"])
    for var in dash["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            exprs.append(q["query"])
    return exprs


def rule_exprs() -> list[str]:
    return [r["expr"] for g in load_one(RULES)["groups"] for r in g["rules"]]


METRIC = re.compile(r"\b((?:runpod_budget|process|python)_[a-z0-9_]+)")


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_used_is_exported(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    used = {name for e in exprs for name in METRIC.findall(e)}
    assert any(n.startswith("runpod_budget_") for n in used)
    missing = used - exported_names()
    assert not missing, missing


def test_dashboard_covers_the_key_views() -> None:
    used = {name for e in dashboard_exprs() for name in METRIC.findall(e)}
    for name in (
        "runpod_budget_budget_used_ratio",
        "runpod_budget_budget_spend_usd",
        "runpod_budget_budget_limit_usd",
        "runpod_budget_api_errors_total",
        "runpod_budget_notifications_failed_total",
        "runpod_budget_outbox_pending",
        "runpod_budget_enforcement_actions_total",
        "runpod_budget_last_successful_poll_timestamp_seconds",
    ):
        assert name in used, name
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    return exe


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana variables
    replaced by plain values)."""
    exe = _promtool()
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        if expr.startswith("label_values("):
            continue
        e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        e = re.sub(r"\$\w+", ".*", e)
        rules.append({"record": f"dashboard:query_{i}", "expr": e})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        [exe, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_rules_check_and_unit_tests() -> None:
    exe = _promtool()
    check = subprocess.run(
        [exe, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [exe, "test", "rules", str(RULES_TEST)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
