"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) run as plain
processes from binaries built by ``hack/k8s/build.sh``, plus simulated "nodes" in network
namespaces. It exists so the operator is tested against a real API server, and so ``make demo``
and ``make cluster-up`` have one to talk to on machines without Docker."""

from joblet.devcluster.binaries import Binaries, locate_binaries
from joblet.devcluster.controlplane import ControlPlane, ControlPlaneConfig, ControlPlaneState

__all__ = [
    "Binaries",
    "ControlPlane",
    "ControlPlaneConfig",
    "ControlPlaneState",
    "locate_binaries",
]
