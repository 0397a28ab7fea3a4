"""Scale: `runpod-budget check` on 1,000-4,000 pods and 50-800 budgets, beside a
naive script and the floor, on both RunPod API versions.

    .venv/bin/python -m bench.scale                    # v1 and v2, all points (~6 min)
    .venv/bin/python -m bench.scale --versions v2 --quick   # 2,000 pods / 200 budgets only

Per pod count the simulator serves a generated account (``generate: {kind:
month, pods: N, days: 31, seed: 3}``, rate limits off) in its own process. Per
point a fresh state directory: "cold" is the first `check` (fetches the month,
evaluates, delivers every alert to a webhook: one POST per alert to the
recording receiver in this process, counted), "steady" the next `check` a few
seconds later (min of ``--repeats``). Wall time of the subprocess; peak RSS is
the child's ``ru_maxrss`` (os.wait4).

Budgets: a fifth each of account-monthly with forecast, per-pod daily,
per-GPU-type weekly, rolling 24h and pod-name globs (daily). The naive script
(bench/naive_budget.py) re-fetches the month of hourly per-pod spend, loops
budgets x records and POSTs one webhook per alert; its "steady" time is its
run without the sends. The floor is json.loads of the same per-pod bytes plus
one pass of sums, timed inside the naive script.

Growth exponents are log-log least-squares slopes of steady and cold wall time
over pods (at 200 budgets) and over budgets (at 2,000 pods); ``quad`` is the
coefficient of (ln n)^2 in an exact fit through the three points (0 for a
pure power law; > 0 means the slope grows with n).

Results: printed, and written to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import http.server
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import table, write_results  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

KEY = "bench-key-scale"
PY = sys.executable
DAEMON = [PY, "-m", "daemon"]
HEADLINE = (2000, 200)
DAEMON_ROOT = ROOT  # where `python -m daemon` runs (its cwd comes first on sys.path)
# The recording receiver writes headers and body in two sends; with Nagle on,
# each answer then waits for a delayed ACK (~40 ms on loopback), which would
# measure the receiver, not the daemon. Real webhook servers set TCP_NODELAY.
http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = True


def budgets_yaml(n: int) -> list[dict[str, Any]]:
    """``n`` budgets, a fifth of each kind (the mix of the Scale issue)."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        k = i % 5
        if k == 0:
            out.append({"name": f"acct-month-{i}", "window": "month", "limit": 100000 + 1000 * i,
                        "forecast": True})
        elif k == 1:
            out.append({"name": f"pod-day-{i}", "window": "day", "per": "pod", "limit": 50 + i})
        elif k == 2:
            out.append({"name": f"gpu-week-{i}", "window": "week", "per": "gpu_type",
                        "limit": 5000 + 10 * i})
        elif k == 3:
            out.append({"name": f"roll-24h-{i}", "window": "24h", "limit": 20000 + 100 * i})
        else:
            glob = "month-04*" if i % 10 == 4 else "month-09*"
            out.append({"name": f"glob-{i}", "window": "day", "match": {"pod_name": glob},
                        "limit": 500 + i})
    return out


def config_text(budgets: int, version: str, hook: str) -> str:
    doc = {"version": 1, "poll_interval": "5m", "api": {"version": version},
           "http": {"enabled": False}, "notifiers": {"hook": {"type": "webhook", "url": hook}},
           "defaults": {"notify": ["hook"], "thresholds": [50, 80, 100]},
           "budgets": budgets_yaml(budgets)}
    return json.dumps(doc)  # JSON is YAML


