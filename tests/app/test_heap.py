"""The collector settings apply to the command's own process only."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from daemon.app import heap, cli
before = gc.get_threshold()
heap.settle()                       # not configured: nothing frozen
frozen_unconfigured = gc.get_freeze_count()
try:
    cli.main(["validate", "-c", "/nonexistent.yaml"])  # argv given: a caller's process
except SystemExit:
    pass
untouched = gc.get_threshold() == before
heap.configure()
heap.settle()
print(frozen_unconfigured, untouched, gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def test_collector_is_retuned_only_when_the_process_is_the_command() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[-4:] == ["0", "True", "10000", "True"]
