"""Kubernetes benchmarks (DESIGN.md §6) on the whole product: control plane, two agent nodes
and the operator. `kubectl apply` of a Job → phase Running (p50/p99), and 1,000 Jobs applied
at once → all Succeeded. Runnable alone: `python -m bench.operator`."""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

from joblet_operator.kube import JobResource
from lightkube import Client, KubeConfig

from joblet.devcluster.cluster import JobletCluster

Row = tuple[str, float, str, str]
NS = "bench"


def _manifest(name: str, command: str, *args: str) -> dict[str, Any]:
    return {
        "apiVersion": "joblet.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"command": command, "args": list(args)},
    }


class PhaseWatch:
    """Records when each Job is first seen in each phase (from a watch, not polling)."""

    def __init__(self, kubeconfig: str) -> None:
        self.client = Client(config=KubeConfig.from_file(kubeconfig))
        self.seen: dict[tuple[str, str], float] = {}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._watch()
        except Exception:  # the control plane goes away at the end of the run
            return

    def _watch(self) -> None:
        for _, obj in self.client.watch(JobResource, namespace=NS):
            phase = (obj.get("status") or {}).get("phase", "")
            key = (obj["metadata"]["name"], phase)
            with self.cond:
                self.seen.setdefault(key, time.perf_counter())
                self.cond.notify_all()

    def wait(self, name: str, phases: set[str], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [self.seen[(name, p)] for p in phases if (name, p) in self.seen]
                if hits:
                    return min(hits)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{name} not in {phases} after {timeout}s")
                self.cond.wait(left)

    def count(self, phase: str, prefix: str) -> int:
        with self.cond:
            return sum(1 for (n, p) in self.seen if p == phase and n.startswith(prefix))


def apply_to_running(c: JobletCluster, watch: PhaseWatch, n: int = 40) -> list[Row]:
    samples = []
    for i in range(n):
        name = f"lat-{i}"
        t = time.perf_counter()
        c.kubectl("apply", "-f", "-", input=json.dumps(_manifest(name, "sleep", "2")))
        samples.append((watch.wait(name, {"Running", "Succeeded"}, 30) - t) * 1000)
    ordered = sorted(samples)
    return [
        ("kubectl apply -> phase Running p50", statistics.median(samples), "ms", "<= 300 ms"),
        (
            "kubectl apply -> phase Running p99",
            ordered[min(n - 1, round(0.99 * (n - 1)))],
            "ms",
            "<= 1000 ms",
        ),
    ]


def thousand_jobs(c: JobletCluster, watch: PhaseWatch, n: int = 1000) -> list[Row]:
    docs = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [_manifest(f"many-{i}", "true") for i in range(n)],
    }
    t = time.perf_counter()
    c.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(docs))
    applied = time.perf_counter() - t
    deadline = time.monotonic() + 600
    while watch.count("Succeeded", "many-") < n and time.monotonic() < deadline:
        time.sleep(0.2)
    done = watch.count("Succeeded", "many-")
    elapsed = time.perf_counter() - t
    rows: list[Row] = [
        (f"{n} Jobs applied at once -> all Succeeded", elapsed, "s", "<= 60 s"),
        (f"  of which kubectl apply of the {n} objects", applied, "s", "n/a"),
    ]
    if done < n:
        rows.append((f"  Jobs Succeeded within {elapsed:.0f} s", float(done), "jobs", f"= {n}"))
    return rows


def run() -> list[Row]:
    c = JobletCluster(nodes=2).start()
    try:
        c.kubectl("create", "namespace", NS)
        assert c.cp is not None
        watch = PhaseWatch(str(c.cp.kubeconfig))
        rows = apply_to_running(c, watch)
        rows += thousand_jobs(c, watch)
        return rows
    finally:
        c.stop()


if __name__ == "__main__":
    for name, value, unit, target in run():
        print(f"{name}: {value:.1f} {unit} (target {target})")
