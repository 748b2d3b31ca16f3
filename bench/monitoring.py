"""Monitoring benchmarks: what a status call costs, and how closely a stream keeps its interval.

A status call after the first reuses the previous call's counters (no warm-up sleep), so its
time is the cost of reading the host (dominated by walking /proc for the process lists).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.agent import Agent

Row = tuple[str, float, str, str]
CALLS = 20
MESSAGES = 4


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-mon-") as tmp:
        agent = Agent(f"{tmp}/state").start()
        try:
            agent.jobs  # noqa: B018 - opens the channel
            assert agent.channel is not None
            stub = pbg.MonitoringServiceStub(agent.channel)
            t0 = time.perf_counter()
            stub.GetSystemStatus(pb.EmptyRequest())
            first = time.perf_counter() - t0
            times = []
            for _ in range(CALLS):
                t0 = time.perf_counter()
                stub.GetSystemStatus(pb.EmptyRequest())
                times.append(time.perf_counter() - t0)
            arrivals = []
            stream = stub.StreamSystemMetrics(pb.StreamMetricsRequest(interval_seconds=1))
            for _ in stream:
                arrivals.append(time.perf_counter())
                if len(arrivals) == MESSAGES:
                    break
            stream.cancel()
        finally:
            agent.destroy()
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return [
        (
            "GetSystemStatus first call",
            first * 1000,
            "ms",
            "n/a, measured (includes 250 ms warm-up)",
        ),
        ("GetSystemStatus p50", statistics.median(times) * 1000, "ms", "n/a, measured"),
        (
            "StreamSystemMetrics gap at interval 1 s (mean)",
            statistics.mean(gaps) * 1000,
            "ms",
            "1000 ms",
        ),
        ("StreamSystemMetrics gap at interval 1 s (max)", max(gaps) * 1000, "ms", "1000 ms"),
    ]


if __name__ == "__main__":
    for name, value, unit, target in run():
        print(f"{name:<48} {value:10.1f} {unit:<4} target: {target}")
