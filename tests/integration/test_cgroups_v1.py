"""The cgroup v1 driver on this host's real hierarchy: limits are enforced by the kernel.

Each test creates a uniquely named cgroup, starts a process held at a pipe handshake (so it
does nothing until it is inside the cgroup), moves it in, lets it run, and checks what the
kernel did. Cleanup (kill + destroy) runs whatever happens, and is itself checked.
"""

from __future__ import annotations

import errno
import glob
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from node_agent.isolation.cgroups import (
    CgroupManager,
    CgroupUnavailableError,
    Limits,
    V1Manager,
    V2Manager,
    detect,
    device_for_path,
    host_online_cpus,
    new_manager,
)
from node_agent.sys.fs import HostFS

ROOT = "/sys/fs/cgroup"


def _is_v1_host() -> bool:
    try:
        return detect(ROOT) == "v1"
    except Exception:
        return False


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to manage cgroups"),
    pytest.mark.skipif(not _is_v1_host(), reason="host does not run cgroup v1"),
]


def _leftovers(name: str) -> list[str]:
    return glob.glob(f"{ROOT}/*/joblet/{name}")


@contextmanager
def job_cgroup(limits: Limits) -> Iterator[CgroupManager]:
    m = new_manager(f"itest-{uuid.uuid4().hex[:12]}")
    assert isinstance(m, V1Manager)
    try:
        m.create(limits)
        yield m
    finally:
        try:
            m.kill(timeout=10)
        finally:
            m.destroy()
    assert _leftovers(m.name) == []


def spawn_held(code: str) -> subprocess.Popen[bytes]:
    """A python process that waits for one byte on stdin, then runs ``code``."""
    prelude = "import sys\nif sys.stdin.buffer.read(1) != b'g':\n    sys.exit(99)\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def release(p: subprocess.Popen[bytes]) -> None:
    assert p.stdin is not None
    p.stdin.write(b"g")
    p.stdin.close()


