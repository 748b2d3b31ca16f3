"""The node registry against a real API server: an agent holding only the agent identity's
rights (Group joblet:agents) publishes its JobletNode and renews its Lease, recreates them when
deleted, keeps serving jobs when the API server is unreachable or refuses it; and the operator's
node-health handler (run by Kopf as a separate process) turns Ready off when the heartbeat stops
and on again when it resumes — both after a restart and after a freeze, where only the operator
can bring Ready back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from joblet.devcluster import ControlPlane
from node_agent.registry.heartbeat import Heartbeat, inventory_sources
from node_agent.registry.kube import NodeApi, load_config
from node_agent.registry.node import NodeFacts, Resources
from tests.support.agent import REPO, Agent, free_port

pytestmark = pytest.mark.cluster

FIXTURES = Path(__file__).parent / "fixtures"
CRDS = Path(REPO) / "crds"
NODE_HEALTH = Path(REPO) / "operator" / "joblet_operator" / "nodes.py"
GRACE_S = 3
T = TypeVar("T")


def _first(*paths: Path) -> Path:
    return next(p for p in paths if p.exists())


def _eventually(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "it") -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None and got is not False:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.2)


def _get(cp: ControlPlane, *args: str) -> dict[str, Any] | None:
    r = cp.kubectl("get", *args, "-o", "json", check=False)
    if r.returncode != 0:
        return None
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def _node(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    return _get(cp, "jobletnode", name)


def _lease(cp: ControlPlane, node: str) -> dict[str, Any] | None:
    return _get(cp, "lease", "-n", "joblet-system", f"joblet-node-{node}")


def _ready(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    node = _node(cp, name) or {}
    conds = (node.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), None)


def _ready_is(cp: ControlPlane, name: str, status: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        c = _ready(cp, name)
        return c if c is not None and c.get("status") == status else None

    return probe


def _forget(cp: ControlPlane, node: str) -> None:
    """Removes a test node and its Lease, also when a (stopped) operator left its finalizer."""
    cp.kubectl(
        "patch",
        "jobletnode",
        node,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
        check=False,
    )
    cp.kubectl("delete", "jobletnode", node, "--ignore-not-found", "--wait=false", check=False)
    cp.kubectl(
        "delete",
        "lease",
        "-n",
        "joblet-system",
        f"joblet-node-{node}",
        "--ignore-not-found",
        check=False,
    )


@pytest.fixture(scope="module")
def registry(control_plane: ControlPlane) -> ControlPlane:
    """The JobletNode CRD and the agents' RBAC: the project's own (crds/) when present."""
    if os.geteuid() != 0:
        pytest.skip("the agent runs as root")
    crd = _first(CRDS / "joblet.io_jobletnodes.yaml", FIXTURES / "jobletnode-crd.yaml")
    rbac = _first(CRDS / "rbac.yaml", FIXTURES / "registry-rbac.yaml")
    control_plane.kubectl("apply", "-f", str(crd))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/jobletnodes.joblet.io", "--timeout=30s"
    )
    control_plane.kubectl("apply", "-f", str(rbac))
    return control_plane


@pytest.fixture
def agent_kubeconfig(registry: ControlPlane) -> Path:
    return registry.user_kubeconfig("node-agent-e2e", ["joblet:agents"])


@pytest.fixture
def agents(tmp_path: Path, registry: ControlPlane) -> Iterator[Callable[..., Agent]]:
    """``agents(node, *flags)`` starts an agent registering as ``node``; all stopped and their
    JobletNodes and Leases removed at the end."""
    started: list[tuple[Agent, str]] = []

    def start(node: str, kubeconfig: Path, *flags: str, state: str = "") -> Agent:
        a = Agent(
            str(tmp_path / (state or node)),
            (
                "--kubeconfig",
                str(kubeconfig),
                "--node-name",
                node,
                "--heartbeat-interval",
                "1",
                *flags,
            ),
        )
        started.append((a, node))
        return a.start()

    try:
        yield start
    finally:
        for a, _ in started:
            if a.proc is not None and a.proc.poll() is None:
                os.kill(a.proc.pid, signal.SIGCONT)
            a.stop()
        for node in {n for _, n in started}:
            _forget(registry, node)


@pytest.fixture
def node_health(registry: ControlPlane, tmp_path: Path) -> Iterator[Path]:
    """The operator's node-health handlers under Kopf (admin credentials, grace 3 s)."""
    log_path = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(registry.kubeconfig), "JOBLET_NODE_GRACE": str(GRACE_S)}
    env["PYTHONPATH"] = os.pathsep.join([REPO, str(Path(REPO) / "operator")])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "-A", str(NODE_HEALTH)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
    try:
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_agent_registers_itself_with_agent_rights_only(
    registry: ControlPlane, agent_kubeconfig: Path, agents: Callable[..., Agent]
) -> None:
    a = agents(
        "node-a",
        agent_kubeconfig,
        "--node-label",
        "zone=z1",
        "--node-label",
        "disk=ssd",
        "--reserve-cpu",
        "1",
        "--reserve-memory-mb",
        "256",
    )
    node = _eventually(lambda: _node(registry, "node-a"), what="JobletNode node-a")
    spec, labels = node["spec"], node["metadata"]["labels"]
    assert spec["address"] == a.listen
    cpus = os.cpu_count() or 1
    mem_mb = psutil.virtual_memory().total // (1 << 20)
    assert spec["capacity"] == {"cpu": cpus, "memoryMB": mem_mb}
    assert spec["allocatable"] == {"cpu": max(cpus - 1, 0), "memoryMB": mem_mb - 256}
    # a fresh agent has its built-in networks and nothing else
    assert (spec["networks"], spec["volumes"], spec["runtimes"]) == (["bridge", "isolated"], [], [])
    assert spec["nodeID"] and spec["agentVersion"]
    assert labels["zone"] == "z1" and labels["disk"] == "ssd"
    assert labels["joblet.io/hostname"] == os.uname().nodename
    ready = _eventually(_ready_is(registry, "node-a", "True"), what="Ready=True")
    assert ready["reason"] == "AgentReady"

    lease = _eventually(lambda: _lease(registry, "node-a"), what="Lease")
    assert lease["spec"]["holderIdentity"] == "node-a"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    first = lease["spec"]["renewTime"]
    renewed = _eventually(
        lambda: (_lease(registry, "node-a") or {}).get("spec", {}).get("renewTime") != first,
        timeout=10,
        what="a Lease renewal",
    )
    assert renewed

    # The identity really is limited: it cannot list nodes nor read other namespaces' Leases.
    denied = registry.kubectl("get", "jobletnodes", kubeconfig=agent_kubeconfig, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    denied = registry.kubectl(
        "get", "lease", "-n", "default", "x", kubeconfig=agent_kubeconfig, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    status, out = a.run_to_end("/bin/echo", "still serving")
    assert (status.exit_code, out) == (0, b"still serving\n")


def test_deleted_node_and_lease_come_back(
    registry: ControlPlane, agent_kubeconfig: Path, agents: Callable[..., Agent]
) -> None:
    agents("node-b", agent_kubeconfig)
    old = _eventually(lambda: _node(registry, "node-b"), what="JobletNode")
    _eventually(lambda: _lease(registry, "node-b"), what="Lease")
    registry.kubectl("delete", "lease", "-n", "joblet-system", "joblet-node-node-b")
    registry.kubectl("delete", "jobletnode", "node-b")
    new = _eventually(
        lambda: (
            (n := _node(registry, "node-b")) is not None
            and n["metadata"]["uid"] != old["metadata"]["uid"]
            and n
        ),
        timeout=15,
        what="JobletNode recreated",
    )
    assert new["spec"] == old["spec"]
    _eventually(_ready_is(registry, "node-b", "True"), timeout=15, what="Ready again")
    _eventually(lambda: _lease(registry, "node-b"), timeout=15, what="Lease recreated")

    # Someone rewrites the spec: the agent puts its own facts back.
    registry.kubectl(
        "patch", "jobletnode", "node-b", "--type=merge", "-p", '{"spec":{"address":"9.9.9.9:1"}}'
    )
    _eventually(
        lambda: (_node(registry, "node-b") or {}).get("spec") == old["spec"],
        timeout=15,
        what="spec restored",
    )


def _unreachable_kubeconfig(source: Path, dest: Path) -> Path:
    doc = yaml.safe_load(source.read_text())
    for c in doc["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dest.write_text(yaml.safe_dump(doc))
    return dest


@pytest.mark.parametrize("trouble", ["unreachable", "forbidden"])
def test_agent_keeps_serving_when_the_api_server_fails_it(
    trouble: str,
    registry: ControlPlane,
    agent_kubeconfig: Path,
    agents: Callable[..., Agent],
    tmp_path: Path,
) -> None:
    if trouble == "unreachable":
        kc = _unreachable_kubeconfig(agent_kubeconfig, tmp_path / "nowhere.kubeconfig")
        expect = "unreachable"
    else:
        kc = registry.user_kubeconfig("stranger", [])  # no group: no rights
        expect = "check the agent's RBAC"
    a = agents(f"node-{trouble}", kc)
    _eventually(lambda: "retrying in" in a.log() and expect in a.log(), timeout=15, what="log")
    status, out = a.run_to_end("/bin/echo", "fine")
    assert (status.exit_code, out) == (0, b"fine\n")
    time.sleep(2)  # a few more failed beats
    assert a.proc is not None and a.proc.poll() is None
    assert "Traceback" not in a.log()
    assert _node(registry, f"node-{trouble}") is None
    # Backing off: far fewer attempts than one per second.
    assert a.log().count("retrying in") <= 5


def test_operator_marks_lapsed_nodes_not_ready_and_back(
    registry: ControlPlane,
    agent_kubeconfig: Path,
    agents: Callable[..., Agent],
    node_health: Path,
) -> None:
    a = agents("node-c", agent_kubeconfig)
    _eventually(_ready_is(registry, "node-c", "True"), what="Ready=True")
    assert a.proc is not None

    # Frozen agent: the Lease stops; the operator declares the node lapsed.
    os.kill(a.proc.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    lapsed = _eventually(
        _ready_is(registry, "node-c", "False"),
        timeout=30,
        what=f"Ready=False\n{node_health.read_text()[-3000:]}",
    )
    assert time.monotonic() - stopped_at >= GRACE_S - 1
    assert lapsed["reason"] == "HeartbeatLapsed"
    assert "no heartbeat for" in lapsed["message"] and f"grace {GRACE_S}s" in lapsed["message"]
    # Thawed: the agent only renews its Lease (it wrote Ready once at start); the operator
    # alone brings Ready back.
    os.kill(a.proc.pid, signal.SIGCONT)
    back = _eventually(_ready_is(registry, "node-c", "True"), timeout=20, what="Ready again")
    assert back["reason"] == "AgentReady"
    assert back["message"].startswith("heartbeat renewed")
    assert back["lastTransitionTime"] >= lapsed["lastTransitionTime"]
    status = (_node(registry, "node-c") or {})["status"]
    assert status["lastHeartbeatTime"]

    # Killed agent: lapses again; a restarted agent on the same state dir is Ready again.
    a.kill9()
    _eventually(_ready_is(registry, "node-c", "False"), timeout=30, what="Ready=False after kill")
    agents("node-c", agent_kubeconfig, state="node-c")
    _eventually(_ready_is(registry, "node-c", "True"), timeout=20, what="Ready after restart")
    # And it stays Ready while the heartbeat continues (several grace periods).
    time.sleep(GRACE_S * 2)
    ready = _ready(registry, "node-c")
    assert ready is not None and ready["status"] == "True"


class _Names:
    """Stands in for a networks/volumes/runtimes attachment: only the `Inventory` part."""

    def __init__(self, name: str, names: list[str]) -> None:
        self.name = name
        self.current = names

    def names(self) -> list[str]:
        return list(self.current)


def test_inventory_changes_are_republished_and_nothing_else_is_written(
    registry: ControlPlane, agent_kubeconfig: Path
) -> None:
    """The heartbeat in-process against the API server: a new network name reaches the
    JobletNode at the next beat; beats without a change leave the JobletNode untouched."""
    nets = _Names("networks", ["web"])
    vols = _Names("volumes", [])
    sources = inventory_sources([nets, vols, _Names("runtimes", ["py"]), object()])
    assert set(sources) == {"networks", "volumes", "runtimes"}
    facts = NodeFacts(
        name="node-inv",
        node_id="inv",
        address="127.0.0.1:1",
        hostname="host-inv",
        capacity=Resources(2, 1000),
        allocatable=Resources(2, 1000),
    )

    async def scenario() -> None:
        hb = Heartbeat(NodeApi(load_config(str(agent_kubeconfig))), facts, sources, interval=1)
        try:
            await hb.beat()
            first = _node(registry, "node-inv")
            assert first is not None
            assert (first["spec"]["networks"], first["spec"]["runtimes"]) == (["web"], ["py"])
            await hb.beat()
            await hb.beat()
            same = _node(registry, "node-inv")
            assert same is not None
            assert same["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            nets.current = ["web", "db"]
            vols.current = ["ns-data"]
            await hb.beat()
            changed = _node(registry, "node-inv")
            assert changed is not None
            assert changed["spec"]["networks"] == ["db", "web"]
            assert changed["spec"]["volumes"] == ["ns-data"]
            assert hb.beats == 4
        finally:
            await hb.stop()

    try:
        asyncio.run(scenario())
    finally:
        _forget(registry, "node-inv")
