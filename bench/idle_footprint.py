"""Idle RSS and CPU of ``runpod-budget run`` between polls.

    .venv/bin/python -m bench.idle_footprint                # 600 s, as the issue asks
    .venv/bin/python -m bench.idle_footprint --seconds 60   # quick look

The RunPod simulator runs in its own process (``python -m daemon.simulator
--scenario demo``) so its CPU is not counted; the webhook receiver runs in this
process. The daemon runs with a default-ish config (poll_interval 5m, four
budgets, a webhook notifier, the HTTP endpoint on 127.0.0.1:0). After its
first ``cycle.done`` log line, /proc/PID/status (VmRSS, VmHWM, Threads) and
/proc/PID/stat (utime + stime) are sampled every second for ``--seconds``.

CPU is reported twice: over the whole period (polls included: with 5m polls a
600 s period holds about two), and "idle" over the one-second samples that are
not within [-3 s, +1 s] of a ``cycle.done`` line (the outbox job every 15 s,
the scheduler and the signal-wait loop stay in). Goals: RSS <= 60 MB, idle
CPU <= 0.1 % of one core.

``--analyze`` (automatic when RSS is over the goal, off with
``--no-analyze``) adds where the memory goes: RSS of fresh interpreters
after importing each dependency alone and after all the others, the daemon's
own modules, ``daemon.app.service`` with ``rich`` made unimportable, and the
slowest imports per ``-X importtime``. Experiments: ``--env KEY=VALUE`` for
the daemon's environment, ``--block MODULE`` runs the same CLI with that
import made to fail, ``--results NAME`` writes bench/results/NAME.json.

Results: printed, and written to bench/results/idle_footprint.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    LogTail,
    child_env,
    daemon_command,
    free_port,
    stop_process,
    table,
    write_results,
)
from tests.support.receiver import Receiver  # noqa: E402

RSS_GOAL_MB = 60.0
CPU_GOAL_PCT = 0.1
TICK = os.sysconf("SC_CLK_TCK")

CONFIG = """\
version: 1
timezone: UTC
poll_interval: 5m
http:
  listen: 127.0.0.1:0
notifiers:
  hook:
    type: webhook
    url: {hook}
defaults:
  notify: [hook]
  thresholds: [80, 100]
budgets:
  - name: team-monthly
    window: month
    limit: 5000
    thresholds: [50, 80, 100]
    forecast: true
  - name: h100-daily
    match: {{gpu_type: ["NVIDIA H100 80GB HBM3"]}}
    window: day
    limit: 400
  - name: pod-daily
    per: pod
    window: day
    limit: 100
  - name: account-24h
    window: 24h
    limit: 1000
