"""The Kubernetes demo: a local control plane, the operator and two agent "nodes" (each in its
own network namespace), the examples applied with kubectl, what they became, a job's logs.
Everything is torn down at the end; --keep holds it up until Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from joblet.devcluster.cluster import REPO, JobletCluster

NS = "demo"
JOB_EXAMPLES = (
    "job-hello.yaml",
    "job-limits.yaml",
    "job-secret.yaml",
    "job-uploads.yaml",
    "job-retry.yaml",
    "job-deadline.yaml",
    "network.yaml",
    "volume.yaml",
)
FINAL = {"Succeeded", "Failed", "Stopped"}


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(c: JobletCluster, *args: str) -> None:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    print(c.kubectl(*args, check=False).stdout, end="", flush=True)


def wait_jobs(c: JobletCluster, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = json.loads(c.kubectl("get", "jj", "-A", "-o", "json").stdout)["items"]
        pending = [
            j["metadata"]["name"]
            for j in items
            if (j.get("status") or {}).get("phase") not in FINAL
        ]
        if not pending:
            return
        time.sleep(0.5)
    print(f"still running after {timeout:.0f}s: {', '.join(pending)}")


def run(keep: bool = False) -> int:
    if os.geteuid() != 0:
        print("the demo runs real agents, which need root (namespaces, cgroups, mounts)")
        return 1
    say("starting etcd, kube-apiserver, kube-controller-manager, two agent nodes and the operator")
    t = time.monotonic()
    c = JobletCluster(nodes=2).start()
    try:
        assert c.cp is not None
        print(f"up in {time.monotonic() - t:.1f} s; kubeconfig {c.cp.kubeconfig}")
        show(c, "get", "jobletnodes")
        c.kubectl("create", "namespace", NS)
        c.kubectl(
            "label", "jobletnode", "--all", "joblet.io/network=batch", "joblet.io/runtimes=tools"
        )
        say("kubectl apply the examples")
        for name in JOB_EXAMPLES:
            print(f"$ kubectl apply -n {NS} -f examples/{name}")
            print(c.kubectl("apply", "-n", NS, "-f", str(REPO / "examples" / name)).stdout, end="")
        print("$ kubectl apply -f examples/runtime-configmap.yaml")
        print(
            c.kubectl("apply", "-f", str(REPO / "examples" / "runtime-configmap.yaml")).stdout,
            end="",
        )
        say("waiting for the Jobs to finish")
        wait_jobs(c)
        say("what they became")
        show(c, "get", "joblet", "-A")
        say("a Job's output, through the kubectl plugin")
        for job in ("hello", "with-secret"):
            print(f"$ kubectl joblet logs -n {NS} {job}")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "joblet_operator.plugin",
                    "--kubeconfig",
                    str(c.cp.kubeconfig),
                    "-n",
                    NS,
                    "logs",
                    job,
                    "-f",
                ],
                cwd=REPO,
                check=False,
            )
        if keep:
            say("left running; Ctrl-C to tear it all down")
            print(f"export KUBECONFIG={c.cp.kubeconfig}")
            print(f"export PATH={c.cp.binaries.kubectl.parent}:$PATH")
            print("kubectl get joblet -A; kubectl describe jj -n demo hello")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        say("tearing down")
        c.stop()
    return 0
