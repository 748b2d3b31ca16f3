"""What this agent tells the cluster about itself, decided without touching the network.

The heartbeat loop publishes a JobletNode (address, capacity, inventories) and renews a Lease.
Everything that can be decided from plain values lives here — the resource bodies, the reserve
subtracted from capacity, and whether the object in the cluster already says what we would
write — so it is tested without an API server, and the loop only sends what these functions
return. Names and fields follow the operator contract (shared-operator.md): group joblet.io,
Lease ``joblet-node-<name>`` in ``joblet-system``, Ready condition with reason AgentReady.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GROUP = "joblet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "JobletNode"
PLURAL = "jobletnodes"
LEASE_NAMESPACE = "joblet-system"
LEASE_PREFIX = "joblet-node-"
LEASE_DURATION_S = 40
HOSTNAME_LABEL = "joblet.io/hostname"
READY = "Ready"
REASON_READY = "AgentReady"


@dataclass(frozen=True)
class Resources:
    """CPU in whole cores, memory in MB (the units of JobletNode spec.capacity)."""

    cpu: int
    memory_mb: int

    def to_spec(self) -> dict[str, int]:
        return {"cpu": self.cpu, "memoryMB": self.memory_mb}


@dataclass(frozen=True)
class NodeInventory:
    """Names of what the node offers jobs; sorted so that order never looks like a change."""

    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, networks: Iterable[str] = (), volumes: Iterable[str] = (), runtimes: Iterable[str] = ()
    ) -> NodeInventory:
        return cls(
            tuple(sorted(set(networks))), tuple(sorted(set(volumes))), tuple(sorted(set(runtimes)))
        )


@dataclass(frozen=True)
class NodeFacts:
    """Everything the JobletNode's metadata and spec are made from."""

    name: str
    node_id: str
    address: str
    hostname: str
    capacity: Resources
    allocatable: Resources
    labels: tuple[tuple[str, str], ...] = ()
    inventory: NodeInventory = field(default_factory=NodeInventory)
    agent_version: str = ""


def capacity_of(cpu_count: int | None, memory_bytes: int) -> Resources:
    """The host's capacity from ``os.cpu_count()`` and total memory in bytes."""
    return Resources(cpu=max(cpu_count or 1, 1), memory_mb=max(memory_bytes // (1 << 20), 0))


def allocatable_of(capacity: Resources, reserve_cpu: int, reserve_memory_mb: int) -> Resources:
    """What jobs may use: capacity minus what is kept for the system, never below zero."""
    if reserve_cpu < 0 or reserve_memory_mb < 0:
        raise ValueError("reserves cannot be negative")
    return Resources(
        cpu=max(capacity.cpu - reserve_cpu, 0),
        memory_mb=max(capacity.memory_mb - reserve_memory_mb, 0),
    )


def parse_label(text: str) -> tuple[str, str]:
    """``k=v`` from a ``--node-label`` flag; the key must be non-empty."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"label {text!r} is not of the form key=value")
    return key.strip(), value.strip()


def advertise_address(listen_host: str, port: int, fallback_host: str) -> str:
    """What the operator dials when ``--advertise-address`` is not given: the listen address,
    with a wildcard host (``0.0.0.0``, ``::``, empty) replaced by ``fallback_host``."""
    host = listen_host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = fallback_host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def lease_name(node: str) -> str:
    return f"{LEASE_PREFIX}{node}"


def node_labels(facts: NodeFacts) -> dict[str, str]:
    return {**dict(facts.labels), HOSTNAME_LABEL: facts.hostname}


def node_spec(facts: NodeFacts) -> dict[str, Any]:
    return {
        "address": facts.address,
        "nodeID": facts.node_id,
        "capacity": facts.capacity.to_spec(),
        "allocatable": facts.allocatable.to_spec(),
        "networks": list(facts.inventory.networks),
        "volumes": list(facts.inventory.volumes),
        "runtimes": list(facts.inventory.runtimes),
        "agentVersion": facts.agent_version,
    }


def node_body(facts: NodeFacts) -> dict[str, Any]:
    """The whole JobletNode to create when none exists."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": facts.name, "labels": node_labels(facts)},
        "spec": node_spec(facts),
    }


def node_patch(existing: Mapping[str, Any], facts: NodeFacts) -> dict[str, Any] | None:
    """The merge patch that makes ``existing`` say what ``facts`` say, or None if it already
    does. Labels we do not own (set by an admin) are left alone; spec is ours entirely."""
    patch: dict[str, Any] = {}
    have_labels = (existing.get("metadata") or {}).get("labels") or {}
    want_labels = node_labels(facts)
    changed = {k: v for k, v in want_labels.items() if have_labels.get(k) != v}
    if changed:
        patch["metadata"] = {"labels": changed}
    want_spec = node_spec(facts)
    if existing.get("spec") != want_spec:
        patch["spec"] = want_spec
    return patch or None


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with a Z, as Kubernetes writes date-time fields."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(t: datetime) -> str:
    """MicroTime (Lease renewTime/acquireTime) keeps microseconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ready_status(
    existing: Mapping[str, Any], now: datetime, reason: str = REASON_READY
) -> dict[str, Any]:
    """The status the agent writes on start and when it republishes: Ready=True. The
    transition time is kept if the node was already Ready, as the condition convention asks."""
    status = existing.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    previous = next((c for c in conditions if c.get("type") == READY), None)
    since = format_time(now)
    if (
        previous is not None
        and previous.get("status") == "True"
        and previous.get("lastTransitionTime")
    ):
        since = str(previous["lastTransitionTime"])
    generation = int((existing.get("metadata") or {}).get("generation") or 0)
    ready = {
        "type": READY,
        "status": "True",
        "reason": reason,
        "message": "agent registered and renewing its heartbeat Lease",
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    others = [dict(c) for c in conditions if c.get("type") != READY]
    return {"conditions": [*others, ready], "lastHeartbeatTime": format_time(now)}


def lease_body(node: str, now: datetime) -> dict[str, Any]:
    """The heartbeat Lease to create when none exists."""
    stamp = format_micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": lease_name(node), "namespace": LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "acquireTime": stamp,
            "renewTime": stamp,
        },
    }


def lease_renewal(node: str, now: datetime) -> dict[str, Any]:
    """The merge patch of one heartbeat (holder and duration too, in case someone changed them)."""
    return {
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": format_micro_time(now),
        }
    }


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts while the API server is unreachable: doubling from ``first``
    up to ``limit``; back to ``first`` after a success."""

    first: float
    limit: float = 60.0

    def after(self, failures: int) -> float:
        if failures <= 0:
            return self.first
        delay: float = self.first * 2.0 ** min(failures - 1, 30)
        return min(delay, max(self.limit, self.first))
