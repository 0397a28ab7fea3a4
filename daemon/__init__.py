"""runpod-budget: budget alerting daemon for RunPod GPU pods."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("runpod-budget")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
