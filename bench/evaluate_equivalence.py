"""Do this tree's budget evaluation and an older commit's give identical results?

    .venv/bin/python -m bench.evaluate_equivalence            # against 932b2de
    .venv/bin/python -m bench.evaluate_equivalence --ref HEAD~3 --pods 500

The older ``daemon/core/{evaluate,scopes,spend}.py`` are taken with ``git show``
into a temporary package. A generated account (simulator in process, FakeClock)
is fetched with the real pipeline (``stage_fetch``) on both API versions at
four instants 7h13m apart, with the budget mix of bench/scale.py; both
evaluations run on the same data, with the live pods list and without it, and
their statuses and findings must compare equal (floats exactly). Exits 1 on
the first difference. Not a timing: it guards the performance work.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale import config_text  # noqa: E402
from daemon.app.logging import configure_logging  # noqa: E402
from daemon.app.runtime import build_runtime  # noqa: E402
from daemon.core.evaluate import evaluate  # noqa: E402
from daemon.pipeline.cycle import stage_fetch  # noqa: E402
from daemon.simulator import FakeClock, Simulator  # noqa: E402

KEY = "bench-key-equivalence"
T0 = datetime(2026, 11, 24, 8, 47, 12, tzinfo=UTC)


def old_evaluate(ref: str, where: Path):  # type: ignore[no-untyped-def]
    pkg = where / "refcore"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("evaluate", "scopes", "spend"):
        src = subprocess.run(["git", "show", f"{ref}:daemon/core/{name}.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        for mod in ("scopes", "spend"):
            src = src.replace(f"from daemon.core.{mod} ", f"from refcore.{mod} ")
        (pkg / f"{name}.py").write_text(src)
    sys.path.insert(0, str(where))
    return importlib.import_module("refcore.evaluate").evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default="932b2de")
    ap.add_argument("--pods", type=int, default=300)
    ap.add_argument("--budgets", type=int, default=100)
    args = ap.parse_args(argv)
    configure_logging(json=True, level="error", stream=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        ref_eval = old_evaluate(args.ref, Path(tmp))
        for version in ("v2", "v1"):
            clock = FakeClock(T0)
            scen = {"generate": {"kind": "month", "pods": args.pods, "days": 31, "seed": 5}}
            with tempfile.TemporaryDirectory() as state, Simulator(
                scen, api_key=KEY, clock=clock, rate_limit=None
            ) as sim:
                cfg = Path(state) / "budgets.yaml"
                cfg.write_text(config_text(args.budgets, version, "http://127.0.0.1:9/hook"))
                env = {"RUNPOD_API_KEY": KEY, "RUNPOD_API_BASE_URL": sim.base_url_for(version),
                       "STATE_DIRECTORY": state}
                deps = build_runtime(cfg, env, clock=clock).deps()
                for step in range(4):
                    now = clock()
                    got = stage_fetch(deps, deps.store, now)
                    for pods in (got.pods, {}):
                        new = evaluate(deps.config, got.data, pods, now)
                        old = ref_eval(deps.config, got.data, pods, now)
                        same = new.statuses == old.statuses and new.findings == old.findings
                        print(f"{version} t+{step * 7.2:.1f}h {'live' if pods else 'no pods'}: "
                              f"{len(new.statuses)} statuses, {len(new.findings)} findings: "
                              f"{'identical' if same else 'DIFFERENT'}", flush=True)
                        if not same:
                            return 1
                    clock.advance(timedelta(hours=7, minutes=13))
    return 0


if __name__ == "__main__":
    sys.exit(main())
