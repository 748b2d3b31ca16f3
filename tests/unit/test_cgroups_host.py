"""Host facts: cgroup version detection on fake trees, block devices and CPUs on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node_agent.isolation.cgroups import (
    CgroupUnavailableError,
    V1Manager,
    V2Manager,
    detect,
    device_for_path,
    host_online_cpus,
    new_manager,
    parse_cpuset,
)

from .test_cgroups_faketree import v1_tree, v2_tree


def test_detect_v2(tmp_path: Path) -> None:
    v2_tree(str(tmp_path))
    assert detect(str(tmp_path)) == "v2"


def test_detect_hybrid_with_empty_unified_is_v1(tmp_path: Path) -> None:
    v1_tree(str(tmp_path), unified=True)
    assert (tmp_path / "unified/cgroup.controllers").read_text() == ""
    assert detect(str(tmp_path)) == "v1"


def test_detect_pure_v1(tmp_path: Path) -> None:
    v1_tree(str(tmp_path), unified=False)
    assert detect(str(tmp_path)) == "v1"


def test_detect_v2_without_controllers_and_no_v1_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("\n")
    with pytest.raises(CgroupUnavailableError, match="offers no controllers"):
        detect(str(tmp_path))


def test_detect_nothing_mounted(tmp_path: Path) -> None:
    with pytest.raises(CgroupUnavailableError, match="no cgroup hierarchy"):
        detect(str(tmp_path))


def test_new_manager_version_override(tmp_path: Path) -> None:
    assert isinstance(new_manager("a", root=str(tmp_path), version="v2"), V2Manager)
    assert isinstance(new_manager("a", root=str(tmp_path), version="v1"), V1Manager)
    with pytest.raises(CgroupUnavailableError, match="unknown cgroup version 'v3'"):
        new_manager("a", root=str(tmp_path), version="v3")


def test_detect_this_host() -> None:
    if not os.path.isdir("/sys/fs/cgroup"):
        pytest.skip("no /sys/fs/cgroup")
    unified_root = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    assert detect() == ("v2" if unified_root else "v1")


def _sysfs_disk(st_dev: int) -> tuple[int, int] | None:
    """Independent reference: walk /sys/dev/block by hand."""
    node = f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}"
    if os.major(st_dev) == 0 or not os.path.exists(node):
        return None
    real = os.path.realpath(node)
    if os.path.exists(f"{real}/partition"):
        real = os.path.dirname(real)
    with open(f"{real}/dev") as f:
        major, minor = f.read().strip().split(":")
    return int(major), int(minor)


def test_device_for_root_matches_sysfs() -> None:
    st_dev = os.stat("/").st_dev
    expected = _sysfs_disk(st_dev)
    got = device_for_path("/")
    assert got == expected
    if got is not None:
        # a whole disk, never a partition
        assert not os.path.exists(f"/sys/dev/block/{got[0]}:{got[1]}/partition")
        if not os.path.exists(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}/partition"):
            assert got == (os.major(st_dev), os.minor(st_dev))


def test_device_for_tmpfs_or_proc_is_none() -> None:
    assert device_for_path("/proc") is None  # procfs has an anonymous device (major 0)


def test_device_for_partition_maps_to_disk(tmp_path: Path) -> None:
    # A fake sysfs: 8:1 is a partition of 8:0. The path's st_dev must be 8:1, which we cannot
    # fake, so point the lookup at a sysfs where the root fs's own device is a partition.
    st_dev = os.stat("/").st_dev
    major, minor = os.major(st_dev), os.minor(st_dev)
    if major == 0:
        pytest.skip("root filesystem has no block device")
    disk = tmp_path / "devices/virtual/block/fakedisk"
    part = disk / "fakedisk1"
    part.mkdir(parents=True)
    (part / "partition").write_text("1\n")
    (part / "dev").write_text(f"{major}:{minor}\n")
    (disk / "dev").write_text("259:7\n")
    (tmp_path / "dev/block").mkdir(parents=True)
    os.symlink(part, tmp_path / f"dev/block/{major}:{minor}")
    assert device_for_path("/", sysfs=str(tmp_path)) == (259, 7)


def test_host_online_cpus() -> None:
    n = host_online_cpus()
    assert n >= 1
    assert n >= len(os.sched_getaffinity(0)) or n == os.cpu_count()
    assert parse_cpuset(f"0-{n - 1}", n) == tuple(range(n))


def test_host_online_cpus_from_fake_sysfs(tmp_path: Path) -> None:
    (tmp_path / "devices/system/cpu").mkdir(parents=True)
    (tmp_path / "devices/system/cpu/online").write_text("0-3,6\n")
    assert host_online_cpus(sysfs=str(tmp_path)) == 7
