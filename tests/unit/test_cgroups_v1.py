"""The v1 driver against a fake hybrid tree shaped like this host's (no root needed)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from node_agent.isolation.cgroups import (
    CgroupBusyError,
    CgroupUnavailableError,
    Limits,
    V1Manager,
    new_manager,
)

from .test_cgroups_faketree import FakeCgroupTree, v1_tree

MiB = 1024 * 1024
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "freezer", "blkio", "pids")


@pytest.fixture
def tree(tmp_path: Path) -> FakeCgroupTree:
    return v1_tree(str(tmp_path))


def manager(tree: FakeCgroupTree, name: str = "job1") -> V1Manager:
    return V1Manager(name, root=tree.root, fs=tree, online_cpus=4)


def value(tree: FakeCgroupTree, rel: str) -> str:
    return tree.read(rel).strip()


def test_create_makes_a_cgroup_per_controller_with_limits(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(
        Limits(
            max_cpu=150,
            cpu_cores="2-3",
            max_memory_mb=32,
            max_iobps=4096,
            io_device=(254, 0),
            pids_max=10,
        )
    )
    for ctrl in CONTROLLERS:
        assert tree.is_dir(f"{ctrl}/joblet/job1"), ctrl
    assert not tree.exists("devices/joblet")  # not a controller we use
    j = "joblet/job1"
    assert value(tree, f"cpu/{j}/cpu.cfs_period_us") == "100000"
    assert value(tree, f"cpu/{j}/cpu.cfs_quota_us") == "150000"
    assert value(tree, f"memory/{j}/memory.limit_in_bytes") == str(32 * MiB)
    assert value(tree, f"memory/{j}/memory.memsw.limit_in_bytes") == str(32 * MiB)
    assert value(tree, f"blkio/{j}/blkio.throttle.read_bps_device") == "254:0 4096"
    assert value(tree, f"blkio/{j}/blkio.throttle.write_bps_device") == "254:0 4096"
    assert value(tree, f"pids/{j}/pids.max") == "10"
    assert value(tree, f"cpuset/{j}/cpuset.cpus") == "2-3"
    # cpusets start empty in v1: parent and job get the root's memory nodes / CPUs.
    assert value(tree, "cpuset/joblet/cpuset.cpus") == "0-3"
    assert value(tree, "cpuset/joblet/cpuset.mems") == "0"
    assert value(tree, f"cpuset/{j}/cpuset.mems") == "0"


def test_unlimited_cpuset_inherits_parent_cpus(tree: FakeCgroupTree) -> None:
    manager(tree).create(Limits())
    assert value(tree, "cpuset/joblet/job1/cpuset.cpus") == "0-3"
    assert value(tree, "cpu/joblet/job1/cpu.cfs_quota_us") == "-1"


def test_existing_parent_cpuset_is_kept(tree: FakeCgroupTree) -> None:
    tree.mkdir("cpuset/joblet")
    tree.write("cpuset/joblet/cpuset.cpus", "1")
    tree.write("cpuset/joblet/cpuset.mems", "0")
    manager(tree).create(Limits())
    assert value(tree, "cpuset/joblet/cpuset.cpus") == "1"
    assert value(tree, "cpuset/joblet/job1/cpuset.cpus") == "1"


def test_without_swap_accounting_swappiness_is_zero(tmp_path: Path) -> None:
    tree = v1_tree(str(tmp_path), swap_accounting=False)
    manager(tree).create(Limits(max_memory_mb=32))
    assert value(tree, "memory/joblet/job1/memory.limit_in_bytes") == str(32 * MiB)
    assert value(tree, "memory/joblet/job1/memory.swappiness") == "0"
    assert not tree.exists("memory/joblet/job1/memory.memsw.limit_in_bytes")


def test_raising_memory_limit_on_existing_cgroup(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits(max_memory_mb=32))
    m.create(Limits(max_memory_mb=64))
    assert value(tree, "memory/joblet/job1/memory.limit_in_bytes") == str(64 * MiB)
    assert value(tree, "memory/joblet/job1/memory.memsw.limit_in_bytes") == str(64 * MiB)


def test_missing_controller_for_a_limit(tmp_path: Path) -> None:
    tree = v1_tree(str(tmp_path))
    os.unlink(tmp_path / "pids/cgroup.procs")
    with pytest.raises(CgroupUnavailableError, match="controller\\(s\\) pids not mounted"):
        manager(tree).create(Limits(pids_max=5))
    manager(tree, "job2").create(Limits())  # without a pids limit the job still runs
    assert not tree.exists("pids/joblet")


def test_add_process_joins_every_controller_and_stats(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    m.add_process(os.getpid())
    for ctrl in CONTROLLERS:
        assert value(tree, f"{ctrl}/joblet/job1/cgroup.procs") == str(os.getpid())
    assert m.procs() == [os.getpid()]
    j = "joblet/job1"
    tree.lay_out(
        {
            f"cpuacct/{j}/cpuacct.usage": "2500000000\n",  # ns
            f"memory/{j}/memory.usage_in_bytes": "1000\n",
            f"memory/{j}/memory.max_usage_in_bytes": "3000\n",
            f"pids/{j}/pids.current": "2\n",
            f"memory/{j}/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        }
    )
    s = m.stats()
    assert (s.cpu_usage_usec, s.memory_current, s.memory_peak, s.pids_current, s.oom_kills) == (
        2_500_000,
        1000,
        3000,
        2,
        2,
    )
    assert m.oom_killed()


def test_kill_freezes_kills_thaws(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        for p in procs:
            m.add_process(p.pid)
        assert not m.oom_killed()
        m.kill(timeout=5)
        assert [p.wait(timeout=5) for p in procs] == [-signal.SIGKILL] * 3
        states = [v for rel, v in tree.writes if rel.endswith("freezer.state")]
        assert states == ["FROZEN", "THAWED"]
        assert m.procs() == []
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_destroy_removes_every_controller_dir(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    m.destroy()
    for ctrl in CONTROLLERS:
        assert not tree.exists(f"{ctrl}/joblet/job1"), ctrl
        assert tree.exists(f"{ctrl}/joblet")
    m.destroy()


def test_destroy_refuses_while_processes_remain(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    m.add_process(os.getpid())
    with pytest.raises(CgroupBusyError):
        m.destroy()


def test_new_manager_detects_v1_on_hybrid_tree(tree: FakeCgroupTree) -> None:
    assert isinstance(new_manager("x", root=tree.root), V1Manager)
