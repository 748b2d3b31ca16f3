"""What every handler shares: API clients, agent channels, in-flight placements."""

from __future__ import annotations

from dataclasses import dataclass, field

from joblet_operator.agents import Agents
from joblet_operator.kube import Kube
from joblet_operator.scheduling import Usage


@dataclass(frozen=True)
class Placement:
    node: str
    cpu: int
    memory_mb: int


@dataclass
class Context:
    kube: Kube
    agents: Agents
    node_grace_s: float
    placements: dict[str, Placement] = field(default_factory=dict)  # "ns/name" → where it runs

    def usage(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for p in self.placements.values():
            u = out.get(p.node, Usage())
            out[p.node] = Usage(u.cpu + p.cpu, u.memory_mb + p.memory_mb, u.jobs + 1)
        return out