def finish(p: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    """Wait for exit; return the exit status and stdout (stderr appended, for messages)."""
    assert p.stdout is not None and p.stderr is not None
    out = p.stdout.read()
    err = p.stderr.read()
    return p.wait(timeout=timeout), (out + err).decode()


def test_memory_limit_oom_kills_and_is_reported() -> None:
    with job_cgroup(Limits(max_memory_mb=32)) as m:
        mem = f"{ROOT}/memory/joblet/{m.name}"
        with open(f"{mem}/memory.limit_in_bytes") as f:
            assert int(f.read()) == 32 * 1024 * 1024
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            with open(f"{mem}/memory.memsw.limit_in_bytes") as f:
                assert int(f.read()) == 32 * 1024 * 1024  # swap cannot extend the limit
        p = spawn_held("data = b'x' * (200 << 20)\nprint('survived', len(data))\n")
        try:
            m.add_process(p.pid)
            assert not m.oom_killed()
            release(p)
            rc, out = finish(p)
        finally:
            p.kill()
            p.wait()
        assert rc == -9, out
        assert "survived" not in out
        assert m.oom_killed()
        stats = m.stats()
        assert stats.oom_kills >= 1
        assert 0 < stats.memory_peak <= 32 * 1024 * 1024


def test_process_within_memory_limit_is_not_oom_killed() -> None:
    with job_cgroup(Limits(max_memory_mb=64)) as m:
        p = spawn_held("data = b'x' * (8 << 20)\nprint('ok', len(data))\n")
        m.add_process(p.pid)
        release(p)
        rc, out = finish(p)
        assert (rc, out.strip()) == (0, f"ok {8 << 20}")
        assert not m.oom_killed()
        assert m.stats().memory_peak >= 8 << 20


FORK_LOOP = """
import errno, os, signal
children = []
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print(len(children), errno.errorcode[e.errno], flush=True)
        break
    if pid == 0:
        signal.pause()
        os._exit(0)
    children.append(pid)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def test_pids_limit_stops_a_fork_loop() -> None:
    with job_cgroup(Limits(pids_max=10)) as m:
        with open(f"{ROOT}/pids/joblet/{m.name}/pids.max") as f:
            assert f.read().strip() == "10"
        p = spawn_held(FORK_LOOP)
        m.add_process(p.pid)
        release(p)
        rc, out = finish(p)
        forked, code = out.split()
        assert rc == 0  # the process itself survived to report the failure
        assert code == "EAGAIN"
        assert 1 <= int(forked) <= 9  # 10 tasks including the forking process itself


def test_cpu_limit_caps_a_busy_loop() -> None:
    with job_cgroup(Limits(max_cpu=20)) as m:
        with open(f"{ROOT}/cpu/joblet/{m.name}/cpu.cfs_quota_us") as f:
            assert f.read().strip() == "20000"
        p = spawn_held(
            "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end:\n    pass\n"
        )
        m.add_process(p.pid)
        start = time.monotonic()
        release(p)
        rc, _ = finish(p)
        wall_usec = (time.monotonic() - start) * 1e6
        assert rc == 0
        used = m.stats().cpu_usage_usec
        assert used > 0
        # 20% of one core, with slack for the first period and accounting granularity.
        assert used <= 0.30 * wall_usec, (used, wall_usec)


@pytest.mark.parametrize("cores", ["0", "1"])
def test_cpuset_pins_the_process(cores: str) -> None:
    if int(cores) >= host_online_cpus():
        pytest.skip(f"CPU {cores} does not exist here")
    with job_cgroup(Limits(cpu_cores=cores)) as m:
        p = spawn_held("print(open('/proc/self/status').read())\n")
        m.add_process(p.pid)
        with open(f"/proc/{p.pid}/status") as f:
            before_release = [ln for ln in f if ln.startswith("Cpus_allowed_list:")]
        release(p)
        rc, out = finish(p)
        assert rc == 0
        assert before_release == [f"Cpus_allowed_list:\t{cores}\n"]
        assert f"Cpus_allowed_list:\t{cores}\n" in out


SPAWN_FAMILY = """
import os, signal
for _ in range(4):
    if os.fork() == 0:
        if os.fork() == 0:
            signal.pause()
        signal.pause()
print('ready', flush=True)
signal.pause()
"""


def test_kill_empties_a_cgroup_with_many_processes() -> None:
    with job_cgroup(Limits()) as m:
        p = spawn_held(SPAWN_FAMILY)
        m.add_process(p.pid)
        release(p)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 10
        while len(m.procs()) < 9 and time.monotonic() < deadline:
            time.sleep(0.01)
        pids = m.procs()
        assert len(pids) == 9 and p.pid in pids
        assert m.stats().pids_current == 9
        m.kill(timeout=5)
        assert m.procs() == []
        assert p.wait(timeout=5) == -9
        with open(f"{ROOT}/freezer/joblet/{m.name}/freezer.state") as f:
            assert f.read().strip() == "THAWED"


def test_signal_reaches_every_process() -> None:
    with job_cgroup(Limits()) as m:
        p = spawn_held("import signal\nprint('ready', flush=True)\nsignal.pause()\n")
        m.add_process(p.pid)
        release(p)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
        m.signal(15)
        assert p.wait(timeout=5) == -15


def test_destroy_removes_every_controller_dir() -> None:
    m = new_manager(f"itest-{uuid.uuid4().hex[:12]}")
    try:
        m.create(Limits(max_cpu=50, max_memory_mb=64, pids_max=20))
        assert len(_leftovers(m.name)) >= 5
    finally:
        m.destroy()
    assert _leftovers(m.name) == []
    m.destroy()  # idempotent


def _io_device() -> tuple[int, int]:
    dev = device_for_path("/var/tmp")
    if dev is None:
        pytest.skip("/var/tmp is not on a block device")
    return dev


def test_blkio_throttle_lands_on_the_real_device() -> None:
    major, minor = _io_device()
    with job_cgroup(Limits(max_iobps=1 << 20, io_device=(major, minor))) as m:
        for kind in ("read", "write"):
            path = f"{ROOT}/blkio/joblet/{m.name}/blkio.throttle.{kind}_bps_device"
            with open(path) as f:
                assert f.read().split() == [f"{major}:{minor}", str(1 << 20)]


def test_direct_io_is_throttled_to_the_limit() -> None:
    """4 MiB of O_DIRECT writes, then reads, under 1 MiB/s: each takes at least ~3 s."""
    dev = _io_device()
    target = f"/var/tmp/joblet-iotest-{uuid.uuid4().hex}"
    dd = (
        "import subprocess, sys, time\n"
        "t = time.monotonic()\n"
        f"subprocess.run(['dd', 'if=/dev/zero', 'of={target}', 'bs=64k', 'count=64',"
        " 'oflag=direct', 'conv=fsync', 'status=none'], check=True)\n"
        "w = time.monotonic() - t\n"
        "t = time.monotonic()\n"
        f"subprocess.run(['dd', 'if={target}', 'of=/dev/null', 'bs=64k', 'iflag=direct',"
        " 'status=none'], check=True)\n"
        "print(w, time.monotonic() - t)\n"
    )
    try:
        with job_cgroup(Limits(max_iobps=1 << 20, io_device=dev)) as m:
            p = spawn_held(dd)
            m.add_process(p.pid)
            release(p)
            rc, out = finish(p, timeout=120)
            assert rc == 0, out
            write_s, read_s = (float(x) for x in out.split())
            assert write_s >= 3.0, write_s
            assert read_s >= 3.0, read_s
    finally:
        if os.path.exists(target):
            os.unlink(target)


def test_invalid_cpu_is_refused_before_anything_is_created() -> None:
    from node_agent.isolation.cgroups import InvalidLimitsError

    m = new_manager(f"itest-{uuid.uuid4().hex[:12]}")
    with pytest.raises(InvalidLimitsError, match="does not exist"):
        m.create(Limits(cpu_cores=str(host_online_cpus())))
    assert _leftovers(m.name) == []


def test_add_process_of_exited_pid_is_a_clear_error() -> None:
    from node_agent.isolation.cgroups import CgroupAccessError

    p = subprocess.Popen(["true"])
    p.wait()
    with job_cgroup(Limits()) as m, pytest.raises(CgroupAccessError) as info:
        m.add_process(p.pid)
    assert info.value.errno == errno.ESRCH
    assert "already exited" in str(info.value)


# --- The v2 driver's controller-independent half on this host's real (empty) cgroup2 mount.
# No limits can be tested there, but membership, recursion, cpu.stat, cgroup.kill, the
# freeze-then-kill fallback and removal run against the real kernel interface.

UNIFIED = f"{ROOT}/unified"
needs_unified = pytest.mark.skipif(
    not os.path.exists(f"{UNIFIED}/cgroup.procs"),
    reason="no cgroup2 mount at /sys/fs/cgroup/unified",
)


class _NoCgroupKill(HostFS):
    """The real tree, minus cgroup.kill: what a kernel before 5.14 offers."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.freezes: list[str] = []

    def exists(self, rel: str) -> bool:
        return not rel.endswith("cgroup.kill") and super().exists(rel)

    def write(self, rel: str, value: str) -> None:
        if rel.endswith("cgroup.freeze"):
            self.freezes.append(value)
        super().write(rel, value)


@contextmanager
def unified_cgroup(fs: HostFS | None = None) -> Iterator[V2Manager]:
    m = V2Manager(f"itest-{uuid.uuid4().hex[:12]}", root=UNIFIED, fs=fs)
    try:
        m.create(Limits())
        yield m
    finally:
        try:
            m.kill(timeout=10)
        finally:
            m.destroy()
    assert not os.path.exists(f"{UNIFIED}/joblet/{m.name}")


@needs_unified
@pytest.mark.parametrize("use_cgroup_kill", [True, False], ids=["cgroup.kill", "freeze"])
def test_v2_driver_core_on_real_cgroup2(use_cgroup_kill: bool) -> None:
    fs = None if use_cgroup_kill else _NoCgroupKill(UNIFIED)
    with unified_cgroup(fs) as m:
        p = spawn_held(
            "import time\nend = time.monotonic() + 0.2\nwhile time.monotonic() < end:\n"
            "    pass\n" + SPAWN_FAMILY
        )
        m.add_process(p.pid)
        release(p)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
        # A sub-cgroup the job made for itself is part of the job.
        os.mkdir(f"{UNIFIED}/joblet/{m.name}/inner")
        child = m.procs()[-1]
        with open(f"{UNIFIED}/joblet/{m.name}/inner/cgroup.procs", "w") as f:
            f.write(str(child))
        pids = m.procs()
        assert len(pids) == 9 and p.pid in pids and child in pids
        assert m.stats().cpu_usage_usec >= 100_000  # at least half of the 0.2 s busy loop
        m.kill(timeout=5)
        assert m.procs() == []
        assert p.wait(timeout=5) == -9
        with open(f"{UNIFIED}/joblet/{m.name}/cgroup.freeze") as f:
            assert f.read().strip() == "0"
        if fs is not None:
            assert fs.freezes == ["1", "0"]  # froze, killed, thawed


@needs_unified
def test_v2_driver_refuses_limits_without_controllers() -> None:
    m = V2Manager(f"itest-{uuid.uuid4().hex[:12]}", root=UNIFIED)
    with pytest.raises(CgroupUnavailableError, match="controller\\(s\\) cpu, memory not available"):
        m.create(Limits(max_cpu=50, max_memory_mb=10))
    assert not os.path.exists(f"{UNIFIED}/joblet/{m.name}")
