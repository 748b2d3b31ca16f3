"""Facts about this host that the cgroup drivers and their callers need, read once at the edge.

* :func:`detect` decides which driver to use. A hybrid host (v1 controllers plus an empty
  cgroup2 mount at ``<root>/unified``) must use v1: v2 counts only when the unified hierarchy is
  mounted at the root itself and actually has controllers.
* :func:`device_for_path` finds the whole disk behind a path, because IO throttling is keyed by
  device and a partition number is silently ignored by the kernel's throttle.
* :func:`host_online_cpus` bounds CPU lists in :func:`spec.parse_cpuset`.
"""

from __future__ import annotations

import os
from typing import Literal

from node_agent.sys.fs import HostFS

from .errors import CgroupUnavailableError

V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "freezer", "blkio", "pids")


def detect(root: str = "/sys/fs/cgroup") -> Literal["v1", "v2"]:
    """Which cgroup version the host at ``root`` runs: "v2" only when cgroup2 is mounted at
    ``root`` and has controllers, "v1" when any v1 controller is mounted below it."""
    fs = HostFS(root)
    if fs.exists("cgroup.controllers") and fs.read("cgroup.controllers").split():
        return "v2"
    if any(fs.exists(f"{ctrl}/cgroup.procs") for ctrl in V1_CONTROLLERS):
        return "v1"
    if fs.exists("cgroup.controllers"):
        raise CgroupUnavailableError(
            f"cgroup2 is mounted at {root} but offers no controllers, and no cgroup v1"
            " controller is mounted below it: no limits can be enforced"
        )
    raise CgroupUnavailableError(f"no cgroup hierarchy (v1 or v2) is mounted at {root}")


def device_for_path(path: str, *, sysfs: str = "/sys") -> tuple[int, int] | None:
    """(major, minor) of the whole block device holding ``path``'s filesystem.

    A partition maps to its disk (via ``/sys/dev/block/MAJ:MIN/partition`` and the parent's
    ``dev``). Returns None when the filesystem has no block device of its own (tmpfs, overlay,
    btrfs subvolumes report an anonymous device number).
    """
    st_dev = os.stat(path).st_dev
    major, minor = os.major(st_dev), os.minor(st_dev)
    if major == 0:
        return None
    fs = HostFS(sysfs)
    node = f"dev/block/{major}:{minor}"
    if not fs.exists(node):
        return None
    if not fs.exists(f"{node}/partition"):
        return (major, minor)
    # /sys/dev/block/M:m links to .../block/<disk>/<partition>; the disk is one level up.
    disk_dir = os.path.dirname(os.path.realpath(fs.path(node)))
    text = HostFS(disk_dir).read("dev").strip()
    dmaj, _, dmin = text.partition(":")
    return (int(dmaj), int(dmin))


def host_online_cpus(*, sysfs: str = "/sys") -> int:
    """How many CPU numbers exist: one more than the highest online CPU."""
    fs = HostFS(sysfs)
    try:
        text = fs.read("devices/system/cpu/online").strip()
    except OSError:
        return os.cpu_count() or 1
    highest = 0
    for item in text.split(","):
        highest = max(highest, int(item.rpartition("-")[2]))
    return highest + 1
