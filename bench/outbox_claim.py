"""Time to drain the outbox: main's store (one row per claim, a correlated NOT
EXISTS per candidate row) against this branch's (batches from the head of each
notifier's queue), on SQLite and PostgreSQL.

n alerts to three notifiers (3n rows), every send succeeds at once (a null
notifier), so the figures are the store's cost only. "before" loads main's
``daemon/adapters/store.py`` from git (read-only ``git show``) and drains it as
main's ``deliver_due`` did: ``claim_due(limit=1)`` then ``mark_delivered``;
"after" runs this branch's ``deliver_due``. A size whose "before" run exceeds
``--cap`` seconds is not run at larger sizes.

    .venv/bin/python -m bench.outbox_claim [--sizes 100,1000,5000] [--cap 300]
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

from bench._common import ROOT
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


def drain_before(store: Any) -> None:
    while items := store.claim_due(T0, 600, limit=1):
        store.mark_delivered(items[0].seq, T0)


def drain_after(store: Any) -> None:
    notifiers = {n: Null(n) for n in NOTIFIERS}
    while store.pending_count():
        deliver_due(store, notifiers, lambda: T0)  # type: ignore[arg-type]


def run(kind: str, backend: str, n: int, old: ModuleType) -> float:
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
        (drain_before if kind == "before" else drain_after)(store)
        took = time.perf_counter() - start
        assert store.pending_count() == 0
        return took
    finally:
        store.close()
        if schema:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--cap", type=float, default=300.0)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    old = main_store_module()
    print(f"{'backend':8} {'alerts':>6} {'rows':>6} {'before s':>9} {'after s':>8}")
    for backend in ("sqlite", "postgres"):
        slow = False
        for n in (int(x) for x in args.sizes.split(",")):
            before = float("nan") if slow else run("before", backend, n, old)
            slow = slow or before > args.cap
            after = run("after", backend, n, old)
            print(f"{backend:8} {n:>6} {3 * n:>6} {before:>9.2f} {after:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
