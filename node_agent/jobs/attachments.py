"""What a job borrows from the node: networks, volumes, runtimes.

Each is an `Attachment`: it checks a spec before anything is stored (so a job naming a
missing volume is refused and leaves nothing behind), contributes mounts, environment and
a network plan when the job launches, and gets back what the job held when it ends. The
job manager knows only this protocol; each subsystem keeps its own state on disk and
rebuilds what is in use from the jobs still active after an agent restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from node_agent.isolation.plan import Mount, NetworkPlan
from node_agent.jobs.model import JobRecord, JobSpec


@dataclass(frozen=True)
class Contribution:
    mounts: tuple[Mount, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    network: NetworkPlan | None = None


class Attachment(Protocol):
    name: str

    def check(self, spec: JobSpec) -> None:
        """Raise InvalidArgument / NotFound / FailedPrecondition if the job can't have it."""

    async def acquire(self, spec: JobSpec) -> Contribution:
        """Reserve what the job uses (an address, a volume's use count) just before launch."""

    async def release(self, uuid: str) -> None:
        """The job ended or failed to start; idempotent."""

    async def recover(self, active: list[JobRecord]) -> None:
        """At agent start: `active` are the jobs still scheduled or running. (Persistent
        state is loaded by the constructor, so `release` works before this is called.)"""
