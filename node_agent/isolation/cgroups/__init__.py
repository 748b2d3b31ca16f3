"""Cgroup limits and accounting for jobs, on cgroup v1 and v2 hosts.

Callers use one interface, :class:`CgroupManager`, and one factory, :func:`new_manager`, which
picks the driver for the host (:func:`detect`). The package is layered so each part can be
tested on its own:

* ``spec``   — pure: ``Limits`` → ordered file writes per driver, parsers of counter files;
* ``host``   — facts read from the host: version detection, block devices, CPUs;
* ``v1``/``v2`` — drivers that apply a plan through ``node_agent.sys.fs.HostFS`` (the single
  file-access point, which tests point at a fake tree);
* ``errors`` — the ``CgroupError`` tree.
"""

from __future__ import annotations

from typing import Protocol

from node_agent.sys.fs import HostFS

from .errors import (
    CgroupAccessError,
    CgroupBusyError,
    CgroupError,
    CgroupUnavailableError,
    InvalidLimitsError,
    InvalidNameError,
)
from .host import detect, device_for_path, host_online_cpus
from .spec import CgroupStats, Limits, parse_cpuset
from .v1 import V1Manager
from .v2 import V2Manager

__all__ = [
    "CgroupAccessError",
    "CgroupBusyError",
    "CgroupError",
    "CgroupManager",
    "CgroupStats",
    "CgroupUnavailableError",
    "InvalidLimitsError",
    "InvalidNameError",
    "Limits",
    "V1Manager",
    "V2Manager",
    "detect",
    "device_for_path",
    "host_online_cpus",
    "new_manager",
    "parse_cpuset",
]


class CgroupManager(Protocol):
    """One job's cgroup(s). Every method may raise a :class:`CgroupError`."""

    name: str

    def create(self, limits: Limits) -> None:
        """Make the job's cgroup(s) under the shared parent and apply ``limits`` (idempotent;
        re-applying different limits converges on them)."""

    def add_process(self, pid: int) -> None:
        """Move a (host) pid into the job's cgroup(s)."""

    def procs(self) -> list[int]:
        """Host pids currently inside, including sub-cgroups; sorted."""

    def stats(self) -> CgroupStats: ...

    def oom_killed(self) -> bool:
        """True if the kernel OOM-killed a process in this cgroup."""

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL every process inside and wait until the cgroup is empty; CgroupBusyError
        if it is not empty by ``timeout`` seconds."""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process inside."""

    def destroy(self) -> None:
        """Remove the job's cgroup dirs (they must be empty); idempotent."""


def new_manager(
    name: str,
    *,
    root: str = "/sys/fs/cgroup",
    parent: str = "joblet",
    version: str | None = None,
    fs: HostFS | None = None,
) -> CgroupManager:
    """The manager for job ``name`` on this host; ``version`` ("v1"/"v2") skips detection."""
    chosen = version if version is not None else detect(root)
    if chosen == "v2":
        return V2Manager(name, root=root, parent=parent, fs=fs)
    if chosen == "v1":
        return V1Manager(name, root=root, parent=parent, fs=fs)
    raise CgroupUnavailableError(f"unknown cgroup version {version!r}; use 'v1' or 'v2'")
