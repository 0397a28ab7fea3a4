"""Time to drain the outbox: main's store (one row per claim, a correlated NOT
EXISTS per candidate row) against this branch's (batches from the head of each
notifier's queue), on SQLite and PostgreSQL.

n alerts to three notifiers (3n rows), every send succeeds at once (a null
notifier), so the figures are the store's cost only. "before" loads main's
``daemon/adapters/store.py`` from git (read-only ``git show``) and drains it as
main's ``deliver_due`` did: ``claim_due(limit=1)`` then ``mark_delivered``;
"after" runs this branch's ``deliver_due``. A size whose "before" run exceeds
``--cap`` seconds is not run at larger sizes.

    .venv/bin/python -m bench.outbox_claim [--sizes 100,1000,5000] [--cap 300] [--points]

``--points`` also times the spend-point bulk path: 150,000 points of one
series written by ``replace_points`` and read back by ``points``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import structlog

from bench._common import ROOT, write_results
from daemon.adapters.store import open_store
from daemon.core.model import Alert
from daemon.pipeline.outbox import deliver_due

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 11, 24, tzinfo=UTC)
NOTIFIERS = ("ops", "hook", "finance")


class Null:
    def __init__(self, name: str) -> None:
        self.name = name
        self.send_timeout = 5.0

    def send(self, alert: Alert) -> None:
        return None


def main_store_module() -> ModuleType:
    src = subprocess.run(["git", "show", "main:daemon/adapters/store.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "main_store.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("main_store", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["main_store"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def alerts(n: int) -> list[Alert]:
    return [Alert(f"a{i:06d}", "threshold", NOTIFIERS,
                  {"id": f"a{i:06d}", "kind": "threshold", "account": "x", "budget": "b",
                   "threshold_percent": 80}) for i in range(n)]


def drain_before(store: Any, cap: float) -> int:
    """Main's drain; stops after ``cap`` seconds. Returns the rows delivered."""
    deadline, done = time.perf_counter() + cap, 0
    while time.perf_counter() < deadline and (items := store.claim_due(T0, 600, limit=1)):
        store.mark_delivered(items[0].seq, T0)
        done += 1
    return done


def drain_after(store: Any) -> None:
    notifiers = {n: Null(n) for n in NOTIFIERS}
    while store.pending_count():
        deliver_due(store, notifiers, lambda: T0)  # type: ignore[arg-type]


def run(kind: str, backend: str, n: int, old: ModuleType, cap: float) -> tuple[float, int]:
    """Seconds to drain (or ``cap``) and the rows drained in that time."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/state.db"
    else:
        url, schema = PG_URL, f"rpb_bench_{uuid.uuid4().hex[:12]}"
    opener = old.open_store if kind == "before" else open_store
    store = opener(url, schema=schema)
    try:
        store.enqueue(alerts(n), T0)
        start = time.perf_counter()
        if kind == "before":
            done = drain_before(store, cap)
        else:
            drain_after(store)
            done = 3 * n
        took = time.perf_counter() - start
        assert done < 3 * n or store.pending_count() == 0
        return took, done
    finally:
        store.close()
        if schema:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def time_points(backend: str) -> tuple[float, float]:
    """Seconds to write and to read 150,000 points (1,500 hours x 100 pods)."""
    from datetime import timedelta

    from daemon.core.model import SeriesKey, SpendPoint

    hour = timedelta(hours=1)
    pts = [SpendPoint(T0 + h * hour, f"pod-{r:03d}", r / 100) for h in range(1500)
           for r in range(100)]
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/state.db"
    else:
        url, schema = PG_URL, f"rpb_bench_{uuid.uuid4().hex[:12]}"
    store = open_store(url, schema=schema)
    key = SeriesKey("bench", "pods")
    try:
        start = time.perf_counter()
        store.replace_points(key, T0, T0 + 1500 * hour, 1, pts)
        wrote = time.perf_counter() - start
        start = time.perf_counter()
        back = store.points(key, T0, T0 + 1500 * hour)
        read = time.perf_counter() - start
        assert len(back) == len(pts)
        return wrote, read
    finally:
        store.close()
        if schema:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--cap", type=float, default=300.0)
    ap.add_argument("--points", action="store_true")
    ap.add_argument("--no-before", action="store_true", help="only this branch's store")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures: dict[str, Any] = {"drain": [], "points": []}
    if args.points:
        print(f"{'backend':8} {'points':>7} {'write s':>8} {'read s':>7}")
        for backend in ("sqlite", "postgres"):
            wrote, read = time_points(backend)
            print(f"{backend:8} {150_000:>7} {wrote:>8.2f} {read:>7.2f}", flush=True)
            figures["points"].append(
                {"backend": backend, "points": 150_000, "write_s": wrote, "read_s": read})
    old = main_store_module()
    print(f"{'backend':8} {'alerts':>6} {'rows':>6} {'before s':>18} {'after s':>8}")
    for backend in ("sqlite", "postgres"):
        slow = False
        for n in (int(x) for x in args.sizes.split(",")):
            skip = slow or args.no_before
            before, done = (0.0, 0) if skip else run("before", backend, n, old, args.cap)
            slow = slow or done < 3 * n
            after, _ = run("after", backend, n, old, args.cap)
            shown = ("-" if skip else f"{before:.2f}" if done == 3 * n
                     else f">{args.cap:.0f} ({done} rows)")
            print(f"{backend:8} {n:>6} {3 * n:>6} {shown:>18} {after:>8.2f}", flush=True)
            figures["drain"].append({
                "backend": backend, "alerts": n, "rows": 3 * n, "after_s": after,
                "before_s": None if skip or done < 3 * n else before,
                "before_rows_in_cap": None if skip else done,
            })
    print(f"results: {write_results('outbox_claim', figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