class Sim:
    """The simulator in its own process, serving a generated account."""

    def __init__(self, pods: int, workdir: Path) -> None:
        scen = workdir / f"scen-{pods}.yaml"
        scen.write_text(f"generate: {{kind: month, pods: {pods}, days: 31, seed: 3}}\n"
                        "rate_limit: off\n", encoding="utf-8")
        self.proc = subprocess.Popen(
            [PY, "-m", "daemon.simulator", "--scenario", str(scen), "--port", "0",
             "--api-key", KEY], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.env: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("RUNPOD_API_BASE_URL="):
                self.v2 = line.split("=", 1)[1].strip()
            elif line.startswith("RUNPOD_GRAPHQL_URL="):
                self.graphql = line.split("=", 1)[1].strip()
            elif line.startswith("# api.version: v1"):
                self.v1 = line.rsplit("=", 1)[1].strip()
                break

    def env_for(self, version: str) -> dict[str, str]:
        return {"RUNPOD_API_KEY": KEY, "RUNPOD_GRAPHQL_URL": self.graphql,
                "RUNPOD_API_BASE_URL": self.v2 if version == "v2" else self.v1}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a measured process: ours plus ``extra``, with
    bytecode caching on. An installed daemon has its .pyc files; with
    PYTHONDONTWRITEBYTECODE set (as in some dev shells) every run would compile
    every module again (~0.5 s), which measures the shell, not the daemon."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """As :func:`run`, reaping the child with os.wait4 for its ru_maxrss."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=DAEMON_ROOT if cmd[1:3] == ["-m", "daemon"] else ROOT,
                             env=child_env(env), stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(), err.read().decode()
    if p.returncode not in (0, 1, 2, 3):
        raise RuntimeError(f"{cmd[-4:]} exited {p.returncode}: {etext[-2000:]}")
    return wall, usage.ru_maxrss / 1024, text


def point(sim: Sim, rx: Receiver, version: str, pods: int, budgets: int, repeats: int,
          naive: bool, workdir: Path) -> dict[str, Any]:
    cfg = workdir / f"cfg-{version}-{pods}-{budgets}.yaml"
    cfg.write_text(config_text(budgets, version, rx.url + "/hook"), encoding="utf-8")
    state = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))
    env = {**sim.env_for(version), "STATE_DIRECTORY": str(state)}
    cmd = [*DAEMON, "--log-level", "error", "check", "-c", str(cfg)]
    rx.clear()
    # cold start: the first check, then more until every alert is delivered
    # (one check delivers at most a batch of the outbox)
    cold, cold_rss, checks = 0.0, 0.0, 0
    while checks < 10:
        before = len(rx.requests_to("/hook"))
        w, r, _ = run_rss(cmd, env)
        cold, cold_rss, checks = cold + w, max(cold_rss, r), checks + 1
        if checks > 1 and len(rx.requests_to("/hook")) == before:
            break
    sent = len(rx.requests_to("/hook"))
    rx.clear()
    steady, steady_rss = math.inf, 0.0
    for _ in range(repeats):
        w, r, _ = run_rss(cmd, env)
        steady, steady_rss = min(steady, w), max(steady_rss, r)
    row: dict[str, Any] = {"version": version, "pods": pods, "budgets": budgets,
                           "cold_s": cold, "cold_checks": checks, "cold_rss_mb": cold_rss,
                           "alerts_sent": sent,
                           "steady_s": steady, "steady_rss_mb": steady_rss,
                           "steady_resent": len(rx.requests_to("/hook"))}
    if naive:
        rx.clear()
        w, r, out = run_rss([PY, "bench/naive_budget.py", str(cfg), "--send"], env)
        n = json.loads(out.strip().splitlines()[-1])
        row.update(naive_cold_s=w, naive_steady_s=w - n["send_s"], naive_rss_mb=r,
                   naive_alerts=n["alerts"], naive_sent=len(rx.requests_to("/hook")),
                   floor_s=n["floor_s"], month_bytes=n["bytes"], month_records=n["records"])
        rx.clear()
    return row


