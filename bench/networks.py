"""Benchmarks of job networks: launch latency on `bridge` and on a user network (RunJob call
until the job runs, which is when RunJob answers), against `none` for reference, and the time
to create and to remove a network. A real agent on this host; nothing leaves the machine."""

from __future__ import annotations

import statistics
import tempfile
import time

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.agent import Agent
from tests.support.netclean import remove_agent_networks

LAUNCHES = 100
WARMUP = 10
NETWORK_OPS = 15
USER_CIDR = "10.219.0.0/20"
Row = tuple[str, float, str, str]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _launches(agent: Agent, networks: tuple[str, ...], n: int) -> dict[str, list[float]]:
    """Launch round-robin over `networks`, so a busy host weighs on each of them alike."""
    times: dict[str, list[float]] = {net: [] for net in networks}
    last = ""
    for i in range(WARMUP + n):
        for network in networks:
            t0 = time.perf_counter()
            r = agent.run("true", network=network)
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status not in ("RUNNING", "COMPLETED"):
                raise RuntimeError(f"launch on {network} failed: {agent.status(r.job_uuid)}")
            if i >= WARMUP:
                times[network].append(elapsed)
            last = r.job_uuid
    agent.wait(last)
    return times


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        state = f"{tmp}/state"
        agent = Agent(state).start()
        try:
            agent.jobs  # noqa: B018 - opens the channel
            assert agent.channel is not None
            nets = pbg.NetworkServiceStub(agent.channel)
            nets.CreateNetwork(pb.CreateNetworkRequest(name="bench", cidr=USER_CIDR))
            measured = _launches(agent, ("bridge", "bench", "none"), LAUNCHES)
            for label, network in (
                ("bridge", "bridge"),
                ("user network", "bench"),
                ("none (reference)", "none"),
            ):
                t = measured[network]
                target = "p50 <= 15 ms" if network != "none" else "reference, same run"
                rows.append((f"launch p50, {label}", statistics.median(t), "ms", target))
                rows.append((f"launch p99, {label}", _pct(t, 0.99), "ms", "p99 <= 50 ms"))
            nets.RemoveNetwork(pb.RemoveNetworkRequest(name="bench"))
            creates, removes = [], []
            for i in range(NETWORK_OPS):
                t0 = time.perf_counter()
                nets.CreateNetwork(pb.CreateNetworkRequest(name=f"b{i}", cidr=f"10.220.{i}.0/24"))
                t1 = time.perf_counter()
                nets.RemoveNetwork(pb.RemoveNetworkRequest(name=f"b{i}"))
                t2 = time.perf_counter()
                creates.append((t1 - t0) * 1000)
                removes.append((t2 - t1) * 1000)
            rows.append(("network create p50", statistics.median(creates), "ms", "(no target)"))
            rows.append(("network remove p50", statistics.median(removes), "ms", "(no target)"))
        finally:
            agent.destroy()
            remove_agent_networks(state)
    return rows


if __name__ == "__main__":
    for name, value, unit, target in run():
        print(f"{name:40s} {value:9.2f} {unit:3s}  target: {target}")
