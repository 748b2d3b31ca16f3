"""Pure node choice for a Job: filters in the order a person would check them, so the
reason a Job stays Pending names the first thing that is missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from joblet_operator.model import JobSpec, NodeView, agent_volume_name


@dataclass(frozen=True)
class Usage:
    """What jobs already placed on a node hold (percent of a core, MB)."""

    cpu: int = 0
    memory_mb: int = 0
    jobs: int = 0


@dataclass(frozen=True)
class Decision:
    node: NodeView | None
    reason: str  # why none fits, when node is None


def _fits(job: JobSpec, node: NodeView, used: Usage) -> bool:
    if job.max_cpu and used.cpu + job.max_cpu > node.cpu_cores * 100:
        return False
    return not (job.max_memory and used.memory_mb + job.max_memory > node.memory_mb)


def choose_node(
    job: JobSpec,
    namespace: str,
    nodes: Sequence[NodeView],
    usage: Mapping[str, Usage],
    avoid: frozenset[str] = frozenset(),
) -> Decision:
    """The Ready node that satisfies the job, least loaded first; `avoid` (nodes a previous
    attempt failed on) is used only when nothing else fits."""
    candidates = [n for n in nodes if n.ready]
    if not candidates:
        return Decision(None, "no Ready JobletNode")
    if job.node_name:
        candidates = [n for n in candidates if n.name == job.node_name]
        if not candidates:
            return Decision(None, f"node {job.node_name!r} is not Ready or does not exist")
    if job.node_selector:
        want = dict(job.node_selector)
        candidates = [
            n for n in candidates if all(dict(n.labels).get(k) == v for k, v in want.items())
        ]
        if not candidates:
            sel = ",".join(f"{k}={v}" for k, v in job.node_selector)
            return Decision(None, f"no Ready node matches nodeSelector {sel}")
    if job.network and job.network not in ("bridge", "isolated", "none"):
        candidates = [n for n in candidates if job.network in n.networks]
        if not candidates:
            return Decision(None, f"no Ready node has network {job.network!r}")
    for vol in job.volumes:
        name = agent_volume_name(namespace, vol)
        candidates = [n for n in candidates if name in n.volumes]
        if not candidates:
            return Decision(None, f"no Ready node has volume {vol!r}")
    if job.runtime:
        candidates = [n for n in candidates if job.runtime in n.runtimes]
        if not candidates:
            return Decision(None, f"no Ready node has runtime {job.runtime!r}")
    fitting = [n for n in candidates if _fits(job, n, usage.get(n.name, Usage()))]
    if not fitting:
        return Decision(
            None,
            f"no Ready node has room for maxCPU={job.max_cpu}% maxMemory={job.max_memory}MB",
        )
    preferred = [n for n in fitting if n.name not in avoid] or fitting

    def load(n: NodeView) -> tuple[float, int, str]:
        u = usage.get(n.name, Usage())
        cpu = u.cpu / max(1, n.cpu_cores * 100)
        mem = u.memory_mb / max(1, n.memory_mb)
        return (max(cpu, mem), u.jobs, n.name)

    return Decision(min(preferred, key=load), "")
