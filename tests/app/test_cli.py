"""The command line as users run it: ``python -m daemon COMMAND`` in a subprocess.

Against the RunPod simulator (in this process, real clock, loopback) and a
recording webhook receiver; every run checks the contract's exit code and
that nothing prints a traceback.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.simulator import Simulator
from tests.support.payloads import PAYLOAD_KEYS
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow

KEY = "rpa_CLISECRETKEY0123456789abcdef"
COMMANDS = ("run", "check", "validate", "status", "test-notify", "demo")

# Rolling 24h windows give the same numbers whatever the time of day or month.
# "all-24h": far over $1 at once (the A100 pod ran 6 h at $1.64/h) -> one alert at 100%.
# "notebook-24h": the notebook pod, $0.75-$1.75 in any 24h -> one alert at 50%.
ALL_24H = """\
  - name: all-24h
    window: 24h
    limit: 1
    thresholds: [100]
"""
NOTEBOOK_24H = """\
  - name: notebook-24h
    window: 24h
    limit: 1
    thresholds: [50]
    match: {pod_id: [demo7notebook02]}
"""
# the runaway pod ($1800/h) projects past $1000 unless the month ends within ~30 min
MONTH_FORECAST = """\
  - name: month-forecast
    window: month
    limit: 1000
    thresholds: [100]
    forecast: true
