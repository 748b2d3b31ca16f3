"""The v2 driver end to end against a fake unified hierarchy (no root needed)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from node_agent.isolation.cgroups import (
    CgroupAccessError,
    CgroupBusyError,
    CgroupUnavailableError,
    InvalidLimitsError,
    InvalidNameError,
    Limits,
    V2Manager,
    new_manager,
)

from .test_cgroups_faketree import FakeCgroupTree, v2_tree

MiB = 1024 * 1024
FULL = Limits(
    max_cpu=250, cpu_cores="1", max_memory_mb=64, max_iobps=1000, io_device=(254, 0), pids_max=50
)


@pytest.fixture
def tree(tmp_path: Path) -> FakeCgroupTree:
    return v2_tree(str(tmp_path))


def manager(tree: FakeCgroupTree, name: str = "job1") -> V2Manager:
    return V2Manager(name, root=tree.root, fs=tree, online_cpus=4)


def value(tree: FakeCgroupTree, rel: str) -> str:
    return tree.read(rel).strip()


def test_create_enables_controllers_and_writes_limits(tree: FakeCgroupTree) -> None:
    manager(tree).create(FULL)
    # Only the controllers we want, and only those the host offers (no hugetlb/rdma/misc).
    assert value(tree, "cgroup.subtree_control").split() == sorted(
        ["cpu", "memory", "io", "pids", "cpuset"]
    )
    assert sorted(value(tree, "joblet/cgroup.subtree_control").split()) == sorted(
        ["cpu", "memory", "io", "pids", "cpuset"]
    )
    job = "joblet/job1"
    assert value(tree, f"{job}/cpu.max") == "250000 100000"
    assert value(tree, f"{job}/memory.max") == str(64 * MiB)
    assert value(tree, f"{job}/memory.swap.max") == "0"
    assert value(tree, f"{job}/memory.oom.group") == "1"
    assert value(tree, f"{job}/io.max") == "254:0 rbps=1000 wbps=1000"
    assert value(tree, f"{job}/pids.max") == "50"
    assert value(tree, f"{job}/cpuset.cpus") == "1"


def test_create_is_idempotent_and_converges(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(FULL)
    m.create(FULL)
    m.create(Limits(max_memory_mb=8))
    job = "joblet/job1"
    assert value(tree, f"{job}/cpu.max") == "max 100000"
    assert value(tree, f"{job}/memory.max") == str(8 * MiB)
    assert value(tree, f"{job}/pids.max") == "max"
    assert value(tree, f"{job}/cpuset.cpus") == ""


def test_create_skips_controllers_the_host_lacks_when_unneeded(tmp_path: Path) -> None:
    tree = v2_tree(str(tmp_path), controllers="cpu memory pids")
    manager(tree).create(Limits(max_cpu=50, max_memory_mb=10, pids_max=5))
    assert value(tree, "cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    assert not tree.exists("joblet/job1/io.max")
    assert not any(rel.endswith(("io.max", "cpuset.cpus")) for rel, _ in tree.writes)


def test_create_refuses_limit_without_its_controller(tmp_path: Path) -> None:
    tree = v2_tree(str(tmp_path), controllers="cpu memory pids")
    with pytest.raises(CgroupUnavailableError, match="controller\\(s\\) cpuset, io not available"):
        manager(tree).create(Limits(cpu_cores="0", max_iobps=5, io_device=(8, 0)))
    assert not tree.exists("joblet")  # nothing touched


def test_invalid_limits_touch_nothing(tree: FakeCgroupTree) -> None:
    with pytest.raises(InvalidLimitsError, match="CPU 4 does not exist"):
        manager(tree).create(Limits(cpu_cores="4"))
    assert tree.writes == []


def test_no_swap_file_means_no_swap_write(tree: FakeCgroupTree, tmp_path: Path) -> None:
    m = manager(tree)
    tree.mkdir("joblet")
    tree.write("cgroup.subtree_control", "+memory +pids +cpu")
    tree.write("joblet/cgroup.subtree_control", "+memory +pids +cpu")
    tree.mkdir("joblet/job1")
    os.unlink(tmp_path / "joblet/job1/memory.swap.max")
    m.create(Limits(max_memory_mb=1))
    assert value(tree, "joblet/job1/memory.max") == str(MiB)


def test_busy_subtree_control_gives_a_helpful_error(tree: FakeCgroupTree) -> None:
    tree.rejects["cgroup.subtree_control"] = errno.EBUSY
    with pytest.raises(CgroupAccessError, match="may not hold processes of its own") as info:
        manager(tree).create(Limits())
    assert info.value.errno == errno.EBUSY
    assert info.value.path.endswith("cgroup.subtree_control")


def test_add_process_procs_and_stats(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits(max_memory_mb=16))
    m.add_process(os.getpid())
    assert value(tree, "joblet/job1/cgroup.procs") == str(os.getpid())
    # A sub-cgroup the job made itself is included.
    tree.lay_out({"joblet/job1/inner/cgroup.procs": "1\n"})
    assert m.procs() == sorted({1, os.getpid()})
    tree.lay_out(
        {
            "joblet/job1/cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
            "joblet/job1/memory.current": "4096\n",
            "joblet/job1/memory.peak": "8192\n",
            "joblet/job1/pids.current": "3\n",
            "joblet/job1/memory.events": "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n",
        }
    )
    s = m.stats()
    assert (s.cpu_usage_usec, s.memory_current, s.memory_peak, s.pids_current, s.oom_kills) == (
        1_500_000,
        4096,
        8192,
        3,
        1,
    )
    assert m.oom_killed()


def test_oom_killed_false_until_memory_events_says_so(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits(max_memory_mb=16))
    assert not m.oom_killed()
    tree.lay_out({"joblet/job1/memory.events": "oom 1\noom_kill 0\n"})
    assert not m.oom_killed()  # an OOM event that killed nothing (e.g. reclaim succeeded)


def test_memory_peak_falls_back_to_current_on_old_kernels(
    tree: FakeCgroupTree, tmp_path: Path
) -> None:
    m = manager(tree)
    m.create(Limits())
    os.unlink(tmp_path / "joblet/job1/memory.peak")
    tree.lay_out({"joblet/job1/memory.current": "777\n"})
    assert m.stats().memory_peak == 777


def test_kill_uses_cgroup_kill(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    tree.lay_out({"joblet/job1/cgroup.procs": f"{os.getpid()}\n"})  # never signalled: fake
    m.kill(timeout=1)
    assert ("joblet/job1/cgroup.kill", "1") in tree.writes
    assert m.procs() == []


def _sleepers(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(["sleep", "60"]) for _ in range(n)]


def test_kill_without_cgroup_kill_freezes_kills_thaws(tree: FakeCgroupTree, tmp_path: Path) -> None:
    m = manager(tree)
    m.create(Limits())
    os.unlink(tmp_path / "joblet/job1/cgroup.kill")
    procs = _sleepers(3)
    try:
        for p in procs:
            m.add_process(p.pid)
        m.kill(timeout=5)
        assert [p.wait(timeout=5) for p in procs] == [-signal.SIGKILL] * 3
        freeze = [v for rel, v in tree.writes if rel == "joblet/job1/cgroup.freeze"]
        assert freeze == ["1", "0"]
        assert m.procs() == []
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_signal_reaches_every_process(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    procs = _sleepers(2)
    try:
        for p in procs:
            m.add_process(p.pid)
        m.signal(signal.SIGTERM)
        assert [p.wait(timeout=5) for p in procs] == [-signal.SIGTERM] * 2
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_kill_times_out_with_busy_error(
    tree: FakeCgroupTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(tree)
    m.create(Limits())
    os.unlink(tmp_path / "joblet/job1/cgroup.kill")
    m.add_process(os.getpid())  # alive, and the fake has no kernel to make it leave
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    with pytest.raises(CgroupBusyError, match="still holds pids") as info:
        m.kill(timeout=0.2)
    assert info.value.pids == [os.getpid()]
    assert (os.getpid(), signal.SIGKILL) in sent
    assert value(tree, "joblet/job1/cgroup.freeze") == "0"  # never left frozen


def test_procs_ignores_exited_pids(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    tree.lay_out({"joblet/job1/cgroup.procs": "999999999\n"})  # no such process
    m.kill(timeout=0.2)
    assert m.procs() == []


def test_destroy_removes_dirs_and_is_idempotent(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    tree.mkdir("joblet/job1/inner")
    m.destroy()
    assert not tree.exists("joblet/job1")
    assert tree.exists("joblet")  # the shared parent stays for other jobs
    m.destroy()
    m.kill()  # killing a cgroup that is gone is not an error either


def test_destroy_refuses_while_processes_remain(tree: FakeCgroupTree) -> None:
    m = manager(tree)
    m.create(Limits())
    m.add_process(os.getpid())
    with pytest.raises(CgroupBusyError, match="kill\\(\\) the job first") as info:
        m.destroy()
    assert info.value.pids == [os.getpid()]


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x\0y", "n" * 256])
def test_bad_names_are_refused(tree: FakeCgroupTree, bad: str) -> None:
    with pytest.raises(InvalidNameError):
        manager(tree, bad)


def test_new_manager_detects_v2(tree: FakeCgroupTree) -> None:
    m = new_manager("job2", root=tree.root)
    assert isinstance(m, V2Manager)
    assert m.name == "job2"
