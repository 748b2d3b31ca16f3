"""The cgroup v2 (unified hierarchy) driver.

A job lives in ``<root>/<parent>/<name>``. Controllers must be switched on for children in each
ancestor's ``cgroup.subtree_control`` before their files appear in the job's cgroup. Limits come
from :func:`spec.v2_writes`; this module only applies them and reads counters back.
"""

from __future__ import annotations

import signal as _signal
import time

from node_agent.sys.fs import HostFS

from . import spec
from .base import CgroupFiles, SignalsAll, check_name, send_signal, wait_until_empty
from .errors import CgroupUnavailableError
from .host import host_online_cpus

# Enabled on the parents whenever the host offers them, so stats and later limits work.
WANTED_CONTROLLERS = ("cpu", "memory", "io", "pids", "cpuset")


class V2Manager(SignalsAll):
    """One job's cgroup on a cgroup v2 host."""

    version = "v2"

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
        self.path = f"{self.parent}/{self.name}"
        self._online_cpus = online_cpus

    def create(self, limits: spec.Limits) -> None:
        online = self._online_cpus if self._online_cpus is not None else host_online_cpus()
        spec.validate(limits, online)  # fail before touching the tree
        available = set((self.files.read_optional("cgroup.controllers") or "").split())
        missing = spec.needed_v2_controllers(limits) - available
        if missing:
            raise CgroupUnavailableError(
                f"cgroup v2 controller(s) {', '.join(sorted(missing))} not available at"
                f" {self.files.fs.root} (cgroup.controllers: {' '.join(sorted(available))}),"
                " but the job's limits need them"
            )
        enable = [c for c in WANTED_CONTROLLERS if c in available]
        self._enable("", enable)
        self.files.mkdir(self.parent)
        self._enable(self.parent, enable)
        self.files.mkdir(self.path)
        writes = spec.v2_writes(
            limits,
            online_cpus=online,
            swap_accounting=self.files.exists(f"{self.path}/memory.swap.max"),
            oom_group=self.files.exists(f"{self.path}/memory.oom.group"),
        )
        for filename, value in writes:
            if spec.v2_controller_of(filename) in enable:
                self.files.write(f"{self.path}/{filename}", value)

    def _enable(self, rel: str, controllers: list[str]) -> None:
        prefix = f"{rel}/" if rel else ""
        current = set((self.files.read_optional(f"{prefix}cgroup.subtree_control") or "").split())
        todo = [c for c in controllers if c not in current]
        if todo:
            self.files.write(f"{prefix}cgroup.subtree_control", " ".join(f"+{c}" for c in todo))

    def add_process(self, pid: int) -> None:
        self.files.write(f"{self.path}/cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        return sorted(set(self.files.procs(self.path)))

    def stats(self) -> spec.CgroupStats:
        current = self.files.read_int(f"{self.path}/memory.current")
        peak = self.files.read_optional(f"{self.path}/memory.peak")  # kernel >= 5.19
        return spec.CgroupStats(
            cpu_usage_usec=self.files.read_keyed(f"{self.path}/cpu.stat").get("usage_usec", 0),
            memory_current=current,
            memory_peak=spec.parse_int(peak) if peak and peak.strip() else current,
            pids_current=self.files.read_int(f"{self.path}/pids.current"),
            oom_kills=self._oom_kills(),
        )

    def _oom_kills(self) -> int:
        return self.files.read_keyed(f"{self.path}/memory.events").get("oom_kill", 0)

    def oom_killed(self) -> bool:
        return self._oom_kills() > 0

    def kill(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        if not self.files.exists(self.path):
            return
        if self.files.exists(f"{self.path}/cgroup.kill"):  # kernel >= 5.14: atomic
            self.files.write(f"{self.path}/cgroup.kill", "1")
        elif self.files.exists(f"{self.path}/cgroup.freeze"):
            # Freeze first so nothing can fork between reading the pid list and the kills.
            self.files.write(f"{self.path}/cgroup.freeze", "1")
            try:
                while time.monotonic() < deadline:
                    events = self.files.read_keyed(f"{self.path}/cgroup.events")
                    if events.get("frozen", 1) == 1:
                        break
                    time.sleep(0.001)
                send_signal(self.procs(), _signal.SIGKILL)
            finally:
                self.files.write(f"{self.path}/cgroup.freeze", "0")
        else:
            send_signal(self.procs(), _signal.SIGKILL)
        wait_until_empty(self.name, self._procs_after_kill, deadline)

    def destroy(self) -> None:
        self.files.remove_tree(self.path, timeout=1.0, procs=self.procs)
