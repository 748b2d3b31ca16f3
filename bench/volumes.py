"""Volume benchmarks: how long CreateVolume and RemoveVolume take on a real agent.

A filesystem volume's create is dominated by mkfs.ext4 (its size matters little, since the
image is sparse); a memory volume is one tmpfs mount. No target is set by the issue, so
these are reported as measured. Everything created is removed; mounts and loop devices
left by a failure are cleaned up before returning.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.agent import Agent
from tests.support.mounts import cleanup

Row = tuple[str, float, str, str]
ROUNDS = {"filesystem": 8, "memory": 20}
SIZES = {"filesystem": ("64MB", "1GB"), "memory": ("64MB",)}


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[-1] * 1000


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-vol-") as tmp:
        state = os.path.join(tmp, "state")
        agent = Agent(state).start()
        try:
            agent.jobs  # noqa: B018 - opens the channel
            assert agent.channel is not None
            stub = pbg.VolumeServiceStub(agent.channel)
            for kind, sizes in SIZES.items():
                for size in sizes:
                    creates, removes = [], []
                    for i in range(ROUNDS[kind]):
                        name = f"b{kind[0]}{i}"
                        t0 = time.perf_counter()
                        stub.CreateVolume(pb.CreateVolumeRequest(name=name, size=size, type=kind))
                        t1 = time.perf_counter()
                        stub.RemoveVolume(pb.RemoveVolumeRequest(name=name))
                        t2 = time.perf_counter()
                        creates.append(t1 - t0)
                        removes.append(t2 - t1)
                    for what, samples in (("create", creates), ("remove", removes)):
                        p50, worst = _ms(samples)
                        label = f"volume {what} {kind} {size}"
                        rows.append((f"{label} p50", p50, "ms", "n/a, measured"))
                        rows.append((f"{label} max", worst, "ms", "n/a, measured"))
        finally:
            agent.destroy()
            cleanup(state)
    return rows


if __name__ == "__main__":
    for name, value, unit, target in run():
        print(f"{name:<40} {value:10.1f} {unit:<4} target: {target}")
