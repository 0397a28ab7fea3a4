"""RunPod REST API v1 simulator (real HTTP on loopback) for the demo, tests and benchmarks."""

from daemon.simulator.scenario import PodSpec, Scenario, VolumeSpec, month_pods
from daemon.simulator.server import (
    BAD_RECORDS,
    FAULT_KINDS,
    FakeClock,
    Fault,
    RequestRecord,
    Simulator,
)

__all__ = [
    "BAD_RECORDS",
    "FAULT_KINDS",
    "FakeClock",
    "Fault",
    "PodSpec",
    "RequestRecord",
    "Scenario",
    "Simulator",
    "VolumeSpec",
    "month_pods",
]
