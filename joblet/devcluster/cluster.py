"""A whole Joblet-on-Kubernetes installation on one machine: a control plane, N agent
"nodes" (each in its own network namespace, with mTLS and a limited kubeconfig), and the
operator running under its least-privilege ClusterRole. Used by the e2e tests, `make demo`
and `make bench`; everything it starts it stops, jobs included."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from joblet.devcluster.binaries import locate_binaries
from joblet.devcluster.controlplane import ControlPlane, ControlPlaneConfig
from joblet.devcluster.nodes import SimNetwork, SimNode, SimNodes
from joblet.devcluster.pki import CertificateAuthority, CertPair, create_ca

REPO = Path(__file__).resolve().parents[2]
AGENT_PORT = 50051
SYSTEM_NS = "joblet-system"
READY_JSONPATH = (
    "jsonpath={range .items[*]}{.metadata.name}="
    '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'
)


@dataclass
class AgentHandle:
    index: int
    node: SimNode
    name: str
    state_dir: Path
    log: Path
    cert: CertPair
    kubeconfig: Path
    labels: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.node.address}:{AGENT_PORT}"


@dataclass
class JobletCluster:
    nodes: int = 2
    node_grace_s: float = 6.0
    heartbeat_s: float = 1.0
    base_dir: Path | None = None
    agent_args: tuple[str, ...] = ("--stop-grace", "2")
    operator_log: Path = field(init=False)
    net: SimNetwork | None = None
    cp: ControlPlane | None = None
    agents: list[AgentHandle] = field(default_factory=list)
    operator: subprocess.Popen[bytes] | None = None
    _sim: SimNodes | None = None
    _own_dir: bool = False
    _ca: CertificateAuthority | None = None
    _operator_pair: CertPair | None = None

    # -- bring-up ---------------------------------------------------------------------------

    def start(self) -> JobletCluster:
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="joblet-cluster-"))
            self._own_dir = True
        self.operator_log = self.base_dir / "operator.log"
        try:
            self._sim = SimNodes(self.nodes)
            self.net = self._sim.create()
            self.cp = ControlPlane(
                config=ControlPlaneConfig(
                    bind_address=self.net.gateway, extra_sans=(self.net.gateway,)
                ),
                binaries=locate_binaries(build=False),
            )
            self.cp.start()
            self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
            ca = create_ca(self.base_dir / "agent-pki", "joblet-agent-ca")
            self._operator_secret(ca)
            for i, node in enumerate(self.net.nodes):
                self.agents.append(self._agent(i, node, ca))
            for a in self.agents:
                self.start_agent(a.index)
            self.start_operator()
            self.wait_nodes_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert self.cp is not None
        return self.cp.kubectl(*args, check=check, input=input)

    def _operator_secret(self, ca: CertificateAuthority) -> None:
        assert self.base_dir is not None
        client = ca.issue_client(self.base_dir / "agent-pki", "joblet-operator", units=("admin",))
        viewer = ca.issue_client(self.base_dir / "agent-pki", "joblet-viewer", units=("viewer",))
        self._operator_pair = client
        self._ca = ca
        self.kubectl("create", "namespace", SYSTEM_NS, check=False)
        for name, pair in (("joblet-operator-tls", client), ("joblet-viewer-tls", viewer)):
            self.kubectl(
                "-n",
                SYSTEM_NS,
                "create",
                "secret",
                "generic",
                name,
                f"--from-file=tls.crt={pair.cert}",
                f"--from-file=tls.key={pair.key}",
                f"--from-file=ca.crt={ca.cert}",
            )

    def _agent(self, i: int, node: SimNode, ca: CertificateAuthority) -> AgentHandle:
        assert self.base_dir is not None and self.cp is not None
        name = f"node-{chr(ord('a') + i)}"
        d = self.base_dir / name
        d.mkdir(parents=True, exist_ok=True)
        return AgentHandle(
            index=i,
            node=node,
            name=name,
            state_dir=d / "state",
            log=d / "agent.log",
            cert=ca.issue_server(d, f"agent-{name}", (node.address,)),
            kubeconfig=self.cp.user_kubeconfig(name, ["joblet:agents"]),
            labels={"joblet.io/zone": f"zone-{chr(ord('a') + i)}", "joblet.io/node-index": str(i)},
        )

    def start_agent(self, index: int) -> AgentHandle:
        a = self.agents[index]
        argv = [
            sys.executable,
            "-m",
            "node_agent.main",
            "--listen",
            a.address,
            "--state-dir",
            str(a.state_dir),
            "--tls-cert",
            str(a.cert.cert),
            "--tls-key",
            str(a.cert.key),
            "--tls-ca",
            str(self.ca.cert),
            "--kubeconfig",
            str(a.kubeconfig),
            "--node-name",
            a.name,
            "--heartbeat-interval",
            str(self.heartbeat_s),
            *[x for k, v in a.labels.items() for x in ("--node-label", f"{k}={v}")],
            *self.agent_args,
        ]
        with open(a.log, "ab") as log:
            # nsenter joins only the node's network namespace: `ip netns exec` would also give
            # the agent a fresh /sys without the host's cgroup mounts
            a.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{a.node.netns}", "--", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        return a

    @property
    def ca(self) -> CertificateAuthority:
        """The CA of the agents' certificates (not the Kubernetes one)."""
        assert self._ca is not None, "start() first"
        return self._ca

    def agent_channel(self, index: int) -> grpc.Channel:
        """An admin mTLS channel to one agent (what the operator uses), for checks and demos."""
        assert self._operator_pair is not None, "start() first"
        creds = grpc.ssl_channel_credentials(
            self.ca.cert.read_bytes(),
            self._operator_pair.key.read_bytes(),
            self._operator_pair.cert.read_bytes(),
        )
        return grpc.secure_channel(self.agents[index].address, creds)

    def kill_agent(self, index: int) -> None:
        a = self.agents[index]
        if a.proc is not None and a.proc.poll() is None:
            os.killpg(a.proc.pid, signal.SIGKILL)
            a.proc.wait()

    def start_operator(self) -> None:
        assert self.cp is not None
        kubeconfig = self.cp.user_kubeconfig("joblet-operator", [])
        with open(self.operator_log, "ab") as log:
            self.operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "joblet_operator.main",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--node-grace",
                    str(self.node_grace_s),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    def kill_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            os.killpg(self.operator.pid, signal.SIGKILL)
            self.operator.wait()

    def wait_nodes_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        want = {a.name for a in self.agents}
        while time.monotonic() < deadline:
            out = self.kubectl(
                "get",
                "jobletnodes",
                "-o",
                READY_JSONPATH,
                check=False,
            ).stdout
            ready = {line.split("=")[0] for line in out.split() if line.endswith("=True")}
            if want <= ready:
                return
            time.sleep(0.3)
        nodes = self.kubectl("get", "jobletnodes", "-o", "yaml", check=False).stdout
        raise TimeoutError(f"nodes not Ready after {timeout}s: {nodes}")

    # -- tear-down --------------------------------------------------------------------------

    def stop(self) -> None:
        self.kill_operator()
        for a in self.agents:
            self.kill_agent(a.index)
            _kill_jobs(a.state_dir)
        if self.cp is not None:
            with contextlib.suppress(Exception):
                self.cp.stop()
        if self._sim is not None:
            self._sim.destroy()
        if self.base_dir is not None:
            _unmount_below(self.base_dir)  # agents' volumes (loop devices go with them)
        if self._own_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _unmount_below(base: Path) -> None:
    """Agents leave their volumes mounted on purpose (they outlive restarts); a test cluster
    must not. Deepest first, so nested mounts come off before their parents."""
    prefix = str(base.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _kill_jobs(state_dir: Path) -> None:
    """Agents leave their jobs running on purpose; a test cluster must not."""
    jobs = state_dir / "jobs"
    if not jobs.is_dir():
        return
    for job in jobs.iterdir():
        pidfile = job / "run" / "supervisor.pid"
        for ctrl in Path("/sys/fs/cgroup").iterdir():
            procs = ctrl / "joblet" / job.name / "cgroup.procs"
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        # a killed supervisor never removes its job's cgroup: do it once the cgroup is empty
        for ctrl in Path("/sys/fs/cgroup").iterdir():
            cg = ctrl / "joblet" / job.name
            for _ in range(50):
                try:
                    cg.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
