"""Benchmark: how long the local control plane takes to start warm (binaries cached) until etcd,
the API server (/readyz) and the controller-manager (/healthz) all answer, and to stop. Issue 3's
target is a warm start within 15 s; tests never assert on it, this prints it."""

from __future__ import annotations

import statistics
import time

from joblet.devcluster import ControlPlane
from joblet.devcluster.binaries import locate_binaries

ROUNDS = 3


def run() -> list[tuple[str, float, str, str]]:
    """(name, value, unit, target) rows: median of ROUNDS warm starts and stops."""
    binaries = locate_binaries()
    starts: list[float] = []
    stops: list[float] = []
    for _ in range(ROUNDS):
        cp = ControlPlane(binaries=binaries)
        t0 = time.monotonic()
        try:
            cp.start()
            t1 = time.monotonic()
        finally:
            cp.stop()
        starts.append(t1 - t0)
        stops.append(time.monotonic() - t1)
    return [
        ("control plane warm start", statistics.median(starts), "s", "<= 15 s"),
        ("control plane stop", statistics.median(stops), "s", "none"),
    ]


def main() -> None:
    for name, value, unit, target in run():
        print(f"{name}: {value:.1f} {unit} (target {target})")


if __name__ == "__main__":
    main()