"""


def read_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(val.split()[0])
    return out


def read_cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime per thread (task id); the main thread's id is the pid."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = int(fields[11]) + int(fields[12])
    return out


def start_simulator(key: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "daemon.simulator", "--port", str(port), "--scenario", "demo",
         "--api-key", key],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=child_env(),
    )
    assert sim.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = sim.stdout.readline().decode()
        if line.startswith("RUNPOD_API_BASE_URL="):
            url = line.split("=", 1)[1].strip()
            # keep draining so the simulator can never block on a full pipe
            LogTail(sim.stdout)
            return sim, url
        if not line and sim.poll() is not None:
            break
    stop_process(sim)
    raise RuntimeError("simulator did not start")


def measure(
    seconds: float, extra_env: dict[str, str] | None = None, block: list[str] | None = None
) -> dict[str, Any]:
    key = "bench-" + secrets.token_hex(8)
    sim, base_url = start_simulator(key)
    try:
        with Receiver() as rx, tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
            cfg = Path(tmp) / "budgets.yaml"
            cfg.write_text(CONFIG.format(hook=rx.url + "/hook"), encoding="utf-8")
            cmd = daemon_command(cfg)
            if block:  # experiment: the same CLI with these imports made to fail
                cmd = [sys.executable, "-c",
                       f"import sys\nfor m in {block!r}: sys.modules[m] = None\n"
                       "from daemon.app.cli import main\nsys.exit(main(sys.argv[1:]))",
                       *cmd[1:]]
            env = child_env(RUNPOD_API_KEY=key, RUNPOD_API_BASE_URL=base_url,
                            STATE_DIRECTORY=tmp, **(extra_env or {}))
            t_launch = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    cwd=tmp, env=env)
            assert proc.stderr is not None
            log = LogTail(proc.stderr)
            try:
                first = log.wait_event("cycle.done", 1, timeout=60)[0]
                t_first = first[0] - t_launch
                samples: list[tuple[float, int, dict[str, int]]] = []
                threads_start = thread_ticks(proc.pid)
                t0 = time.monotonic()
                next_at = t0
                while True:
                    now = time.monotonic()
                    samples.append((now, read_cpu_ticks(proc.pid), read_status(proc.pid)))
                    if now - t0 >= seconds:
                        threads_end = thread_ticks(proc.pid)
                        break
                    next_at += 1.0
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    if proc.poll() is not None:
                        raise RuntimeError(f"daemon exited early with {proc.returncode}")
            finally:
                rc = stop_process(proc)
                log.join()
            cycles = log.events("cycle.done")
            webhooks = len(rx.requests_to("/hook"))
    finally:
        stop_process(sim)

    done_times = [m for m, _, _ in cycles]
    polls_in_period = [m for m in done_times if samples[0][0] < m <= samples[-1][0]]
    wall = samples[-1][0] - samples[0][0]
    cpu_total = (samples[-1][1] - samples[0][1]) / TICK
    idle_wall = idle_cpu = 0.0
    busy_cpu = 0.0
    for (ta, ca, _), (tb, cb, _) in itertools.pairwise(samples):
        near_poll = any(ta - 1.0 <= m <= tb + 3.0 for m in done_times)
        if near_poll:
            busy_cpu += (cb - ca) / TICK
        else:
            idle_wall += tb - ta
            idle_cpu += (cb - ca) / TICK
    rss = [s[2]["VmRSS"] / 1024 for s in samples]
    # Python does not name OS threads: label them main, then t1, t2... in creation order
    per_thread = {
        ("main" if tid == proc.pid else f"t{i}"): round((t - threads_start.get(tid, 0)) / TICK, 3)
        for i, (tid, t) in enumerate(sorted(threads_end.items()))
    }
    return {
        "command": cmd,
        "extra_env": extra_env or {},
        "blocked_imports": block or [],
        "seconds": round(wall, 1),
        "first_cycle_after_launch_s": round(t_first, 2),
        "rss_start_mb": round(rss[0], 1),
        "rss_end_mb": round(rss[-1], 1),
        "rss_max_mb": round(max(rss), 1),
        "vmhwm_end_mb": round(samples[-1][2]["VmHWM"] / 1024, 1),
        "threads_end": samples[-1][2]["Threads"],
        "cpu_seconds_total": round(cpu_total, 3),
        "cpu_pct_total": round(100 * cpu_total / wall, 4) if wall else None,
        "polls_in_period": len(polls_in_period),
        "cpu_seconds_near_polls": round(busy_cpu, 3),
        "idle_wall_s": round(idle_wall, 1),
        "cpu_seconds_idle": round(idle_cpu, 3),
        "cpu_pct_idle": round(100 * idle_cpu / idle_wall, 4) if idle_wall else None,
        "cpu_tick_s": 1 / TICK,
        "cpu_seconds_per_thread": per_thread,
        "webhooks_received": webhooks,
        "exit_code": rc,
        "rss_series_mb": [round(r, 1) for r in rss[:: max(1, len(rss) // 60)]],
    }


# third-party imports of ``runpod-budget run`` (psycopg is not imported for SQLite)
DEPS: dict[str, list[str]] = {
    "structlog (+rich, pygments, asyncio)": ["structlog"],
    "pydantic": ["pydantic"],
    "httpx": ["httpx"],
    "stamina (+tenacity)": ["stamina"],
    "sqlalchemy (+sqlite, postgresql dialects)": [
        "sqlalchemy", "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql"],
    "apscheduler (BackgroundScheduler)": ["apscheduler.schedulers.background"],
    "slack_sdk": ["slack_sdk", "slack_sdk.webhook"],
    "ruamel.yaml": ["ruamel.yaml"],
    "prometheus_client": ["prometheus_client"],
    "standardwebhooks": ["standardwebhooks"],
}

_PROBE = (
    "import importlib, sys\n"
    "def rss():\n"
    "    for l in open('/proc/self/status'):\n"
    "        if l.startswith('VmRSS:'): return int(l.split()[1])\n"
    "bare = rss()\n"
    "for m in sys.argv[3].split(','):\n"
    "    if m: sys.modules[m] = None\n"
    "for m in sys.argv[1].split(','):\n"
    "    if m: importlib.import_module(m)\n"
    "base, n = rss(), len(sys.modules)\n"
    "for m in sys.argv[2].split(','):\n"
    "    if m: importlib.import_module(m)\n"
    "print(bare, base, rss(), len(sys.modules) - n)\n"
)


def _probe(pre: list[str], mods: list[str], block: list[str] | None = None) -> tuple[int, ...]:
    """(bare RSS, RSS after ``pre``, RSS after ``mods``, new modules) in kB, fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(pre), ",".join(mods), ",".join(block or [])],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    )
    return tuple(int(x) for x in out.stdout.split())


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def analyze() -> dict[str, Any]:
    """Where the memory goes: per dependency alone and imported last, the
    daemon's own modules, a rich-less variant, and the slowest imports."""
    every = [m for mods in DEPS.values() for m in mods]
    bare, _, full, nfull = _probe([], ["daemon.app.service"])
    deps = []
    for label, mods in DEPS.items():
        _, b0, a0, n0 = _probe([], mods)
        others = [m for m in every if m not in mods]
        _, b1, a1, n1 = _probe(others, mods)
        deps.append({"dependency": label, "alone_mb": _mb(a0 - b0), "alone_modules": n0,
                     "last_mb": _mb(a1 - b1), "last_modules": n1})
    _, b, a, n = _probe(every, ["daemon.app.service"])
    own = {"mb": _mb(a - b), "modules": n}
    _, _, norich, nnorich = _probe([], ["daemon.app.service"], block=["rich"])
    it = subprocess.run([sys.executable, "-X", "importtime", "-c", "import daemon.app.service"],
                        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    parsed = []
    for line in it.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            parsed.append((int(m.group(2)), m.group(4)))
    top = sorted(((us, name) for us, name in parsed
                  if "." not in name and not name.startswith(("daemon", "_"))), reverse=True)[:12]
    own_mods = sorted(((us, name) for us, name in parsed if name.startswith("daemon.")),
                      reverse=True)[:8]
    total_us = max((us for us, name in parsed if name == "daemon.app.service"), default=0)
    return {
        "bare_interpreter_mb": _mb(bare),
        "import_service_mb": _mb(full),
        "import_service_modules": nfull,
        "dependencies": deps,
        "daemon_own_modules_after_all_deps": own,
        "import_service_without_rich_mb": _mb(norich),
        "import_service_without_rich_modules": nnorich,
        "importtime_total_ms": round(total_us / 1000, 1),
        "importtime_top_packages_ms": [(name, round(us / 1000, 1)) for us, name in top],
        "importtime_top_daemon_modules_ms": [(name, round(us / 1000, 1)) for us, name in own_mods],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="idle period (default 600)")
    ap.add_argument("--analyze", action="store_true", help="always add the memory analysis")
    ap.add_argument("--no-analyze", action="store_true", help="never add the memory analysis")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the daemon (experiments, e.g. MALLOC_ARENA_MAX=2)")
    ap.add_argument("--block", action="append", default=[], metavar="MODULE",
                    help="experiment: run the CLI with this import made to fail (e.g. rich)")
    ap.add_argument("--results", default="idle_footprint",
                    help="name of the JSON file under bench/results (default idle_footprint)")
    args = ap.parse_args(argv)
    extra_env = dict(kv.split("=", 1) for kv in args.env)

    print(f"idle footprint of runpod-budget run over {args.seconds:.0f} s ...", flush=True)
    r = measure(args.seconds, extra_env, args.block)
    print("CPU s per thread over the period: "
          + ", ".join(f"{k} {v}" for k, v in r["cpu_seconds_per_thread"].items()))
    print(table(
        ["metric", "value", "goal"],
        [
            ["RSS at start (MB)", r["rss_start_mb"], f"<= {RSS_GOAL_MB:g}"],
            ["RSS at end (MB)", r["rss_end_mb"], f"<= {RSS_GOAL_MB:g}"],
            ["RSS max (MB)", r["rss_max_mb"], f"<= {RSS_GOAL_MB:g}"],
            ["VmHWM at end (MB)", r["vmhwm_end_mb"], ""],
            ["threads", r["threads_end"], ""],
            ["polls in period", r["polls_in_period"], ""],
            ["CPU % of a core, whole period", r["cpu_pct_total"], ""],
            ["CPU s near polls", r["cpu_seconds_near_polls"], ""],
            [f"CPU % of a core, idle ({r['idle_wall_s']:.0f} s)", r["cpu_pct_idle"],
             f"<= {CPU_GOAL_PCT:g}"],
            ["exit code after SIGTERM", r["exit_code"], "0"],
        ],
    ))
    r["goals"] = {
        "rss_mb": RSS_GOAL_MB,
        "idle_cpu_pct": CPU_GOAL_PCT,
        "rss_ok": r["rss_max_mb"] <= RSS_GOAL_MB,
        "idle_cpu_ok": r["cpu_pct_idle"] is not None and r["cpu_pct_idle"] <= CPU_GOAL_PCT,
    }
    if not args.no_analyze and (args.analyze or not r["goals"]["rss_ok"]):
        print("\nwhere the memory goes (RSS of fresh interpreters):", flush=True)
        a = analyze()
        print(f"bare interpreter {a['bare_interpreter_mb']} MB; after import daemon.app.service "
              f"{a['import_service_mb']} MB ({a['import_service_modules']} modules); "
              f"the same with rich blocked {a['import_service_without_rich_mb']} MB")
        print(table(["dependency", "+MB alone", "+MB imported last", "modules last"],
                    [[d["dependency"], d["alone_mb"], d["last_mb"], d["last_modules"]]
                     for d in a["dependencies"]]))
        own = a["daemon_own_modules_after_all_deps"]
        print(f"daemon's own modules after all dependencies: +{own['mb']} MB, "
              f"{own['modules']} modules")
        print(f"\nimport daemon.app.service: {a['importtime_total_ms']} ms; "
              "slowest top-level packages (cumulative ms):")
        print(table(["package", "ms"], a["importtime_top_packages_ms"]))
        r["analysis"] = a
    path = write_results(args.results, r)
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0 if r["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
