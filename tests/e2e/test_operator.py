"""The operator end to end: a real control plane, two agents each in its own network
namespace as its own node, and the operator running under its least-privilege ClusterRole.
Manifests go in with `kubectl apply`, results come out of `kubectl get`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from joblet.devcluster.cluster import REPO, JobletCluster

pytestmark = pytest.mark.cluster
NS = "e2e"


@pytest.fixture(scope="module")
def cluster(joblet_cluster: JobletCluster) -> JobletCluster:
    joblet_cluster.kubectl("create", "namespace", NS)
    return joblet_cluster


def apply(c: JobletCluster, manifest: str) -> None:
    c.kubectl("apply", "-n", NS, "-f", "-", input=manifest)


def job_manifest(name: str, command: str, *args: str, **spec: object) -> str:
    body = {
        "apiVersion": "joblet.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"command": command, "args": list(args), **spec},
    }
    return json.dumps(body)


def get(c: JobletCluster, name: str, kind: str = "jobs.joblet.io") -> dict[str, Any]:
    out = c.kubectl("get", "-n", NS, kind, name, "-o", "json").stdout
    return dict(json.loads(out))


def status(c: JobletCluster, name: str) -> dict[str, Any]:
    st = get(c, name).get("status")
    return dict(st) if isinstance(st, dict) else {}


def wait_phase(
    c: JobletCluster, name: str, phases: set[str], timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = status(c, name)
        if st.get("phase") in phases:
            return st
        time.sleep(0.2)
    raise AssertionError(
        f"{name} did not reach {phases} in {timeout}s: {st}\n{tail(c.operator_log)}"
    )


def tail(path: os.PathLike[str] | str, n: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


def read_text(path: os.PathLike[str] | str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def agent_jobs(c: JobletCluster, index: int) -> list[pb.Job]:
    with c.agent_channel(index) as ch:
        return list(pbg.JobServiceStub(ch).ListJobs(pb.EmptyRequest(), timeout=10).jobs)


def test_nodes_registered_ready(cluster: JobletCluster) -> None:
    out = cluster.kubectl("get", "jobletnodes", "-o", "json").stdout
    nodes = {n["metadata"]["name"]: n for n in json.loads(out)["items"]}
    assert set(nodes) == {"node-a", "node-b"}
    for n in nodes.values():
        assert n["spec"]["address"].endswith(":50051")
        assert any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
        )


def test_hello_job_succeeds_with_output(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("hello", "sh", "-c", "echo hello from $(hostname)"))
    st = wait_phase(cluster, "hello", {"Succeeded", "Failed"})
    assert st["phase"] == "Succeeded" and st["exitCode"] == 0
    assert st["node"] in ("node-a", "node-b") and st["jobUUID"] and st["attempts"] == 1
    assert st["startTime"] and st["completionTime"]
    types = {c["type"]: c["status"] for c in st["conditions"]}
    assert types.get("Complete") == "True"
    plugin = subprocess.run(
        [
            sys.executable,
            "-m",
            "joblet_operator.plugin",
            "--kubeconfig",
            str(cluster.cp.kubeconfig),  # type: ignore[union-attr]
            "-n",
            NS,
            "logs",
            "hello",
            "-f",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert plugin.returncode == 0, plugin.stderr
    assert plugin.stdout == "hello from e2e-hello\n"
    events = cluster.kubectl(
        "get", "events", "-n", NS, "--field-selector", "involvedObject.name=hello"
    ).stdout
    assert "Scheduled" in events and "Completed" in events


def test_failed_job_reports_exit_code(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("fails", "sh", "-c", "exit 7"))
    st = wait_phase(cluster, "fails", {"Succeeded", "Failed"})
    assert (st["phase"], st["exitCode"]) == ("Failed", 7)


def test_node_selector_and_node_name(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("pick-b", "true", nodeSelector={"joblet.io/zone": "zone-b"}))
    apply(cluster, job_manifest("pick-a", "true", nodeName="node-a"))
    assert wait_phase(cluster, "pick-b", {"Succeeded"})["node"] == "node-b"
    assert wait_phase(cluster, "pick-a", {"Succeeded"})["node"] == "node-a"
    apply(cluster, job_manifest("pick-none", "true", nodeSelector={"joblet.io/zone": "nowhere"}))
    st = wait_phase(cluster, "pick-none", {"Pending", "Scheduled", "Running", "Succeeded"})
    assert st["phase"] == "Pending" and "nodeSelector" in str(st["message"]), st


def test_resource_fit_chooses_the_node_with_room(cluster: JobletCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "jobletnodes", "-o", "json").stdout)["items"]
    mem = {n["metadata"]["name"]: n["spec"]["allocatable"]["memoryMB"] for n in nodes}
    big = int(min(mem.values()) * 0.7)
    apply(
        cluster,
        job_manifest("hog-1", "sleep", "30", nodeName="node-a", resources={"maxMemory": big}),
    )
    wait_phase(cluster, "hog-1", {"Running"})
    apply(cluster, job_manifest("hog-2", "true", resources={"maxMemory": big}))
    assert wait_phase(cluster, "hog-2", {"Succeeded"})["node"] == "node-b"
    cluster.kubectl("delete", "-n", NS, "jobs.joblet.io", "hog-1", "--wait=true", "--timeout=60s")


def test_bad_manifest_rejected_by_server(cluster: JobletCluster) -> None:
    p = cluster.kubectl(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        check=False,
        input=job_manifest("bad", "true", resources={"maxMemory": -5}),
    )
    assert p.returncode != 0 and "maxMemory" in p.stderr


def test_retry_then_backoff_limit(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("retry", "sh", "-c", "exit 3", backoffLimit=2))
    st = wait_phase(cluster, "retry", {"Failed", "Succeeded"})
    assert (st["phase"], st["attempts"], st["exitCode"]) == ("Failed", 3, 3)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Failed"]["reason"] == "BackoffLimitExceeded"


def test_deadline_stops_job(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("deadline", "sleep", "300", activeDeadlineSeconds=2))
    st = wait_phase(cluster, "deadline", {"Failed", "Stopped", "Succeeded"}, timeout=30)
    conds = {c["type"]: c for c in st["conditions"]}
    assert st["phase"] == "Failed" and conds["Failed"]["reason"] == "DeadlineExceeded"
    uuid = st["jobUUID"]
    idx = 0 if st["node"] == "node-a" else 1
    assert next(j for j in agent_jobs(cluster, idx) if j.uuid == uuid).status == "STOPPED"


def test_ttl_deletes_finished_job(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("ttl", "true", ttlSecondsAfterFinished=1))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if cluster.kubectl("get", "-n", NS, "jobs.joblet.io", "ttl", check=False).returncode != 0:
            return
        time.sleep(0.3)
    raise AssertionError(
        f"Job with ttlSecondsAfterFinished=1 was not deleted\n{tail(cluster.operator_log)}"
    )


def test_delete_stops_running_job_on_its_agent(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("to-delete", "sleep", "300"))
    st = wait_phase(cluster, "to-delete", {"Running"})
    cluster.kubectl("delete", "-n", NS, "jobs.joblet.io", "to-delete", "--timeout=60s")
    idx = 0 if st["node"] == "node-a" else 1
    job = next(j for j in agent_jobs(cluster, idx) if j.uuid == st["jobUUID"])
    assert job.status == "STOPPED"


def test_secret_env_never_in_cr_operator_log_or_agent_state(cluster: JobletCluster) -> None:
    secret_value = "e2e-very-secret-4242"
    cluster.kubectl(
        "create", "secret", "generic", "creds", "-n", NS, f"--from-literal=token={secret_value}"
    )
    apply(
        cluster,
        job_manifest(
            "secret-job",
            "sh",
            "-c",
            "echo token=$TOKEN",
            secretEnv=[{"name": "TOKEN", "secretKeyRef": {"name": "creds", "key": "token"}}],
        ),
    )
    st = wait_phase(cluster, "secret-job", {"Succeeded", "Failed"})
    assert st["phase"] == "Succeeded"
    assert (
        secret_value
        not in cluster.kubectl("get", "-n", NS, "jobs.joblet.io", "secret-job", "-o", "yaml").stdout
    )
    assert secret_value not in read_text(cluster.operator_log)
    for a in cluster.agents:
        for root, _, files in os.walk(a.state_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    assert secret_value.encode() not in fh.read(), os.path.join(root, f)
        assert secret_value not in read_text(a.log)
    idx = 0 if st["node"] == "node-a" else 1
    with cluster.agent_channel(idx) as ch:
        out = b"".join(
            c.payload
            for c in pbg.JobServiceStub(ch).GetJobLogs(
                pb.GetJobLogsRequest(uuid=str(st["jobUUID"]))
            )
        )
    assert out == b"token=***\n"


def test_uploads_from_configmap(cluster: JobletCluster) -> None:
    cluster.kubectl(
        "create",
        "configmap",
        "scripts",
        "-n",
        NS,
        "--from-literal=run.sh=#!/bin/sh\necho uploaded-ok\n",
    )
    apply(cluster, job_manifest("upload-job", "sh", "run.sh", uploads=[{"configMap": "scripts"}]))
    st = wait_phase(cluster, "upload-job", {"Succeeded", "Failed"})
    assert st["phase"] == "Succeeded", st


def test_operator_sigkill_mid_dispatch_one_agent_job_per_attempt(cluster: JobletCluster) -> None:
    names = [f"burst-{i}" for i in range(100)]
    manifest = "\n---\n".join(job_manifest(n, "sh", "-c", "sleep 1; echo done") for n in names)
    assert cluster.cp is not None
    # kubectl creates the objects one by one while the operator dispatches them: apply in the
    # background and kill the operator as soon as dispatches are under way
    applying = subprocess.Popen(
        [
            str(cluster.cp.binaries.kubectl),
            f"--kubeconfig={cluster.cp.kubeconfig}",
            "apply",
            "-n",
            NS,
            "-f",
            "-",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert applying.stdin is not None
    applying.stdin.write(manifest.encode())
    applying.stdin.close()

    def dispatched() -> int:
        return sum(
            j.name.startswith(f"{NS}-burst-") for i in range(2) for j in agent_jobs(cluster, i)
        )

    deadline = time.monotonic() + 60
    while dispatched() < 3 and time.monotonic() < deadline:
        pass  # each check is a ListJobs round trip to both agents
    cluster.kill_operator()
    at_kill = dispatched()
    cluster.start_operator()
    assert applying.wait(120) == 0
    # the kill must land in the middle of the dispatches, or this test proves nothing
    assert 3 <= at_kill < len(names), at_kill
    for n in names:
        st = wait_phase(cluster, n, {"Succeeded", "Failed"}, timeout=90)
        assert (st["phase"], st["attempts"]) == ("Succeeded", 1), (n, st)
    on_agents = [j.name for i in range(2) for j in agent_jobs(cluster, i)]
    for n in names:
        assert on_agents.count(f"{NS}-{n}") == 1, n


def test_agent_lost_marks_node_and_retries_elsewhere(cluster: JobletCluster) -> None:
    apply(cluster, job_manifest("moves", "sh", "-c", "sleep 4; echo second-try-ok", backoffLimit=1))
    first = wait_phase(cluster, "moves", {"Running"})
    lost = str(first["node"])
    apply(cluster, job_manifest("pinned", "sleep", "600", nodeName=lost))
    wait_phase(cluster, "pinned", {"Running"})
    index = 0 if lost == "node-a" else 1
    cluster.kill_agent(index)
    deadline = time.monotonic() + 40
    ready = ""
    while time.monotonic() < deadline:
        ready = cluster.kubectl(
            "get",
            "jobletnode",
            lost,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ).stdout
        if ready == "False":
            break
        time.sleep(0.5)
    assert ready == "False", f"{lost} still Ready after its agent was killed"
    pinned = wait_phase(cluster, "pinned", {"Failed"}, timeout=30)
    conds = {c["type"]: c for c in pinned["conditions"]}
    assert conds["Failed"]["reason"] == "NodeLost"
    moved = wait_phase(cluster, "moves", {"Succeeded", "Failed"}, timeout=60)
    assert (moved["phase"], moved["attempts"]) == ("Succeeded", 2)
    assert moved["node"] != lost
    cluster.start_agent(index)
    cluster.wait_nodes_ready()


def test_volume_deletion_waits_for_its_jobs(cluster: JobletCluster) -> None:
    apply(
        cluster,
        json.dumps(
            {
                "apiVersion": "joblet.io/v1alpha1",
                "kind": "Volume",
                "metadata": {"name": "scratch"},
                "spec": {"size": "64MB", "type": "memory"},
            }
        ),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        vol = get(cluster, "scratch", "volumes.joblet.io")
        conds = (vol.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            break
        time.sleep(0.3)
    apply(cluster, job_manifest("holds-volume", "sleep", "300", volumes=["scratch"]))
    st = wait_phase(cluster, "holds-volume", {"Running"})
    cluster.kubectl("delete", "-n", NS, "volumes.joblet.io", "scratch", "--wait=false")
    deadline = time.monotonic() + 30
    waiting = ""
    while time.monotonic() < deadline and not waiting:
        conds = (get(cluster, "scratch", "volumes.joblet.io").get("status") or {}).get(
            "conditions"
        ) or []
        waiting = next((c["message"] for c in conds if c["type"] == "Deleting"), "")
        time.sleep(0.3)
    assert str(st["node"]) in waiting and "waiting to remove" in waiting, waiting
    cluster.kubectl("delete", "-n", NS, "jobs.joblet.io", "holds-volume", "--timeout=60s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (
            cluster.kubectl("get", "-n", NS, "volumes.joblet.io", "scratch", check=False).returncode
            != 0
        ):
            return
        time.sleep(0.3)
    raise AssertionError(
        f"Volume was not removed after its job ended\n{tail(cluster.operator_log)}"
    )
