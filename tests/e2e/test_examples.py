"""Every manifest in examples/ applied with `kubectl apply`, as a user would, reaches the
outcome examples/README.md promises, on the real control plane with real agents."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from joblet.devcluster.cluster import REPO, JobletCluster

pytestmark = pytest.mark.cluster
NS = "examples"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def cluster(joblet_cluster: JobletCluster) -> JobletCluster:
    c = joblet_cluster
    c.kubectl("create", "namespace", NS)
    # what an administrator does so the selector-based examples have somewhere to go
    c.kubectl(
        "label",
        "jobletnode",
        "--all",
        "joblet.io/network=batch",
        "joblet.io/runtimes=tools",
        "--overwrite",
    )
    return c


def apply_file(c: JobletCluster, path: Path, text: str | None = None) -> None:
    c.kubectl("apply", "-n", NS, "-f", "-", input=text if text is not None else path.read_text())


def obj(c: JobletCluster, kind: str, name: str, ns: str | None = NS) -> dict[str, Any]:
    args = ["get", kind, name, "-o", "json"]
    if ns:
        args[1:1] = ["-n", ns]
    p = c.kubectl(*args, check=False)
    return dict(json.loads(p.stdout)) if p.returncode == 0 else {}


def wait_for(c: JobletCluster, what: str, check: Any, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(0.3)
    with open(c.operator_log, errors="replace") as f:
        log_tail = "\n".join(f.read().splitlines()[-30:])
    raise AssertionError(
        f"{what}: not reached in {timeout}s; last status {last.get('status')}\n{log_tail}"
    )


def job_phase(c: JobletCluster, name: str, phases: set[str], ns: str = NS) -> dict[str, Any]:
    def check() -> tuple[bool, dict[str, Any]]:
        o = obj(c, "jobs.joblet.io", name, ns)
        return (o.get("status") or {}).get("phase") in phases, o

    return dict(wait_for(c, f"Job {ns}/{name} in {phases}", check)["status"])


def ready(c: JobletCluster, kind: str, name: str, ns: str | None) -> dict[str, Any]:
    def check() -> tuple[bool, dict[str, Any]]:
        o = obj(c, kind, name, ns)
        conds = (o.get("status") or {}).get("conditions") or []
        return any(x["type"] == "Ready" and x["status"] == "True" for x in conds), o

    return dict(wait_for(c, f"{kind} {name} Ready", check)["status"])


@pytest.mark.parametrize(
    ("file", "job", "phase", "exit_code"),
    [
        ("job-hello.yaml", "hello", "Succeeded", 0),
        ("job-limits.yaml", "limits", "Succeeded", 0),
        ("job-uploads.yaml", None, "Succeeded", 0),
        ("job-secret.yaml", None, "Succeeded", 0),
        ("job-retry.yaml", None, "Failed", 3),
    ],
)
def test_job_examples(
    cluster: JobletCluster, file: str, job: str | None, phase: str, exit_code: int
) -> None:
    path = EXAMPLES / file
    apply_file(cluster, path)
    names = [d["metadata"]["name"] for d in _docs(cluster, path) if d["kind"] == "Job"]
    for name in names if job is None else [job]:
        st = job_phase(cluster, name, {"Succeeded", "Failed", "Stopped"})
        assert (st["phase"], st.get("exitCode")) == (phase, exit_code), st


def test_retry_example_uses_all_attempts(cluster: JobletCluster) -> None:
    path = EXAMPLES / "job-retry.yaml"
    apply_file(cluster, path)
    name = next(d["metadata"]["name"] for d in _docs(cluster, path) if d["kind"] == "Job")
    st = job_phase(cluster, name, {"Failed"})
    assert st["attempts"] == 3


def test_deadline_example(cluster: JobletCluster) -> None:
    apply_file(cluster, EXAMPLES / "job-deadline.yaml")
    name = next(d["metadata"]["name"] for d in _docs(cluster, EXAMPLES / "job-deadline.yaml"))
    st = job_phase(cluster, name, {"Failed", "Succeeded", "Stopped"})
    reasons = {c["type"]: c["reason"] for c in st["conditions"]}
    assert st["phase"] == "Failed" and reasons["Failed"] == "DeadlineExceeded"


def test_scheduled_example(cluster: JobletCluster) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (EXAMPLES / "job-scheduled.yaml").read_text().replace("2030-01-01T00:00:00Z", when)
    apply_file(cluster, EXAMPLES / "job-scheduled.yaml", text)
    st = job_phase(cluster, "scheduled", {"Scheduled", "Running", "Succeeded"})
    assert st["phase"] == "Scheduled", st  # waits on its node
    st = job_phase(cluster, "scheduled", {"Succeeded", "Failed"})
    assert st["phase"] == "Succeeded"
    started = datetime.fromisoformat(st["startTime"].replace("Z", "+00:00"))
    assert started >= datetime.fromisoformat(when.replace("Z", "+00:00")) - timedelta(seconds=1)


def test_network_example(cluster: JobletCluster) -> None:
    apply_file(cluster, EXAMPLES / "network.yaml")
    st = ready(cluster, "networks.joblet.io", "batch-net", None)
    assert set(st["nodes"]) == {a.name for a in cluster.agents}
    assert job_phase(cluster, "on-network", {"Succeeded", "Failed"})["phase"] == "Succeeded"


def test_volume_example(cluster: JobletCluster) -> None:
    apply_file(cluster, EXAMPLES / "volume.yaml")
    ready(cluster, "volumes.joblet.io", "cache", NS)
    assert job_phase(cluster, "uses-volume", {"Succeeded", "Failed"})["phase"] == "Succeeded"


def test_runtime_example(cluster: JobletCluster) -> None:
    cluster.kubectl("apply", "-f", str(EXAMPLES / "runtime-configmap.yaml"))
    ready(cluster, "runtimes.joblet.io", "hello-tools-1.0", None)
    st = job_phase(cluster, "uses-runtime", {"Succeeded", "Failed"}, ns="default")
    assert st["phase"] == "Succeeded", st


def test_workflow_example_is_accepted(cluster: JobletCluster) -> None:
    apply_file(cluster, EXAMPLES / "workflow.yaml")
    name = next(
        d["metadata"]["name"]
        for d in _docs(cluster, EXAMPLES / "workflow.yaml")
        if d["kind"] == "Workflow"
    )
    assert obj(cluster, "workflows.joblet.io", name)["metadata"]["name"] == name


def test_everything_listed_in_the_joblet_category(cluster: JobletCluster) -> None:
    out = cluster.kubectl("get", "joblet", "-A").stdout
    for word in ("hello", "batch-net", "cache", "hello-tools-1.0", "node-a", "node-b"):
        assert word in out, out


def _docs(c: JobletCluster, path: Path) -> list[dict[str, Any]]:
    out = c.kubectl("apply", "-n", NS, "--dry-run=client", "-o", "json", "-f", str(path)).stdout
    data = json.loads(out)
    return list(data["items"]) if data.get("kind") == "List" else [data]
