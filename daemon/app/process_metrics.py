"""``process_*`` metrics that also work under systemd's ``ProcSubset=pid``.

prometheus_client's ``ProcessCollector`` reads ``/proc/stat`` for the boot
time and exports nothing without it; the unit hides that file. There the
daemon reads ``/proc/self`` and ``os.times()`` instead: CPU seconds, start
time (taken when this module was imported, within a second of the real
start), virtual and resident memory, open fds and the fd limit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

_PROCESS_START = time.time()
_PAGESIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _SelfProcessCollector(Collector):
    """``process_*`` metrics from ``/proc/self`` and ``os.times()`` only.

    prometheus_client's ProcessCollector needs ``/proc/stat`` (boot time) and
    exports nothing without it, which is the case under the systemd unit's
    ``ProcSubset=pid``. This covers the same core series (start time is taken
    when this module was imported, within a second of the real start)."""

    def __init__(self, proc: str = "/proc") -> None:
        self._self = os.path.join(proc, "self")

    def collect(self) -> Iterable[Metric]:
        out: list[Metric] = []
        times = os.times()
        out.append(
            CounterMetricFamily(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                value=times.user + times.system,
            )
        )
        out.append(
            GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                value=_PROCESS_START,
            )
        )
        try:
            with open(os.path.join(self._self, "statm"), "rb") as f:
                size, resident = (int(x) for x in f.read().split()[:2])
            out.append(
                GaugeMetricFamily(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    value=size * _PAGESIZE,
                )
            )
            out.append(
                GaugeMetricFamily(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    value=resident * _PAGESIZE,
                )
            )
        except (OSError, ValueError):
            pass
        try:
            fds = len(os.listdir(os.path.join(self._self, "fd")))
            out.append(
                GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", value=fds)
            )
        except OSError:
            pass
        try:
            with open(os.path.join(self._self, "limits"), encoding="ascii") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        soft = line.split()[3]
                        if soft.isdigit():
                            out.append(
                                GaugeMetricFamily(
                                    "process_max_fds",
                                    "Maximum number of open file descriptors.",
                                    value=int(soft),
                                )
                            )
        except OSError:
            pass
        return out


def register_process_metrics(registry: CollectorRegistry, proc: str = "/proc") -> None:
    """The standard ProcessCollector where ``/proc/stat`` is readable, else
    ``_SelfProcessCollector`` (systemd ``ProcSubset=pid``)."""
    if os.access(os.path.join(proc, "stat"), os.R_OK):
        ProcessCollector(proc=proc, registry=registry)
    else:
        registry.register(_SelfProcessCollector(proc))
