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

# Everything else is imported where it is used: `--help` and `--version` must
# answer in well under 150 ms, and the config loader (pydantic models), structlog
# (and rich through it), SQLAlchemy and the notifiers' SDKs cost ~250 ms to import.

EXIT_OK, EXIT_API, EXIT_CONFIG, EXIT_STATE = 0, 1, 2, 3
EXIT_INIT_REFUSED = 1  # init: the file exists or cannot be written
#: commands that read no config file (so take no -c)
_NO_CONFIG = ("demo", "init", "schema")


class _Version(argparse.Action):
    """``--version``: reads the installed package's metadata only when asked."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from daemon import __version__

        print(f"runpod-budget {__version__}")
        parser.exit()

def _parser() -> argparse.ArgumentParser:
    # Long on purpose: argparse declarations, one per command and option.
    p = argparse.ArgumentParser(
        prog="runpod-budget",
        description="Budget alerts and enforcement for RunPod GPU pods.",
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
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
        if name not in _NO_CONFIG:
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
    i = cmd("init", "write a commented starting config (never overwrites a file)")
    i.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="where to write it (default: ./config/budgets.yaml)",
    )
    cmd("schema", "print the config's JSON Schema (for editors and CI)")
    return p


def _import_structlog_without_rich() -> None:
    """Import structlog while ``rich`` looks absent: structlog.dev imports rich
    and pygments (~4 MB resident, ~20 ms) only for pretty tracebacks, and our
    log chain renders exceptions to plain text itself. ``rich`` stays importable
    afterwards for ``status``, which uses it."""
    if "structlog" in sys.modules:
        return
    saved = sys.modules.get("rich")
    sys.modules["rich"] = None  # type: ignore[assignment]  # import system: "not installed"
    try:
        import structlog  # noqa: F401
    finally:
        if saved is None:
            del sys.modules["rich"]
        else:
            sys.modules["rich"] = saved


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # this process is the command (tests and embedders pass argv)
        from daemon.app import heap

        heap.configure()
    args = _parser().parse_args(argv)
    _import_structlog_without_rich()
    from daemon.app import logging as applog
    from daemon.config.loader import (
        DEFAULT_CONFIG,
        ConfigError,
        default_config_path,
        format_problems,
    )
    from daemon.core.ports import StoreError

    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    level = args.log_level or ("warning" if args.command == "demo" else "info")
    applog.configure_logging(json=json_logs, level=level, stream=sys.stderr)
    env = dict(os.environ)
    path: Path | None = getattr(args, "config", None)
    if args.command == "init":
        return cmd_init(args.path or DEFAULT_CONFIG)
    if args.command == "schema":
        return cmd_schema()
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
            from daemon.app.status import status

            return status(path, env)
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
    from daemon.config.loader import load_config

    load_config(path, env)  # raises ConfigError with every problem
    print("OK")
    return EXIT_OK


def cmd_init(path: Path) -> int:
    """Write the packaged starting config to ``path`` (creating its directory).
    Returns 0, or 1 without touching anything when ``path`` already exists or
    cannot be written."""
    from daemon.config.schema import INIT_FILE, data_text

    if path.exists() or path.is_symlink():
        print(
            f"runpod-budget init: {path} already exists; not overwriting it "
            "(move it away or name another path)",
            file=sys.stderr,
        )
        return EXIT_INIT_REFUSED
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as f:  # "x": never clobber, even in a race
            f.write(data_text(INIT_FILE))
    except OSError as e:
        reason = (e.strerror or type(e).__name__).lower()
        print(f"runpod-budget init: cannot write {path}: {reason}", file=sys.stderr)
        return EXIT_INIT_REFUSED
    print(
        f"Wrote {path}. Next steps:\n"
        f"  1. export RUNPOD_API_KEY=...   (your RunPod API key)\n"
        f"  2. edit the budgets, guards and notifiers in {path}\n"
        f"  3. runpod-budget validate -c {path}\n"
        f"  4. runpod-budget check -c {path} --dry-run\n"
        f"  5. runpod-budget run -c {path}\n"
        f"Editor support: runpod-budget schema > {path.parent / 'budgets.schema.json'}"
    )
    return EXIT_OK


def cmd_schema() -> int:
    """Print the config's JSON Schema on standard output; returns 0."""
    from daemon.config.schema import render

    sys.stdout.write(render())
    return EXIT_OK
