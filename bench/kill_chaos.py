"""Kill -9 the daemon at random moments while it enforces; count what was lost.

    .venv/bin/python -m bench.kill_chaos --kills 50            # ~3-6 min
    .venv/bin/python -m bench.kill_chaos --kills 10 --fail-rate 0 --results kill_chaos_quick

The RunPod simulator (real clock) and a recording webhook receiver
(tests.support.flaky_receiver, answering ``--fail-rate`` of the POSTs 503) run
in this process. The scenario: ``--pods`` fast pods ($3600/h, half H100, half
A100) that this script starts at random moments during the chaos, two locked
pods burning $1800/h from the start, and idle pods (GPU 0 %) also started
during the chaos. Config (api v2, poll 1s, webhook timeout 2 s, SQLite state):
a per-pod hourly budget that stops ``burn-*`` pods at 100 % of $2, an
aggregate A100 hourly budget that stops A100 pods at 100 % of $10, a monthly
alert-only budget, and an idle guard that stops ``idle-*`` pods. About one in
three pods the daemon stopped is started again by "a person" (no budget
instance may stop a pod twice).

Chaos: start ``runpod-budget run``, wait a random 0.2-4 s, SIGKILL, snapshot
the outbox, repeat ``--kills`` times; then one last run until the outbox is
empty and no stop intent is open, then SIGTERM (exit code must be 0).

Checks (printed, written to bench/results/kill_chaos.json):
* lost alerts: ledger ids never answered 2xx by the receiver;
* duplicates: ids answered 2xx more than once; "unexplained" ones had no kill
  between the two sends while the row was still pending;
* unannounced stops: a successful stop call (simulator request log) whose
  budget instance (the store's intent rows) has no ``stopped`` or
  ``refused:unknown_after_crash`` enforcement alert received 2xx;
* double stops: two successful stop calls of one pod in one budget instance;
* notifier wait after a crash: per kill with alerts pending, the time from the
  restart to the first POST of one of them, and the part of that wait beyond
  what the outbox promised at the kill (lease expiry / backoff of the head row).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench._common import child_env, daemon_command, stop_process, table, write_results  # noqa: E402
from daemon.adapters.store import make_engine, mask_url, open_store, outbox_t  # noqa: E402
from daemon.simulator import Simulator  # noqa: E402
from tests.support.chaos_checks import Kill, check_stops, duplicates, notifier_waits  # noqa: E402
from tests.support.flaky_receiver import FlakyReceiver, Hit  # noqa: E402

KEY = "bench-key-kill-chaos"
ACCOUNT = "default"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GPU = {"h100": "NVIDIA H100 80GB HBM3", "a100": "NVIDIA A100 80GB PCIe"}


def scenario(n_fast: int, n_idle: int) -> dict[str, Any]:
    fast = [
        {"id": f"burn{i:02d}{'a' if i % 2 else 'h'}", "name": f"burn-{i:02d}",
         "gpu_type": GPU["a100" if i % 2 else "h100"], "cost_per_hr": 3600.0,
         "running": [], "util": 95}
        for i in range(n_fast)
    ]
    locked = [
        {"id": f"lock{i}", "name": f"burn-locked-{i}", "gpu_type": GPU[g],
         "cost_per_hr": 1800.0, "running": [["now", None]], "locked": True, "util": 80}
        for i, g in enumerate(("h100", "a100"))
    ]
    idle = [
        {"id": f"idle{i:02d}", "name": f"idle-{i:02d}", "gpu_type": GPU["h100"],
         "cost_per_hr": 2.0, "running": [], "util": 0}
        for i in range(n_idle)
    ]
    return {"pods": fast + locked + idle, "rate_limit": "off"}


def config_text(hook: str, state: str) -> str:
    return f"""version: 1
timezone: UTC
state: "{state}"
poll_interval: 1s
http: {{listen: "127.0.0.1:0"}}
notifiers:
  hook: {{type: webhook, url: "{hook}", timeout: 2}}
defaults:
  notify: [hook]
