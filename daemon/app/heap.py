"""The cyclic garbage collector's settings for this process.

A poll on a large account builds ~10^5 short-lived objects (budget statuses,
findings, spend points) next to ~3x10^5 long-lived ones from imports, the
config and the runtime. With CPython's defaults (a young collection every 700
net allocations, escalating to full collections) the collector walked the
long-lived heap again and again: 0.29-0.39 s of CPU in one steady ``check``
of 2,000 pods / 200 budgets (gc.callbacks, /work/lab figures in
bench/README.md "scale"), a fifth of the poll. Nearly all the daemon's garbage
is freed by reference counting; the collector is only for reference cycles, so
collecting less often costs little memory.
"""

from __future__ import annotations

import gc

#: net allocations between collections of the youngest generation (default 700)
YOUNG_THRESHOLD = 10_000
_configured = False


def configure() -> None:
    """Collect the young generation every ``YOUNG_THRESHOLD`` allocations, and
    let :func:`settle` act. Call once, first thing, when this process is the
    command (not when ``main`` is called by tests or another program: the
    collector is the process's, not ours to retune)."""
    global _configured  # noqa: PLW0603  (one process-wide switch, set once)
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    _configured = True


def settle() -> None:
    """After :func:`configure`: move every object alive now (modules, config,
    runtime) out of the collector's reach (``gc.freeze``), so later full
    collections walk only what polls create. Call when start-up is done,
    before the first poll. Does nothing when not configured."""
    if _configured:
        gc.freeze()
