"""Joining a job's network namespace to a host bridge (the network plan of a launch).

Two halves, run around one synchronisation point: `host_side` runs in the supervisor (in
the host's network namespace) once the job's process exists, creating the veth pair with
its job end inside the job's namespace; `job_side` runs in the job's process, still root,
after it was released, and configures that end (address, link, default route).
"""

from __future__ import annotations

from node_agent.isolation.errors import IsolationError
from node_agent.isolation.plan import NetworkPlan


class NetworkSetupError(IsolationError):
    """The job's network could not be joined."""


def host_side(plan: NetworkPlan, pid: int) -> None:
    raise NetworkSetupError(
        "network", f"network {plan.name!r}: bridged networks are not available yet"
    )


def job_side(plan: NetworkPlan) -> None:
    raise NetworkSetupError(
        "network", f"network {plan.name!r}: bridged networks are not available yet"
    )