enforcement: {{max_stops_per_cycle: 100}}
budgets:
  - name: burn-per-pod
    per: pod
    match: {{pod_name: "burn-*"}}
    window: hour
    limit: 2
    thresholds: [50, 100]
    enforce: {{at: 100, dry_run: false}}
  - name: a100-hour
    match: {{gpu_type: ["{GPU['a100']}"]}}
    window: hour
    limit: 10
    thresholds: [50, 100]
    enforce: {{at: 100, dry_run: false}}
  - name: team-month
    window: month
    limit: 100
    thresholds: [25, 50, 100]
guards:
  - name: idle-stop
    idle: {{gpu_util_below: 5, for: 2s}}
    match: {{pod_name: "idle-*"}}
    stop: {{dry_run: false}}
"""


@dataclass
class Chaos:
    sim: Simulator
    rx: FlakyReceiver
    tmp: Path
    rng: random.Random
    schedule: list[tuple[float, str]]  # (monotonic time, pod id) to start
    state_url: str
    restart_p: float = 0.35
    kills: list[Kill] = field(default_factory=list)
    started_pods: dict[str, float] = field(default_factory=dict)
    restarted_pods: set[str] = field(default_factory=set)
    stopped_seen: dict[str, float] = field(default_factory=dict)


    def spawn(self) -> subprocess.Popen[bytes]:
        cfg = self.tmp / "budgets.yaml"
        env = child_env(RUNPOD_API_KEY=KEY, RUNPOD_API_BASE_URL=self.sim.base_url_for("v2"),
                        RUNPOD_GRAPHQL_URL=self.sim.graphql_url, STATE_DIRECTORY=str(self.tmp))
        with open(self.tmp / "daemon.log", "ab") as log:
            return subprocess.Popen(daemon_command(cfg), stdout=subprocess.DEVNULL,
                                    stderr=log, cwd=self.tmp, env=env)

    def tick(self) -> None:
        """Start the pods whose time has come; restart some the daemon stopped."""
        now = time.monotonic()
        while self.schedule and self.schedule[0][0] <= now:
            _, pid = self.schedule.pop(0)
            self.sim.start_pod(pid)
            self.started_pods[pid] = now
        for pid in self.started_pods:
            if self.sim.pod(pid).is_running or pid in self.restarted_pods:
                continue
            seen = self.stopped_seen.setdefault(pid, now)
            if now - seen >= 3.0:
                # decided once per pod: "a person" starts it again, or leaves it
                self.restarted_pods.add(pid)
                if self.rng.random() < self.restart_p:
                    self.sim.start_pod(pid)

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.tick()
            time.sleep(min(0.05, left))

    def snapshot(self) -> tuple[list[str], float | None]:
        """Alert ids pending in the outbox, and when its head row may go again."""
        engine = make_engine(self.state_url)
        o = outbox_t
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(o.c.alert_id, o.c.lease_until, o.c.next_attempt_at,
                              o.c.retry_after_at).where(o.c.status == "pending")
                    .order_by(o.c.seq)).all()
        except sa.exc.OperationalError:  # not created yet: killed before the first open
            return [], None
        finally:
            engine.dispose()
        if not rows:
            return [], None
        head = rows[0]
        due = [t.timestamp() for t in (head.lease_until, head.next_attempt_at,
                                       head.retry_after_at) if t is not None]
        return [r.alert_id for r in rows], max(due) if due else None

    def run_kills(self, n: int, gap: tuple[float, float]) -> None:
        for k in range(n):
            started = time.time()
            if self.kills:
                self.kills[-1].restarted = started
            proc = self.spawn()
            self.sleep(self.rng.uniform(*gap))
            proc.kill()  # SIGKILL, this one process only
            proc.wait(10)
            killed = time.time()
            pending, due = self.snapshot()
            self.kills.append(Kill(k + 1, started, killed, pending, due))
            print(f"  kill {k + 1:3d} after {killed - started:4.2f} s: "
                  f"{len(pending)} pending, {len(self.rx.hits())} POSTs so far", flush=True)

    def drain(self, timeout: float) -> tuple[int, float]:
        """The last run: until nothing is pending nor open and the receiver is quiet.
        Returns (exit code after SIGTERM, seconds it ran)."""
        t0 = time.time()
        if self.kills:
            self.kills[-1].restarted = t0
        proc = self.spawn()
        store = open_store(self.state_url)
        try:
            while time.time() - t0 < timeout:
                self.sleep(1.0)
                hits = self.rx.hits()
                quiet = not hits or time.time() - hits[-1].wall > 4.0
                if (time.time() - t0 > 8 and quiet and store.pending_count() == 0
                        and not store.open_intents()):
                    break
        finally:
            rc = stop_process(proc)
            store.close()
        return rc, time.time() - t0


def analyse(ch: Chaos, since: datetime) -> dict[str, Any]:
    store = open_store(ch.state_url)
    try:
        ledger = store.ledger(ACCOUNT, since)
        audit = [r for r in store.audit(limit=100_000) if r["event"] == "stop"]
        states = store.delivery_states()
    finally:
        store.close()
    hits = ch.rx.hits()
    ok: dict[str, list[Hit]] = {}
    for h in hits:
        if h.ok and h.alert_id:
            ok.setdefault(h.alert_id, []).append(h)
    lost = [e.id for e in ledger if e.id not in ok]
    dup = duplicates(ok, ch.kills)
    stops = check_stops(ch.sim, audit, set(ok))
    waits = notifier_waits(ch.kills, hits)
    kinds: dict[str, int] = {}
    for e in ledger:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return {
        "ledger_alerts": len(ledger), "ledger_by_kind": kinds,
        "posts": len(hits), "posts_503": sum(1 for h in hits if h.status == 503),
        "lost_alerts": lost, "duplicates": dup, "stops": stops, "waits": waits,
        "delivery_states": [dataclasses.asdict(s) for s in states],
    }


def log_errors(path: Path) -> dict[str, int]:
    """Error-level events (and tracebacks) across every run's log."""
    out: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            if line.startswith("Traceback"):
                out["traceback"] = out.get("traceback", 0) + 1
            continue
        if isinstance(doc, dict) and doc.get("level") in ("error", "critical"):
            name = str(doc.get("event"))
            out[name] = out.get(name, 0) + 1
    return out


