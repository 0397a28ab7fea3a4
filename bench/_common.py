"""Shared helpers of the benchmarks: paths, results, tables, the daemon subprocess."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_kb = 0
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured and whether daemon/ differs from it (read-only git)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT,
                                 timeout=10, check=False)
        except OSError:
            return ""
        return out.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "daemon_modified": bool(git("status", "--porcelain", "--", "daemon"))}


# taken when a benchmark starts: the code the daemon under test imports
CODE_AT_START = code_version()


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "code": CODE_AT_START,
        **data,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        pairs = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:,.3f}" if abs(c) < 100 else f"{c:,.1f}"
    if isinstance(c, int):
        return f"{c:,}"
    return str(c)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_command(config: Path) -> list[str]:
    """``runpod-budget run -c CONFIG`` from the venv (the console script, as
    deployed), falling back to ``python -m daemon``."""
    script = Path(sys.executable).with_name("runpod-budget")
    if script.exists():
        return [str(script), "--log-format", "json", "run", "-c", str(config)]
    return [sys.executable, "-m", "daemon", "--log-format", "json", "run", "-c", str(config)]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(extra)
    return env


class LogTail:
    """Drains a subprocess's stream in a thread and keeps its JSON log lines
    with the wall and monotonic time each line was read."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[tuple[float, float, dict[str, Any] | str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip("\n") if isinstance(raw, bytes) else raw
            mono, wall = time.monotonic(), time.time()
            try:
                doc: dict[str, Any] | str = json.loads(text)
            except ValueError:
                doc = text
            with self._cond:
                self.lines.append((mono, wall, doc))
                self._cond.notify_all()

    def events(self, name: str) -> list[tuple[float, float, dict[str, Any]]]:
        with self._cond:
            return [
                (m, w, d)
                for m, w, d in self.lines
                if isinstance(d, dict) and d.get("event") == name
            ]

    def wait_event(self, name: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [
                    (m, w, d)
                    for m, w, d in self.lines
                    if isinstance(d, dict) and d.get("event") == name
                ]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(str(d) for _, _, d in self.lines[-20:])
                    raise TimeoutError(f"no {count}x {name!r} within {timeout}s; log tail:\n{tail}")
                self._cond.wait(min(left, 0.5))

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM ``proc`` (only this one process) and wait; SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return -9
