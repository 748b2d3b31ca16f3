"""Simulated nodes: each network namespace is its own host with its own address on a private
bridge, nodes reach each other and the host reaches them, and everything is removed afterwards."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time

import pytest

from joblet.devcluster import ControlPlane, ControlPlaneConfig
from joblet.devcluster.nodes import SimNodes, list_netns
from tests.e2e.conftest import SimNodesFactory

pytestmark = pytest.mark.root

_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7700))
s.listen()
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(f"{sys.argv[1]} sees {peer[0]}\\n".encode())
    c.close()
"""

_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], 7700), timeout=5) as c:
    print(c.makefile().readline().strip())
"""


_CONNECT = """
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
"""


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_nodes_are_separate_hosts_on_one_bridge(sim_nodes: SimNodesFactory) -> None:
    net = sim_nodes(3)
    assert len(net.bridge) <= 15
    subnet = ipaddress.ip_network(net.subnet)
    assert subnet.is_private and subnet.prefixlen == 24
    assert [n.netns for n in net.nodes] == [f"{net.nodes[0].netns[:-2]}-{i}" for i in range(3)]
    assert all(n.netns.startswith("jn-") for n in net.nodes)
    addresses = [n.address for n in net.nodes]
    assert len(set(addresses)) == 3
    assert all(ipaddress.ip_address(a) in subnet for a in addresses)
    assert set(n.netns for n in net.nodes) <= set(list_netns())

    server_node, client_node = net.nodes[1], net.nodes[0]
    server = subprocess.Popen(
        server_node.exec_argv([sys.executable, "-c", _SERVER, server_node.address]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        # node -> node, across the bridge, from the client's own address
        seen = subprocess.run(
            client_node.exec_argv([sys.executable, "-c", _CLIENT, server_node.address]),
            capture_output=True, text=True, check=True, timeout=20,
        ).stdout.strip()  # fmt: skip
        assert seen == f"{server_node.address} sees {client_node.address}"
        # host -> node, from the host's address on the bridge
        seen = subprocess.run(
            [sys.executable, "-c", _CLIENT, server_node.address],
            capture_output=True, text=True, check=True, timeout=20,
        ).stdout.strip()  # fmt: skip
        assert seen == f"{server_node.address} sees {net.gateway}"
        # a node only has its own loopback and eth0
        links = subprocess.run(
            client_node.exec_argv(["ip", "-o", "link"]), capture_output=True, text=True, check=True
        ).stdout
        assert [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()] == [
            "lo",
            "eth0",
        ]
    finally:
        server.kill()
        server.wait()


def test_destroy_removes_namespaces_links_and_leftover_processes() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    before_ns, before_links = set(list_netns()), _links()
    nodes = SimNodes(2)
    with nodes as net:
        assert {n.netns for n in net.nodes} <= set(list_netns())
        assert net.bridge in _links()
        leftover = subprocess.Popen(net.nodes[0].exec_argv(["sleep", "600"]))
        time.sleep(0.2)
    assert leftover.wait(timeout=10) != 0, "process left in a namespace must be killed"
    assert set(list_netns()) == before_ns
    assert _links() == before_links
    nodes.destroy()  # idempotent


@pytest.mark.cluster
def test_node_reaches_an_api_server_bound_to_the_bridge(sim_nodes: SimNodesFactory) -> None:
    """Agents in nodes write JobletNode objects: they reach an API server on the bridge address."""
    net = sim_nodes(1)
    node = net.nodes[0]
    with ControlPlane(ControlPlaneConfig(bind_address=net.gateway)) as cp:
        assert cp.state.api_url.startswith(f"https://{net.gateway}:")
        kubeconfig = cp.user_kubeconfig("node-agent", ["system:authenticated"])
        res = subprocess.run(
            node.exec_argv([str(cp.binaries.kubectl), f"--kubeconfig={kubeconfig}",
                            "get", "--raw=/readyz"]),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert (res.returncode, res.stdout.strip()) == (0, "ok"), res.stderr
        # the node is a separate host: etcd, on the host's loopback, is out of its reach
        port = cp.state.etcd_url.rsplit(":", 1)[1]
        probe = [sys.executable, "-c", _CONNECT, "127.0.0.1", port]
        assert subprocess.run(probe, timeout=30, check=False).returncode == 0
        unreachable = subprocess.run(node.exec_argv(probe), capture_output=True, timeout=30)
        assert unreachable.returncode != 0
