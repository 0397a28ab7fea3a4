"""runpod-budget: budget alerting daemon for RunPod GPU pods."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` reads the installed metadata only when asked: importing
    # importlib.metadata costs ~25 ms, a sixth of the `--help` budget
    if name != "__version__":
        raise AttributeError(f"module 'daemon' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("runpod-budget")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0"
