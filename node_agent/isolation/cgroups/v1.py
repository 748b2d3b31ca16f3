"""The cgroup v1 driver: one directory per controller hierarchy.

A job lives in ``<root>/<controller>/<parent>/<name>`` for every controller mounted on the host
(cpu, cpuacct, cpuset, memory, freezer, blkio, pids; combined mounts such as ``cpu,cpuacct``
reached through their usual symlinks work too). v1 quirks handled here:

* a new cpuset is empty and refuses processes until ``cpuset.cpus``/``cpuset.mems`` are set,
  in the shared parent as well as in the job's cgroup;
* swap is capped through ``memory.memsw.*`` only when the kernel has swap accounting;
* there is no ``cgroup.kill``: the freezer stops the job so it cannot fork while being killed.
"""

from __future__ import annotations

import signal as _signal
import time

from node_agent.sys.fs import HostFS

from . import spec
from .base import CgroupFiles, SignalsAll, check_name, send_signal, wait_until_empty
from .errors import CgroupUnavailableError
from .host import V1_CONTROLLERS, host_online_cpus

FREEZE_WAIT = 1.0  # seconds to wait for FREEZING -> FROZEN before killing anyway


class V1Manager(SignalsAll):
    """One job's cgroups on a cgroup v1 host."""

    version = "v1"

    def __init__(
        self,
        name: str,
        *,
        root: str = "/sys/fs/cgroup",
        parent: str = "joblet",
        fs: HostFS | None = None,
        online_cpus: int | None = None,
    ) -> None:
        self.name = check_name(name)
        self.parent = check_name(parent)
        self.files = CgroupFiles(fs if fs is not None else HostFS(root))
        self._online_cpus = online_cpus
        self.controllers = tuple(
            c for c in V1_CONTROLLERS if self.files.exists(f"{c}/cgroup.procs")
        )

    def _dir(self, controller: str) -> str:
        return f"{controller}/{self.parent}/{self.name}"

    def create(self, limits: spec.Limits) -> None:
        online = self._online_cpus if self._online_cpus is not None else host_online_cpus()
        spec.validate(limits, online)  # fail before touching the tree
        missing = spec.needed_v1_controllers(limits) - set(self.controllers)
        if missing:
            raise CgroupUnavailableError(
                f"cgroup v1 controller(s) {', '.join(sorted(missing))} not mounted under"
                f" {self.files.fs.root}, but the job's limits need them"
            )
        for ctrl in self.controllers:
            self.files.mkdir(f"{ctrl}/{self.parent}")
            if ctrl == "cpuset":
                self._init_cpuset_parent()
            self.files.mkdir(self._dir(ctrl))
        parent_cpus, parent_mems = "", ""
        if "cpuset" in self.controllers:
            parent_cpus = self.files.read(f"cpuset/{self.parent}/cpuset.cpus").strip()
            parent_mems = self.files.read(f"cpuset/{self.parent}/cpuset.mems").strip()
        writes = spec.v1_writes(
            limits,
            online_cpus=online,
            parent_cpus=parent_cpus,
            parent_mems=parent_mems,
            swap_accounting=self.files.exists(f"{self._dir('memory')}/memory.memsw.limit_in_bytes")
            if "memory" in self.controllers
            else False,
        )
        for ctrl, filename, value in writes:
            if ctrl in self.controllers:
                self.files.write(f"{self._dir(ctrl)}/{filename}", value)

    def _init_cpuset_parent(self) -> None:
        """Give the shared parent the root's CPUs and memory nodes if it has none yet."""
        for filename in ("cpuset.cpus", "cpuset.mems"):
            rel = f"cpuset/{self.parent}/{filename}"
            if not self.files.read(rel).strip():
                self.files.write(rel, self.files.read(f"cpuset/{filename}").strip())

    def add_process(self, pid: int) -> None:
        for ctrl in self.controllers:
            self.files.write(f"{self._dir(ctrl)}/cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        pids: set[int] = set()
        for ctrl in self.controllers:
            pids.update(self.files.procs(self._dir(ctrl)))
        return sorted(pids)

    def stats(self) -> spec.CgroupStats:
        mem = self._dir("memory")
        return spec.CgroupStats(
            cpu_usage_usec=self.files.read_int(f"{self._dir('cpuacct')}/cpuacct.usage") // 1000,
            memory_current=self.files.read_int(f"{mem}/memory.usage_in_bytes"),
            memory_peak=self.files.read_int(f"{mem}/memory.max_usage_in_bytes"),
            pids_current=self.files.read_int(f"{self._dir('pids')}/pids.current"),
            oom_kills=self._oom_kills(),
        )

    def _oom_kills(self) -> int:
        return self.files.read_keyed(f"{self._dir('memory')}/memory.oom_control").get("oom_kill", 0)

    def oom_killed(self) -> bool:
        return self._oom_kills() > 0

    def kill(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        freezer = self._dir("freezer")
        if "freezer" in self.controllers and self.files.exists(freezer):
            # Frozen tasks cannot fork; SIGKILL is delivered to them when they thaw.
            self.files.write(f"{freezer}/freezer.state", "FROZEN")
            try:
                freeze_deadline = min(deadline, time.monotonic() + FREEZE_WAIT)
                while time.monotonic() < freeze_deadline:
                    if self.files.read(f"{freezer}/freezer.state").strip() == "FROZEN":
                        break
                    time.sleep(0.001)
                send_signal(self.procs(), _signal.SIGKILL)
            finally:
                self.files.write(f"{freezer}/freezer.state", "THAWED")
        else:
            send_signal(self.procs(), _signal.SIGKILL)
        wait_until_empty(self.name, self._procs_after_kill, deadline)

    def destroy(self) -> None:
        for ctrl in self.controllers:
            self.files.remove_tree(self._dir(ctrl), timeout=1.0, procs=self.procs)
