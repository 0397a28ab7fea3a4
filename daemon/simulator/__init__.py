"""RunPod simulator (REST v1, REST v2, GraphQL; real HTTP on loopback) for the demo,
tests and benchmarks."""

from daemon.simulator.faults import BAD_RECORDS, FAULT_KINDS, Fault
from daemon.simulator.generate import month_pods
from daemon.simulator.scenario import (
    BalanceSpec,
    ClusterSpec,
    PodSpec,
    Scenario,
    ServerlessSpec,
    VolumeSpec,
)
from daemon.simulator.server import FakeClock, RequestRecord, Simulator

__all__ = [
    "BAD_RECORDS",
    "FAULT_KINDS",
    "BalanceSpec",
    "ClusterSpec",
    "FakeClock",
    "Fault",
    "PodSpec",
    "RequestRecord",
    "Scenario",
    "ServerlessSpec",
    "Simulator",
    "VolumeSpec",
    "month_pods",
]