"""

# Runs the CLI with stamina's test mode: retries without waiting, 3 attempts.
# Only for "persistent failure" tests: the real client needs ~60 s to give up.
FAST_RETRIES = (
    "import sys, stamina; stamina.set_testing(True, attempts=3); "
    "from daemon.app.cli import main; sys.exit(main(sys.argv[1:]))"
)


def write_config(
    path: Path,
    notifiers: dict[str, str],
    budgets: str = ALL_24H,
    version: str = "v2",
    extra: str = "",
) -> Path:
    """A config; ``version`` "v2" leaves out ``api:`` (v2 is the default)."""
    lines = ["version: 1"]
    if version != "v2":
        lines += ["api:", f"  version: {version}"]
    lines += ["notifiers:"]
    for name, url in notifiers.items():
        lines += [f"  {name}:", "    type: webhook", f"    url: {url}"]
    lines += ["defaults:", f"  notify: [{', '.join(notifiers)}]", "budgets:"]
    path.write_text("\n".join(lines) + "\n" + budgets + extra)
    return path


def cli_env(
    tmp_path: Path, sim: Simulator | None = None, version: str = "v2", **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["RUNPOD_API_KEY"] = KEY
    env["STATE_DIRECTORY"] = str(tmp_path / "state")
    if sim is not None:
        env["RUNPOD_API_BASE_URL"] = sim.base_url_for(version)
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, fast_retries: bool = False
) -> subprocess.CompletedProcess[str]:
    head = ["-c", FAST_RETRIES] if fast_retries else ["-m", "daemon"]
    p = subprocess.run(
        [sys.executable, *head, *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def db_dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("demo", api_key=KEY) as s:
        yield s


@pytest.fixture(params=["v1", "v2"])
def version(request: pytest.FixtureRequest) -> str:
    """The RunPod API version a check/status test runs against."""
    return str(request.param)


def billing_prefix(version: str) -> str:
    """Where a fault makes every billing call of ``version`` fail."""
    return f"/{version}/billing"


def billing_path(version: str) -> str:
    """The first billing call a cycle makes on ``version``."""
    return {"v1": "/v1/billing/pods", "v2": "/v2/billing"}[version]


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# --------------------------------------------------------------------------- help, validate


def test_help_lists_every_command(tmp_path: Path) -> None:
    p = run_cli("--help", env=cli_env(tmp_path))
    assert p.returncode == 0
    for command in COMMANDS:
        assert re.search(rf"^\s+{re.escape(command)}\s", p.stdout, re.MULTILINE), command


def test_validate_good_config_prints_ok(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "good.yaml", {"hook": "https://example.com/hook"})
    p = run_cli("validate", "-c", str(cfg), env=cli_env(tmp_path))
    assert p.returncode == 0
    assert p.stdout.strip() == "OK"


def test_validate_bad_config_prints_every_problem_with_position(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "version: 1\n"
        "notifiers:\n"
        "  hook:\n"
        "    type: webhook\n"
        "    url: ${UNSET_HOOK_URL}\n"
        "defaults:\n"
        "  notify: [hook]\n"
        "budgets:\n"
        "  - name: a\n"
        "    window: day\n"
        "    limit: -5\n"
        "    thresholdz: [50]\n"
        "  - name: b\n"
        "    window: fortnight\n"
        "    limit: 10\n"
        "    notify: [nobody]\n"
    )
    env = cli_env(tmp_path)
    env.pop("UNSET_HOOK_URL", None)
    p = run_cli("validate", "-c", str(cfg), env=env)
    assert p.returncode == 2
    assert "OK" not in p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    shape = re.compile(rf"^{re.escape(str(cfg))}:(\d+):(\d+): ([\w.-]+): .+$")
    problems = {}
    for ln in lines:
        m = shape.match(ln)
        assert m, f"not FILE:LINE:COL: key: message: {ln!r}"
        problems[m.group(3)] = int(m.group(1))
    assert problems == {
        "notifiers.hook.url": 5,
        "budgets.0.limit": 11,
        "budgets.0.thresholdz": 12,
        "budgets.1.window": 14,
        "budgets.1.notify": 16,
    }
    assert "UNSET_HOOK_URL" in p.stderr


def test_validate_missing_file_is_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    p = run_cli("validate", "-c", str(missing), env=cli_env(tmp_path))
    assert p.returncode == 2
    assert f"{missing}:" in p.stderr and "file not found" in p.stderr


def test_config_path_defaults_to_env_then_config_budgets_yaml(tmp_path: Path) -> None:
    good = write_config(tmp_path / "from-env.yaml", {"hook": "https://example.com/hook"})
    work = tmp_path / "work"
    work.mkdir()
    p = run_cli("validate", env=cli_env(tmp_path, RUNPOD_BUDGET_CONFIG=str(good)), cwd=work)
    assert p.returncode == 0 and p.stdout.strip() == "OK"

    # no env: ./config/budgets.yaml, and the error names the file it looked for
    p = run_cli("validate", env=cli_env(tmp_path), cwd=work)
    assert p.returncode == 2
    assert "config/budgets.yaml" in p.stderr and "file not found" in p.stderr
    (work / "config").mkdir()
    write_config(work / "config" / "budgets.yaml", {"hook": "https://example.com/hook"})
    p = run_cli("validate", env=cli_env(tmp_path), cwd=work)
    assert p.returncode == 0 and p.stdout.strip() == "OK"


# --------------------------------------------------------------------------- check


def test_check_sends_alerts_once_then_nothing_new(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, ALL_24H + NOTEBOOK_24H, version=version
    )
    env = cli_env(tmp_path, sim, version)
    p = run_cli("check", "-c", str(cfg), env=env)
    assert p.returncode == 0, p.stderr
    reqs = rx.requests_to("/hook")
    assert len(reqs) == 2
    by_budget = {r.json["budget"]: r for r in reqs}
    assert set(by_budget) == {"all-24h", "notebook-24h"}
    for r in reqs:
        assert set(r.json) >= PAYLOAD_KEYS
        assert r.json["kind"] == "threshold"
        assert r.headers["webhook-id"] == r.json["id"]
    assert by_budget["all-24h"].json["threshold_percent"] == 100
    assert by_budget["notebook-24h"].json["threshold_percent"] == 50
    assert p.stdout.count("queued for hook") == 2
    assert p.stdout.count("delivered to hook: ") == 2

    again = run_cli("check", "-c", str(cfg), env=env)
    assert again.returncode == 0
    assert "no new alerts" in again.stdout
    assert len(rx.requests) == 2  # deduplicated through the state file


def test_check_dry_run_prints_and_changes_nothing(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    env = cli_env(tmp_path, sim, version)
    first = write_config(
        tmp_path / "first.yaml", {"hook": rx.url + "/hook"}, ALL_24H, version=version
    )
    assert run_cli("check", "-c", str(first), env=env).returncode == 0
    assert len(rx.requests) == 1
    db = tmp_path / "state" / "state.db"
    before = db_dump(db)

    more = write_config(
        tmp_path / "more.yaml", {"hook": rx.url + "/hook"}, ALL_24H + NOTEBOOK_24H, version=version
    )
    p = run_cli("check", "--dry-run", "-c", str(more), env=env)
    assert p.returncode == 0, p.stderr
    would = [ln for ln in p.stdout.splitlines() if ln.startswith("would send")]
    assert len(would) == 1 and "notebook-24h" in would[0], p.stdout
    assert len(rx.requests) == 1  # nothing sent
    assert db_dump(db) == before  # nothing recorded
    # and the alert it would have sent is still to come
    assert run_cli("check", "-c", str(more), env=env).returncode == 0
    assert [r.json["budget"] for r in rx.requests[1:]] == ["notebook-24h"]


def test_check_dry_run_does_not_create_the_state_database(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    cfg = write_config(tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, version=version)
    p = run_cli("check", "--dry-run", "-c", str(cfg), env=cli_env(tmp_path, sim, version))
    assert p.returncode == 0, p.stderr
    assert "would send" in p.stdout
    assert rx.requests == []
    assert not (tmp_path / "state" / "state.db").exists()


def test_check_with_a_wrong_api_key_says_so_without_printing_it(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    wrong = "rpa_WRONGKEY_do_not_print_me_42"
    cfg = write_config(tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, version=version)
    p = run_cli("check", "-c", str(cfg), env=cli_env(tmp_path, sim, version, RUNPOD_API_KEY=wrong))
    assert p.returncode == 1
    said = [ln for ln in p.stdout.splitlines() if "key is wrong" in ln]
    assert len(said) == 1, p.stdout
    assert "401" in said[0] and "key is wrong" in said[0]
    assert wrong not in p.stdout + p.stderr
    # a wrong key cannot fix itself: the health notice goes out at once, and nothing else
    assert [r.json["kind"] for r in rx.requests] == ["health"]
    assert wrong not in rx.requests[0].body.decode()


def test_check_with_persistent_server_errors_exits_1_after_retries(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    sim.fail(billing_prefix(version), status=500, times=1000)
    cfg = write_config(tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, version=version)
    p = run_cli("check", "-c", str(cfg), env=cli_env(tmp_path, sim, version), fast_retries=True)
    assert p.returncode == 1
    assert "billing API unusable" in p.stdout and "HTTP 500" in p.stdout
    first = billing_path(version)
    assert sum(r.path == first for r in sim.requests) == 3  # retried
    assert rx.requests == []


def test_check_with_garbage_json_from_billing_exits_1(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    sim.fail(billing_prefix(version), "garbage", times=1000)
    cfg = write_config(tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, version=version)
    p = run_cli("check", "-c", str(cfg), env=cli_env(tmp_path, sim, version))
    assert p.returncode == 1
    line = next(ln for ln in p.stdout.splitlines() if "billing API unusable" in ln)
    assert "malformed JSON" in line
    assert rx.requests == []


def test_check_with_billing_down_sends_no_forecast_built_on_unknown_spend(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    sim.fail(billing_prefix(version), status=500, times=1000)  # GET /pods still answers
    cfg = write_config(
        tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, MONTH_FORECAST, version=version
    )
    p = run_cli("check", "-c", str(cfg), env=cli_env(tmp_path, sim, version), fast_retries=True)
    assert p.returncode == 1
    assert [r.json for r in rx.requests] == []


# --------------------------------------------------------------------------- status


def test_status_shows_each_budget_with_spend_and_percent(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"hook": rx.url + "/hook"}, ALL_24H + NOTEBOOK_24H, version=version
    )
    p = run_cli("status", "-c", str(cfg), env=cli_env(tmp_path, sim, version))
    assert p.returncode == 0, p.stderr
    rows = {}
    for ln in p.stdout.splitlines():
        for budget in ("all-24h", "notebook-24h"):
            if budget in ln:
                rows[budget] = ln
    assert set(rows) == {"all-24h", "notebook-24h"}, p.stdout
    for ln in rows.values():
        assert "$1.00" in ln  # the limit
        assert re.search(r"\$\d+\.\d\d", ln.replace("$1.00", "", 1)), ln  # the spend
    # percent column: the notebook spent $0.75-$1.75 of $1; the whole account far more
    cells = {b: [c.strip() for c in ln.split("│")] for b, ln in rows.items()}
    pct = {b: float(next(c for c in cs if re.fullmatch(r"\d+\.\d", c))) for b, cs in cells.items()}
    assert 50 <= pct["notebook-24h"] < 200
    assert pct["all-24h"] > 100
    assert rx.requests == []  # status sends nothing


def test_status_with_the_api_unusable_exits_1(tmp_path: Path, sim: Simulator, version: str) -> None:
    cfg = write_config(tmp_path / "c.yaml", {"hook": "http://127.0.0.1:9/hook"}, version=version)
    env = cli_env(tmp_path, sim, version, RUNPOD_API_KEY="rpa_not_the_right_key_at_all")
    p = run_cli("status", "-c", str(cfg), env=env)
    assert p.returncode == 1
    assert "billing API unusable" in p.stdout and "key is wrong" in p.stdout


# --------------------------------------------------------------------------- test-notify


def test_test_notify_reports_which_notifier_failed_and_why(tmp_path: Path, rx: Receiver) -> None:
    rx.respond("/bad", [], default=(500, "boom", {}))
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "good": rx.url + "/good",
            "bad": rx.url + "/bad",
            "gone": f"http://127.0.0.1:{free_port()}/gone",
        },
    )
    p = run_cli("test-notify", "-c", str(cfg), env=cli_env(tmp_path))
    assert p.returncode == 1
    lines = {ln.split(":", 1)[0]: ln for ln in p.stdout.splitlines() if ":" in ln}
    assert "delivered" in lines["good"] and "FAILED" not in lines["good"]
    assert "FAILED" in lines["bad"] and "500" in lines["bad"]
    assert "FAILED" in lines["gone"] and "connect" in lines["gone"].lower()
    good = rx.requests_to("/good")
    assert len(good) == 1 and good[0].json["kind"] == "test"


def test_test_notify_one_name(tmp_path: Path, rx: Receiver) -> None:
    rx.respond("/bad", [], default=(500, "boom", {}))
    cfg = write_config(tmp_path / "c.yaml", {"good": rx.url + "/good", "bad": rx.url + "/bad"})
    p = run_cli("test-notify", "-c", str(cfg), "good", env=cli_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert [r.path for r in rx.requests] == ["/good"]
    assert rx.requests[0].json["kind"] == "test"


def test_test_notify_unknown_name_lists_the_configured_ones(tmp_path: Path, rx: Receiver) -> None:
    cfg = write_config(tmp_path / "c.yaml", {"good": rx.url + "/good", "bad": rx.url + "/bad"})
    p = run_cli("test-notify", "-c", str(cfg), "nosuch", env=cli_env(tmp_path))
    assert p.returncode == 1
    out = p.stdout + p.stderr
    assert "nosuch" in out and "good" in out and "bad" in out
    assert rx.requests == []


# --------------------------------------------------------------------------- secrets, state


def test_secrets_never_appear_in_output(tmp_path: Path, sim: Simulator, rx: Receiver) -> None:
    hook_secret = "SIGNINGSECRET-cli-5e1f0c"
    path_secret = "PATHSECRET-cli-9a8b7c"
    wrong_key = "rpa_WRONGSECRET-cli-4d3c2b"
    hook_url = f"{rx.url}/hooks/{path_secret}"
    down_url = f"http://127.0.0.1:{free_port()}/hooks/{path_secret}-down"
    rx.respond(f"/hooks/{path_secret}-500", [], default=(500, "no", {}))
    secrets = [KEY, hook_secret, path_secret, wrong_key]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "version: 1\n"
        "notifiers:\n"
        "  hook:\n"
        "    type: webhook\n"
        "    url: ${WEBHOOK_URL}\n"
        "    secret: ${WEBHOOK_SECRET}\n"
        "  failing:\n"
        "    type: webhook\n"
        "    url: ${WEBHOOK_URL}-500\n"
        "  down:\n"
        "    type: webhook\n"
        "    url: ${DOWN_URL}\n"
        "defaults:\n"
        "  notify: [hook, failing, down]\n"
        "budgets:\n" + ALL_24H
    )
    bad = tmp_path / "bad.yaml"
    broken = cfg.read_text().replace("limit: 1", "limit: -1")
    bad.write_text(broken + "    bogus: ${WEBHOOK_SECRET}\n")
    env = cli_env(
        tmp_path, sim, WEBHOOK_URL=hook_url, WEBHOOK_SECRET=hook_secret, DOWN_URL=down_url
    )
    runs = [
        ("--log-level", "debug", "check", "-c", str(cfg)),
        ("--log-level", "debug", "status", "-c", str(cfg)),
        ("--log-level", "debug", "test-notify", "-c", str(cfg)),
        ("validate", "-c", str(cfg)),
        ("validate", "-c", str(bad)),
    ]
    outputs = []
    for args in runs:
        outputs.append(run_cli(*args, env=env))
    for args in [("check", "-c", str(cfg)), ("status", "-c", str(cfg))]:
        outputs.append(run_cli(*args, env={**env, "RUNPOD_API_KEY": wrong_key}))
    assert [p.returncode for p in outputs] == [0, 0, 1, 0, 2, 1, 1]
    assert rx.requests_to(f"/hooks/{path_secret}"), "the check really sent through the secret URL"
    for args, p in zip([*runs, "check-wrong-key", "status-wrong-key"], outputs, strict=True):
        for s in secrets:
            assert s not in p.stdout, (args, s)
            assert s not in p.stderr, (args, s)


def test_corrupt_state_database_is_refused_with_exit_3(
    tmp_path: Path, sim: Simulator, rx: Receiver
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    junk = os.urandom(8192)
    (state / "state.db").write_bytes(junk)
    cfg = write_config(tmp_path / "c.yaml", {"hook": rx.url + "/hook"})
    env = cli_env(tmp_path, sim)
    for command in ("check", "status"):
        p = run_cli(command, "-c", str(cfg), env=env)
        assert p.returncode == 3, (command, p.stdout, p.stderr)
        assert "state" in p.stderr and "state.db" in p.stderr, p.stderr
        assert re.search(r"corrupt|not a database|malformed", p.stderr, re.IGNORECASE), p.stderr
    assert (state / "state.db").read_bytes() == junk  # left alone for the user to inspect
    assert rx.requests == []
