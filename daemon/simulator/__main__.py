"""``python -m daemon.simulator --port 8787 --scenario demo``: serve until Ctrl-C.

Prints the environment a daemon needs (v2 base URL, GraphQL URL, key) and the
v1 base URL for ``api.version: v1``.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading
from typing import Any

from daemon.simulator.server import APIS, Simulator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m daemon.simulator",
        description="Serve a simulated RunPod (REST v1, REST v2, GraphQL) on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8787, help="0 picks a free port (default 8787)")
    ap.add_argument("--scenario", default="demo",
                    help="built-in name (demo, month) or a YAML/JSON file (default demo)")
    ap.add_argument("--api-key", default=None,
                    help="key clients must send (default: a random one, printed)")
    ap.add_argument("--retire", action="append", default=[], choices=APIS,
                    help="answer 410 Gone on every route of this API (repeatable)")
    args = ap.parse_args(argv)
    key = args.api_key or f"sim-{secrets.token_hex(8)}"
    sim = Simulator(args.scenario, api_key=key, port=args.port, retired=args.retire)
    sim.start()
    # printing the key is the point here: it is a throwaway key for a local fake
    print(f"RunPod simulator serving scenario {args.scenario!r}", flush=True)
    print(f"RUNPOD_API_BASE_URL={sim.base_url_for('v2')}", flush=True)
    print(f"RUNPOD_GRAPHQL_URL={sim.graphql_url}", flush=True)
    print(f"RUNPOD_API_KEY={key}", flush=True)
    print(f"# api.version: v1 -> RUNPOD_API_BASE_URL={sim.base_url_for('v1')}", flush=True)
    done = threading.Event()

    def _stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
