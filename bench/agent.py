"""Agent benchmarks (DESIGN.md §6): launch latency, sustained launch rate, followed-log
throughput and unique memory per running job, each measured against a real agent process
and printed beside its target. Runnable alone: `python -m bench.agent`."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from joblet.api import joblet_pb2 as pb
from tests.support.agent import Agent

Row = tuple[str, float, str, str]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def launch_latency(agent: Agent, n: int = 200) -> list[Row]:
    """RunJob returns once the job's own process has exec'd with full isolation."""
    for _ in range(10):  # warm the fork server and the channel
        agent.run("true", network="none")
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        r = agent.run("true", network="none")
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status in ("RUNNING", "COMPLETED"), r.status
    return [
        (
            "launch latency p50 (RunJob -> job process running)",
            statistics.median(samples),
            "ms",
            "<= 10 ms",
        ),
        ("launch latency p99", _pct(samples, 0.99), "ms", "<= 50 ms"),
    ]


def launch_rate(agent: Agent, n: int = 600, workers: int = 16) -> list[Row]:
    def one(_: int) -> str:
        return agent.run("true", network="none").status

    with ThreadPoolExecutor(workers) as pool:
        t = time.perf_counter()
        statuses = list(pool.map(one, range(n)))
        elapsed = time.perf_counter() - t
    assert all(s in ("RUNNING", "COMPLETED") for s in statuses)
    return [("sustained launches", n / elapsed, "launches/s", ">= 200/s")]


def log_throughput(agent: Agent, mib: int = 1024) -> list[Row]:
    r = agent.run("dd", "if=/dev/zero", "bs=1M", f"count={mib}", "status=none", network="none")
    got = 0
    first = 0.0
    for chunk in agent.jobs.GetJobLogs(pb.GetJobLogsRequest(uuid=r.job_uuid)):
        if not got:
            first = time.perf_counter()
        got += len(chunk.payload)
    elapsed = time.perf_counter() - first
    assert got == mib << 20, f"followed {got} bytes of {mib << 20}"
    return [("followed log throughput (one job)", got / elapsed / 1e6, "MB/s", ">= 200 MB/s")]


def memory_per_job(agent: Agent, n: int = 40) -> list[Row]:
    assert agent.proc is not None
    me = psutil.Process(agent.proc.pid)
    before = me.memory_full_info().uss
    uuids = [agent.run("sleep", "120", network="none").job_uuid for _ in range(n)]
    time.sleep(1.0)
    after = me.memory_full_info().uss
    sup_uss = 0
    for u in uuids:
        with open(os.path.join(agent.state_dir, "jobs", u, "run", "supervisor.pid")) as f:
            sup_uss += psutil.Process(int(f.read().split()[0])).memory_full_info().uss
    for u in uuids:
        agent.jobs.StopJob(pb.StopJobRequest(uuid=u))
    per_job = (max(0, after - before) + sup_uss) / n / (1 << 20)
    return [("unique memory per running job (agent + supervisor)", per_job, "MB", "<= 3 MB")]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="joblet-bench-") as tmp:
        agent = Agent(
            os.path.join(tmp, "state"),
            ("--log-max-bytes", str(4 << 30), "--stop-grace", "1"),
        ).start()
        try:
            rows = launch_latency(agent)
            rows += launch_rate(agent)
            rows += log_throughput(agent)
            rows += memory_per_job(agent)
        finally:
            agent.destroy()
    return rows


if __name__ == "__main__":
    for name, value, unit, target in run():
        print(f"{name}: {value:.1f} {unit} (target {target})")
