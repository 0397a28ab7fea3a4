"""The ``runpod-budget`` command line (contract: "Command line").

Exit codes: 0 done; 1 billing API unusable / a notifier failed (per command);
2 config invalid; 3 state database unusable (corrupt, newer schema, unreachable).
No command prints a traceback for a user's mistake or a remote failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from daemon import __version__
from daemon.app import logging as applog
from daemon.config.loader import ConfigError, default_config_path, format_problems, load_config
from daemon.core.ports import StoreError

EXIT_OK, EXIT_API, EXIT_CONFIG, EXIT_STATE = 0, 1, 2, 3

log = structlog.get_logger("daemon.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="runpod-budget",
        description="Budget alerts and enforcement for RunPod GPU pods.",
    )
    p.add_argument("--version", action="version", version=f"runpod-budget {__version__}")
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=os.environ.get("RUNPOD_BUDGET_LOG_FORMAT", "auto"),
        help="log format (default: JSON when stderr is not a terminal)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("RUNPOD_BUDGET_LOG_LEVEL"),
        choices=["debug", "info", "warning", "error"],
        help="default: info (warning for demo, whose alerts are the point)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if name != "demo":
            sp.add_argument(
                "-c",
                "--config",
                type=Path,
                default=None,
                help="config file (default: $RUNPOD_BUDGET_CONFIG, then ./config/budgets.yaml)",
            )
        return sp

    cmd("run", "the long-running daemon: scheduled polls, alerts, digests, enforcement")
    c = cmd("check", "one full cycle (fetch, evaluate, notify, enforce), then exit")
    c.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be sent or stopped; send, stop and record nothing",
    )
    cmd("validate", "check the config and every ${VAR} it names")
    cmd("status", "table of every budget instance: spend, limit, percent, forecast, last alert")
    t = cmd("test-notify", "send a clearly marked test message to every notifier (or NAME)")
    t.add_argument("name", nargs="?", help="only this notifier")
    d = cmd("demo", "the whole daemon against the built-in RunPod simulator, alerts on the console")
    d.add_argument("--poll", default="2s", help="poll interval of the demo (default 2s)")
    d.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    level = args.log_level or ("warning" if args.command == "demo" else "info")
    applog.configure_logging(json=json_logs, level=level, stream=sys.stderr)
    env = dict(os.environ)
    path: Path | None = getattr(args, "config", None)
    if path is None and args.command != "demo":
        path = default_config_path(env)
    try:
        if args.command == "validate":
            assert path is not None
            return cmd_validate(path, env)
        if args.command == "demo":
            from daemon.app.demo import run_demo

            return run_demo(poll=args.poll, duration=args.duration)
        assert path is not None
        if args.command == "run":
            from daemon.app.service import run_service

            return run_service(path, env)
        from daemon.app import commands

        if args.command == "check":
            return commands.check(path, env, dry_run=args.dry_run)
        if args.command == "status":
            return commands.status(path, env)
        if args.command == "test-notify":
            return commands.test_notify(path, env, args.name)
    except ConfigError as e:
        print(format_problems(e), file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as e:
        print(f"runpod-budget: state: {e}", file=sys.stderr)
        return EXIT_STATE
    except KeyboardInterrupt:
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command}")  # argparse restricts choices


def cmd_validate(path: Path, env: dict[str, str]) -> int:
    load_config(path, env)  # raises ConfigError with every problem
    print("OK")
    return EXIT_OK
