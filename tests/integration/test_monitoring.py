"""Host monitoring on a real agent: status from the real host, streams at the asked interval.

Timing assertions are loose lower bounds and orderings only; benchmarks measure timing.
"""

from __future__ import annotations

import itertools
import os
import platform
import socket
import threading
import time

import grpc
import psutil
import pytest

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent import timefmt
from tests.support.agent import Agent


def mon(agent: Agent) -> pbg.MonitoringServiceStub:
    agent.jobs  # noqa: B018 - opens the channel
    assert agent.channel is not None
    return pbg.MonitoringServiceStub(agent.channel)


def test_status_describes_this_host(agent: Agent) -> None:
    s = mon(agent).GetSystemStatus(pb.EmptyRequest(), timeout=30)
    assert s.available
    assert abs((timefmt.now() - timefmt.parse(s.timestamp)).total_seconds()) < 30
    with open(os.path.join(agent.state_dir, "node_id")) as f:
        assert s.host.node_id == f.read().strip()
    assert s.host.hostname == socket.gethostname()
    assert s.host.os == "linux" and s.host.kernel_version == platform.release()
    assert s.host.cpu_count == psutil.cpu_count()
    assert s.host.total_memory == psutil.virtual_memory().total
    assert s.host.uptime > 0 and s.host.boot_time
    assert s.cpu.cores == psutil.cpu_count() and len(s.cpu.per_core_usage) == s.cpu.cores
    assert 0.0 <= s.cpu.usage_percent <= 100.0 and len(s.cpu.load_average) == 3
    assert s.memory.total_bytes == psutil.virtual_memory().total
    assert 0 < s.memory.available_bytes <= s.memory.total_bytes
    assert "/" in {d.mount_point for d in s.disks}
    root = next(d for d in s.disks if d.mount_point == "/")
    assert root.total_bytes == os.statvfs("/").f_blocks * os.statvfs("/").f_frsize
    assert "lo" in {n.interface for n in s.networks}
    assert s.processes.total_processes > 0 and s.processes.top_by_cpu
    assert s.processes.top_by_memory[0].memory_bytes > 0
    assert s.io.total_reads >= 0
    assert s.cloud.provider  # best effort, never empty
    if not os.path.isdir("/sys/class/dmi/id"):
        assert s.cloud.provider == "none"
    v = s.server_version
    assert v.version and v.component == "joblet-agent"
    assert platform.python_version() in v.go_version
    assert v.platform.startswith("linux/")


def test_node_id_stable_across_restarts(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    try:
        first = mon(a).GetSystemStatus(pb.EmptyRequest(), timeout=30).host.node_id
        a.kill9()
        a.start()
        assert mon(a).GetSystemStatus(pb.EmptyRequest(), timeout=30).host.node_id == first
        assert first
    finally:
        a.stop()


def test_stream_at_the_requested_interval(agent: Agent) -> None:
    stream = mon(agent).StreamSystemMetrics(pb.StreamMetricsRequest(interval_seconds=1), timeout=30)
    arrivals, stamps = [], []
    for msg in stream:
        arrivals.append(time.monotonic())
        stamps.append(timefmt.parse(msg.timestamp))
        assert msg.HasField("cpu") and msg.HasField("memory") and msg.HasField("processes")
        if len(arrivals) == 3:
            break
    stream.cancel()
    assert stamps == sorted(stamps)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(g >= 0.5 for g in gaps), gaps


def test_metric_types_are_honoured(agent: Agent) -> None:
    request = pb.StreamMetricsRequest(interval_seconds=1, metric_types=["cpu"])
    stream = mon(agent).StreamSystemMetrics(request, timeout=30)
    msg = next(iter(stream))
    stream.cancel()
    assert msg.HasField("cpu") and msg.host.hostname
    assert not msg.HasField("memory") and not msg.HasField("io")
    assert not msg.HasField("processes")
    assert not msg.disks and not msg.networks

    request = pb.StreamMetricsRequest(interval_seconds=1, metric_types=["network", "disk"])
    stream = mon(agent).StreamSystemMetrics(request, timeout=30)
    msg = next(iter(stream))
    stream.cancel()
    assert msg.networks and msg.disks
    assert not msg.HasField("cpu") and not msg.HasField("memory")


@pytest.mark.parametrize(
    ("interval", "types", "words"),
    [(-1, [], "interval_seconds"), (3601, [], "interval_seconds"), (1, ["gpu"], "gpu")],
)
def test_bad_stream_requests(agent: Agent, interval: int, types: list[str], words: str) -> None:
    request = pb.StreamMetricsRequest(interval_seconds=interval, metric_types=types)
    with pytest.raises(grpc.RpcError) as err:
        next(iter(mon(agent).StreamSystemMetrics(request, timeout=30)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (err.value.details() or "")


def test_client_going_away_ends_the_stream_cleanly(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    try:
        stream = mon(a).StreamSystemMetrics(pb.StreamMetricsRequest(interval_seconds=1))
        next(iter(stream))
        stream.cancel()
        # and a client that vanishes without cancelling: its channel is closed under it
        other = a.connect()
        s2 = pbg.MonitoringServiceStub(other).StreamSystemMetrics(
            pb.StreamMetricsRequest(interval_seconds=1)
        )
        next(iter(s2))
        threading.Thread(target=other.close).start()
        deadline = time.monotonic() + 10
        while a.log().count("metrics stream to") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        log = a.log()
        assert log.count("metrics stream to") == 2, log
        # the agent still answers, and nothing went wrong on its side
        assert mon(a).GetSystemStatus(pb.EmptyRequest(), timeout=30).available
    finally:
        a.stop()
    assert "Traceback" not in log and " ERROR " not in log, log