def exponents(rows: list[dict[str, Any]], key: str, fixed: str, value: int,
              metric: str) -> tuple[float, float] | None:
    pts = sorted((r[key], r[metric]) for r in rows if r[fixed] == value)
    if len(pts) < 2:
        return None
    xs = [math.log(x) for x, _ in pts]
    ys = [math.log(y) for _, y in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs)
    quad = 0.0
    if len(pts) == 3:  # exact quadratic through 3 points in log-log: second divided difference
        d1 = (ys[1] - ys[0]) / (xs[1] - xs[0])
        d2 = (ys[2] - ys[1]) / (xs[2] - xs[1])
        quad = (d2 - d1) / (xs[2] - xs[0])
    return slope, quad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", default="v1,v2")
    ap.add_argument("--quick", action="store_true", help="only 2,000 pods / 200 budgets")
    ap.add_argument("--pods", default="1000,2000,4000")
    ap.add_argument("--budgets", default="50,200,800")
    ap.add_argument("--repeats", type=int, default=2, help="steady runs per point (min)")
    ap.add_argument("--naive", choices=("headline", "all", "none"), default="headline")
    ap.add_argument("--results", default="scale")
    ap.add_argument("--daemon-root", type=Path, default=ROOT,
                    help="run the daemon from this tree (e.g. a `git archive` of an older "
                         "commit), for before/after figures")
    args = ap.parse_args(argv)
    global DAEMON_ROOT  # noqa: PLW0603  (set once, before any run)
    DAEMON_ROOT = args.daemon_root.resolve()
    pod_list = [HEADLINE[0]] if args.quick else [int(x) for x in args.pods.split(",")]
    bud_list = [HEADLINE[1]] if args.quick else [int(x) for x in args.budgets.split(",")]
    points = sorted({(p, HEADLINE[1]) for p in pod_list} | {(HEADLINE[0], b) for b in bud_list})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, Receiver() as rx:
        work = Path(tmp)
        for pods in sorted({p for p, _ in points}):
            sim = Sim(pods, work)
            try:
                for version in args.versions.split(","):
                    for p, b in points:
                        if p != pods:
                            continue
                        naive = args.naive == "all" or (args.naive == "headline"
                                                        and (p, b) == HEADLINE)
                        row = point(sim, rx, version, p, b, args.repeats, naive, work)
                        rows.append(row)
                        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                          for k, v in row.items()}), flush=True)
            finally:
                sim.stop()
    report(rows)
    write_results(args.results, {"rows": rows, "args": vars(args)})
    return 0


def report(rows: list[dict[str, Any]]) -> None:
    head = ["api", "pods", "budgets", "cold s", "checks", "cold MB", "alerts", "steady s",
            "steady MB", "naive s", "naive/steady", "cold/naive+send", "floor s"]
    body = []
    for r in rows:
        nv = r.get("naive_steady_s")
        body.append([r["version"], r["pods"], r["budgets"], f"{r['cold_s']:.2f}",
                     r["cold_checks"],
                     f"{r['cold_rss_mb']:.0f}", r["alerts_sent"], f"{r['steady_s']:.2f}",
                     f"{r['steady_rss_mb']:.0f}",
                     f"{r['naive_cold_s']:.1f}" if nv else "",
                     f"{nv / r['steady_s']:.1f}x" if nv else "",
                     f"{r['cold_s'] / r['naive_cold_s']:.2f}" if nv else "",
                     f"{r['floor_s']:.2f}" if nv else ""])
    print(table(head, body))
    for version in sorted({r["version"] for r in rows}):
        mine = [r for r in rows if r["version"] == version]
        for metric in ("steady_s", "cold_s"):
            for key, fixed, value in (("pods", "budgets", HEADLINE[1]),
                                      ("budgets", "pods", HEADLINE[0])):
                e = exponents(mine, key, fixed, value, metric)
                if e:
                    print(f"{version} {metric} exponent in {key}: {e[0]:.2f} (quad {e[1]:+.2f})")


if __name__ == "__main__":
    sys.exit(main())
