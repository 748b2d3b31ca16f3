"""Runtime figures: how long installing the example recipe takes (local files, the setup
script building its package in the sandbox), and what using a runtime adds to a job."""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.agent import REPO, Agent

EXAMPLE = "python-3.11-demo"
ROUNDS = 5


def _files(path: str) -> list[pb.RuntimeFile]:
    out = []
    for dirpath, _, names in os.walk(path):
        for n in sorted(names):
            full = os.path.join(dirpath, n)
            with open(full, "rb") as f:
                rel = os.path.relpath(full, path)
                out.append(
                    pb.RuntimeFile(path=rel, content=f.read(), executable=os.access(full, os.X_OK))
                )
    return out


def _job_ms(a: Agent, **kw: object) -> float:
    t0 = time.perf_counter()
    st, _ = a.run_to_end("python3", "-c", "import sys", **kw)
    assert st.status == "COMPLETED"
    return (time.perf_counter() - t0) * 1000


def run() -> list[tuple[str, float, str, str]]:
    files = _files(os.path.join(REPO, "examples", "runtimes", EXAMPLE))
    with tempfile.TemporaryDirectory() as tmp:
        a = Agent(os.path.join(tmp, "state")).start()
        try:
            stub = pbg.RuntimeServiceStub(a.connect())
            installs = []
            for i in range(ROUNDS):
                t0 = time.perf_counter()
                r = stub.InstallRuntimeFromLocal(
                    pb.InstallRuntimeFromLocalRequest(
                        runtime_spec=EXAMPLE, files=files, force_reinstall=i > 0
                    ),
                    timeout=300,
                )
                installs.append((time.perf_counter() - t0) * 1000)
                assert r.status == "completed", r.message
            plain: list[float] = []
            with_rt: list[float] = []
            _job_ms(a)  # warm-up
            for _ in range(ROUNDS * 4):  # interleaved, so drift hits both alike
                plain.append(_job_ms(a))
                with_rt.append(_job_ms(a, runtime=EXAMPLE))
            size = stub.GetRuntimeInfo(pb.GetRuntimeInfoRequest(runtime=EXAMPLE)).runtime.size_bytes
        finally:
            a.destroy()
    return [
        ("runtime install (example, local, p50)", statistics.median(installs), "ms", "none"),
        ("runtime size (example)", size / 1024, "KiB", "none"),
        ("job python3 run-to-end, no runtime (p50)", statistics.median(plain), "ms", "none"),
        ("job python3 run-to-end, with runtime (p50)", statistics.median(with_rt), "ms", "none"),
    ]


if __name__ == "__main__":
    for name, value, unit, target in run():
        print(f"{name}: {value:.1f} {unit} (target {target})")