def fresh_state(kind: str, tmp: Path) -> str:
    """A state URL: SQLite in ``tmp``, or a new schema in the local PostgreSQL
    (created here, left for inspection; the name is printed)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp}/state.db"
    schema = f"kill_chaos_{secrets.token_hex(4)}"
    open_store(PG_URL, schema=schema).close()
    print(f"  state: PostgreSQL schema {schema}", flush=True)
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    since = datetime.now(UTC) - timedelta(minutes=1)
    chaos_s = args.kills * (sum(args.gap) / 2 + 0.1)
    sc = scenario(args.pods, args.idle)
    to_start = [p["id"] for p in sc["pods"] if not p["running"]]
    t0 = time.monotonic() + 2.0
    schedule = sorted((t0 + rng.uniform(0, chaos_s * 0.8), pid) for pid in to_start)
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmpdir, \
            Simulator(sc, api_key=KEY) as sim, \
            FlakyReceiver(fail_rate=args.fail_rate, seed=args.seed) as rx:
        tmp = Path(tmpdir)
        url = fresh_state(args.state, tmp)
        (tmp / "budgets.yaml").write_text(config_text(rx.url + "/hook", url), encoding="utf-8")
        if args.stop_delay:
            # widen the window between the intent row and the stop's result, so
            # kills land inside it (the stop still takes effect after the delay)
            sim.fail("/v2/pods/", "delay", delay=args.stop_delay, times=10**6, method="POST")
        ch = Chaos(sim, rx, tmp, rng, schedule, url)
        started = time.time()
        ch.run_kills(args.kills, tuple(args.gap))
        chaos_wall = time.time() - started
        for _, pid in ch.schedule:  # never reached (a short run): start them now
            sim.start_pod(pid)
        ch.schedule.clear()
        print("  final run: until the outbox drains ...", flush=True)
        rc, drain_s = ch.drain(args.drain_timeout)
        out = analyse(ch, since)
        out.update({"exit_code": rc, "chaos_s": round(chaos_wall, 1),
                    "drain_s": round(drain_s, 1), "log_errors": log_errors(tmp / "daemon.log"),
                    "pods_started": len(ch.started_pods),
                    "pods_restarted_by_person": sorted(
                        p for p in ch.restarted_pods if sim.pod(p).running and
                        len(sim.pod(p).running) > 1),
                    "kills": [vars(k) for k in ch.kills], "state": args.state,
                    "hits": [[round(h.wall, 3), h.alert_id, h.status] for h in rx.hits()],
                    "config": config_text("HOOK", mask_url(url))})
    return out


def summary_rows(r: dict[str, Any]) -> list[list[Any]]:
    s, w, d = r["stops"], r["waits"], r["duplicates"]
    return [
        ["kills (SIGKILL)", len(r["kills"])],
        ["alerts in the ledger", r["ledger_alerts"]],
        ["webhook POSTs (503 answers)", f"{r['posts']} ({r['posts_503']})"],
        ["lost alerts", len(r["lost_alerts"])],
        ["duplicate deliveries (ids / extra sends)", f"{d['ids']} / {d['extra_sends']}"],
        ["  of which unexplained by a kill", len(d["unexplained"])],
        ["successful stop calls (pods)", f"{s['stop_calls']} ({s['pods_stopped']})"],
        ["unannounced stops", len(s["unannounced"])],
        ["double stops (same instance)", len(s["double"])],
        ["stops without an intent row", len(s["without_intent"])],
        ["intents settled unknown, no stop reached RunPod", len(s["unknown_without_call"])],
        ["kills with alerts pending", w["kills_with_pending"]],
        ["notifier wait, restart -> first POST, max / median s",
         f"{w['to_post']['max']} / {w['to_post']['median']}"],
        ["notifier wait, restart -> first 2xx, max / median s",
         f"{w['to_delivery']['max']} / {w['to_delivery']['median']}"],
        ["  first POST beyond lease/backoff, max s", w["beyond_promise"]["max"]],
        ["pending alerts never resent", w["never_resumed"]],
        ["final run: drain s, exit code", f"{r['drain_s']}, {r['exit_code']}"],
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=50, help="SIGKILLs (default 50)")
    ap.add_argument("--gap", type=float, nargs=2, default=[0.2, 4.0], metavar=("MIN", "MAX"),
                    help="seconds a run lives before its kill (default 0.2 4)")
    ap.add_argument("--pods", type=int, default=24, help="fast pods started during the chaos")
    ap.add_argument("--idle", type=int, default=4, help="idle pods started during the chaos")
    ap.add_argument("--fail-rate", type=float, default=0.2, help="share of POSTs answered 503")
    ap.add_argument("--stop-delay", type=float, default=0.0,
                    help="seconds the simulator holds each stop call before doing it")
    ap.add_argument("--drain-timeout", type=float, default=600.0, help="final run at most (s)")
    ap.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite",
                    help="state store: SQLite file, or a fresh schema in " + PG_URL)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", default="kill_chaos", help="bench/results/NAME.json")
    args = ap.parse_args(argv)
    print(f"kill_chaos: {args.kills} kills, gap {args.gap[0]}-{args.gap[1]} s, "
          f"fail rate {args.fail_rate:.0%}, stop delay {args.stop_delay} s, "
          f"state {args.state}", flush=True)
    r = run(args)
    print()
    print(table(["", "value"], summary_rows(r)))
    if r["log_errors"]:
        print(f"\nerror-level log events: {r['log_errors']}")
    path = write_results(args.results, {"argv": sys.argv[1:], "seed": args.seed, **r})
    print(f"\nwritten {path.relative_to(ROOT)}")
    bad = (r["lost_alerts"] or r["stops"]["unannounced"] or r["stops"]["double"]
           or r["duplicates"]["unexplained"] or r["exit_code"] != 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
