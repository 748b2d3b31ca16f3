"""Fixtures of the e2e tier: one real control plane per session (binaries from ``make k8s-bins``)
and a factory of simulated nodes in network namespaces. Both are torn down whatever the outcome."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from joblet.devcluster import ControlPlane
from joblet.devcluster.binaries import BinariesMissing, locate_binaries
from joblet.devcluster.cluster import JobletCluster
from joblet.devcluster.nodes import SimNetwork, SimNodes


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver + kube-controller-manager on loopback."""
    try:
        binaries = locate_binaries(build=os.environ.get("JOBLET_K8S_BUILD") == "1")
    except BinariesMissing as exc:
        pytest.fail(f"{exc} (or set JOBLET_K8S_BUILD=1 to build them now)", pytrace=False)
    cp = ControlPlane(binaries=binaries)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


SimNodesFactory = Callable[[int], SimNetwork]


@pytest.fixture
def sim_nodes() -> Iterator[SimNodesFactory]:
    """``sim_nodes(n)`` makes a bridge and ``n`` namespaced nodes ``jn-<short>-<i>``."""
    if os.geteuid() != 0:
        pytest.skip("simulated nodes need root (network namespaces)")
    if shutil.which("ip") is None:
        pytest.skip("simulated nodes need iproute2's `ip`")
    made: list[SimNodes] = []

    def make(count: int) -> SimNetwork:
        nodes = SimNodes(count)
        made.append(nodes)
        try:
            return nodes.create()
        except BaseException:
            nodes.destroy()
            raise

    try:
        yield make
    finally:
        for nodes in reversed(made):
            nodes.destroy()


@pytest.fixture(scope="session")
def joblet_cluster() -> Iterator[JobletCluster]:
    """Control plane + two agent nodes (network namespaces, mTLS) + the operator under its
    least-privilege user: the whole product on one machine."""
    if os.geteuid() != 0:
        pytest.skip("needs root: agents create namespaces and cgroups")
    c = JobletCluster(nodes=2, node_grace_s=5.0).start()
    try:
        yield c
    finally:
        c.stop()
