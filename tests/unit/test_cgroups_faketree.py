"""A fake cgroupfs in a temp dir, for the driver tests (this module holds no tests itself).

It emulates only the kernel behaviour the drivers rely on: mkdir fills a new cgroup with its
interface files, rmdir works although those files exist, ``cgroup.subtree_control`` takes
"+ctrl" tokens, writes to ``cgroup.procs`` add a pid, ``cgroup.kill`` empties the subtree,
``cgroup.freeze`` shows up in ``cgroup.events``, and pids that have exited leave ``cgroup.procs``.
Values the driver writes stay in the files, so tests read them back.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from node_agent.sys.fs import HostFS

V2_DEFAULTS: dict[str, dict[str, str]] = {
    "cpu": {"cpu.max": "max 100000", "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"},
    "memory": {
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.oom.group": "0",
        "memory.current": "0",
        "memory.peak": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    },
    "io": {"io.max": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
}

V1_DEFAULTS: dict[str, dict[str, str]] = {
    "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.swappiness": "60",
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "devices": {},
}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class FakeCgroupTree(HostFS):
    """HostFS over a temp dir that behaves like cgroupfs where the drivers need it to."""

    def __init__(self, root: str, populate: Callable[[FakeCgroupTree, str], dict[str, str]]):
        super().__init__(root)
        self._populate = populate
        self.rejects: dict[str, int] = {}  # relative path -> errno to fail writes with
        self.writes: list[tuple[str, str]] = []

    def lay_out(self, files: dict[str, str]) -> None:
        for rel, value in files.items():
            os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
            with open(self.path(rel), "w") as f:
                f.write(value)

    def mkdir(self, rel: str) -> None:
        if self.is_dir(rel):
            return
        super().mkdir(rel)
        self.lay_out({f"{rel}/{k}": v for k, v in self._populate(self, rel).items()})

    def _enable_in_child(self, rel: str, enabled: set[str]) -> None:
        files = {"cgroup.controllers": " ".join(sorted(enabled))}
        for ctrl in enabled:
            for k, v in V2_DEFAULTS.get(ctrl, {}).items():
                if not self.exists(f"{rel}/{k}"):
                    files[k] = v
        self.lay_out({f"{rel}/{k}": v for k, v in files.items()})

    def rmdir(self, rel: str) -> None:
        if self.is_dir(rel) and self.read(f"{rel}/cgroup.procs").split():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), self.path(rel))
        if self.is_dir(rel):
            for name in os.listdir(self.path(rel)):
                if os.path.isfile(self.path(f"{rel}/{name}")):
                    os.unlink(self.path(f"{rel}/{name}"))
        super().rmdir(rel)

    def read(self, rel: str) -> str:
        text = super().read(rel)
        if rel.endswith("cgroup.procs"):
            return "".join(f"{p}\n" for p in text.split() if _alive(int(p)))
        return text

    def write(self, rel: str, value: str) -> None:
        self.writes.append((rel, value))
        if rel in self.rejects:
            code = self.rejects[rel]
            raise OSError(code, os.strerror(code), self.path(rel))
        head, _, name = rel.rpartition("/")
        if not self.exists(rel):  # cgroupfs has no way to create a file
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path(rel))
        if name == "cgroup.procs":
            value = super().read(rel) + value + "\n"
        elif name == "cgroup.subtree_control":
            enabled = set(super().read(rel).split())
            for token in value.split():
                (enabled.add if token[0] == "+" else enabled.discard)(token[1:])
            value = " ".join(sorted(enabled))
            # Like the kernel, give existing children the newly enabled controllers' files.
            for child in self.listdir(head) if head else self.listdir(""):
                sub = f"{head}/{child}" if head else child
                if self.is_dir(sub):
                    self._enable_in_child(sub, enabled)
        elif name == "cgroup.kill" and value == "1":
            for d, _dirs, _files in os.walk(self.path(head)):
                with open(os.path.join(d, "cgroup.procs"), "w"):
                    pass
        elif name == "cgroup.freeze":
            super().write(f"{head}/cgroup.events", f"populated 1\nfrozen {value}\n")
        super().write(rel, value)


def v2_populate(tree: FakeCgroupTree, rel: str) -> dict[str, str]:
    parent = rel.rpartition("/")[0]
    enabled = tree.read(f"{parent}/cgroup.subtree_control" if parent else "cgroup.subtree_control")
    files = {
        "cgroup.procs": "",
        "cgroup.controllers": " ".join(enabled.split()),
        "cgroup.subtree_control": "",
        "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.freeze": "0",
        "cgroup.kill": "",
    }
    for ctrl in enabled.split():
        files.update(V2_DEFAULTS[ctrl])
    return files


def v2_tree(
    root: str, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc"
) -> FakeCgroupTree:
    """A fake pure-v2 host: the unified hierarchy at ``root`` with ``controllers``."""
    tree = FakeCgroupTree(root, v2_populate)
    tree.lay_out(
        {
            "cgroup.controllers": controllers + "\n",
            "cgroup.subtree_control": "",
            "cgroup.procs": "1\n",
            "cpu.stat": "usage_usec 1\n",
        }
    )
    return tree


def v1_tree(root: str, *, swap_accounting: bool = True, unified: bool = True) -> FakeCgroupTree:
    """A fake hybrid v1 host like this one: v1 controllers plus an empty cgroup2 mount."""

    def populate(_tree: FakeCgroupTree, rel: str) -> dict[str, str]:
        files = {"cgroup.procs": "", "tasks": "", **V1_DEFAULTS[rel.split("/", 1)[0]]}
        if not swap_accounting:
            files.pop("memory.memsw.limit_in_bytes", None)
        return files

    tree = FakeCgroupTree(root, populate)
    files = {f"{c}/cgroup.procs": "1\n" for c in V1_DEFAULTS}
    files["cpuset/cpuset.cpus"] = "0-3\n"
    files["cpuset/cpuset.mems"] = "0\n"
    if unified:
        files["unified/cgroup.controllers"] = ""
        files["unified/cgroup.procs"] = "1\n"
    tree.lay_out(files)
    return tree
