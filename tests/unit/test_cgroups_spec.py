"""Pure translation of Limits into cgroup writes, and CPU-list parsing."""

from __future__ import annotations

import pytest

from node_agent.isolation.cgroups import InvalidLimitsError, Limits, parse_cpuset, spec

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("text", "online", "expected"),
    [
        ("0-3", 4, (0, 1, 2, 3)),
        ("1,3", 4, (1, 3)),
        ("0-1,4", 8, (0, 1, 4)),
        ("0", 1, (0,)),
        ("3,1,1-2", 4, (1, 2, 3)),
        (" 0-1\n", 2, (0, 1)),
    ],
)
def test_parse_cpuset_good(text: str, online: int, expected: tuple[int, ...]) -> None:
    assert parse_cpuset(text, online) == expected


@pytest.mark.parametrize(
    ("text", "online", "message"),
    [
        ("", 4, "empty"),
        ("a", 4, "'a' is not a CPU number"),
        ("1,,2", 4, "'' is not a CPU number"),
        ("1-", 4, "'1-' is not"),
        ("-1", 4, "'-1' is not"),
        ("0 - 1", 4, "is not"),
        ("3-1", 4, "runs backwards"),
        ("4", 4, "CPU 4 does not exist (this host has CPUs 0-3)"),
        ("0-7", 2, "CPU 7 does not exist"),
        ("0-99999999999", 4, "is not"),
    ],
)
def test_parse_cpuset_bad(text: str, online: int, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cpuset(text, online)


def test_format_cpuset_is_canonical() -> None:
    assert spec.format_cpuset((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert spec.format_cpuset((3,)) == "3"
    assert spec.format_cpuset(()) == ""


FULL = Limits(
    max_cpu=250,
    cpu_cores="0-1,3",
    max_memory_mb=512,
    max_iobps=1_048_576,
    io_device=(254, 0),
    pids_max=100,
)


def test_v2_writes_full() -> None:
    assert spec.v2_writes(FULL, online_cpus=4) == [
        ("cpu.max", "250000 100000"),
        ("memory.max", str(512 * MiB)),
        ("memory.swap.max", "0"),
        ("memory.oom.group", "1"),
        ("io.max", "254:0 rbps=1048576 wbps=1048576"),
        ("pids.max", "100"),
        ("cpuset.cpus", "0-1,3"),
    ]


def test_v2_writes_unlimited_resets_everything() -> None:
    assert spec.v2_writes(Limits(io_device=(8, 0)), online_cpus=4) == [
        ("cpu.max", "max 100000"),
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
        ("memory.oom.group", "1"),
        ("io.max", "8:0 rbps=max wbps=max"),
        ("pids.max", "max"),
        ("cpuset.cpus", ""),
    ]


def test_v2_writes_without_swap_file_or_oom_group() -> None:
    files = [
        f
        for f, _ in spec.v2_writes(
            Limits(max_memory_mb=1), online_cpus=1, swap_accounting=False, oom_group=False
        )
    ]
    assert "memory.swap.max" not in files
    assert "memory.oom.group" not in files
    assert "io.max" not in files  # no device, nothing to throttle


def test_v1_writes_full_with_swap_accounting() -> None:
    writes = spec.v1_writes(
        FULL, online_cpus=4, parent_cpus="0-3", parent_mems="0", swap_accounting=True
    )
    assert writes == [
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "250000"),
        ("memory", "memory.memsw.limit_in_bytes", "-1"),
        ("memory", "memory.limit_in_bytes", str(512 * MiB)),
        ("memory", "memory.memsw.limit_in_bytes", str(512 * MiB)),
        ("blkio", "blkio.throttle.read_bps_device", "254:0 1048576"),
        ("blkio", "blkio.throttle.write_bps_device", "254:0 1048576"),
        ("pids", "pids.max", "100"),
        ("cpuset", "cpuset.mems", "0"),
        ("cpuset", "cpuset.cpus", "0-1,3"),
    ]


def test_v1_memsw_lifted_before_memory_limit_changes() -> None:
    # Raising 32 MB -> 64 MB on an existing cgroup fails if memory.limit is written while
    # memsw is still 32 MB; the plan lifts memsw first.
    writes = spec.v1_writes(
        Limits(max_memory_mb=64),
        online_cpus=1,
        parent_cpus="0",
        parent_mems="0",
        swap_accounting=True,
    )
    mem = [(f, v) for c, f, v in writes if c == "memory"]
    assert mem == [
        ("memory.memsw.limit_in_bytes", "-1"),
        ("memory.limit_in_bytes", str(64 * MiB)),
        ("memory.memsw.limit_in_bytes", str(64 * MiB)),
    ]


def test_v1_without_swap_accounting_sets_swappiness_zero() -> None:
    writes = spec.v1_writes(
        Limits(max_memory_mb=32),
        online_cpus=1,
        parent_cpus="0",
        parent_mems="0",
        swap_accounting=False,
    )
    mem = [(f, v) for c, f, v in writes if c == "memory"]
    assert mem == [("memory.limit_in_bytes", str(32 * MiB)), ("memory.swappiness", "0")]


def test_v1_unlimited_copies_parent_cpuset_and_clears_throttle() -> None:
    writes = spec.v1_writes(
        Limits(io_device=(8, 0)),
        online_cpus=4,
        parent_cpus="0-3",
        parent_mems="0",
        swap_accounting=False,
    )
    assert ("cpu", "cpu.cfs_quota_us", "-1") in writes
    assert ("memory", "memory.limit_in_bytes", "-1") in writes
    assert ("blkio", "blkio.throttle.read_bps_device", "8:0 0") in writes
    assert ("pids", "pids.max", "max") in writes
    assert writes[-2:] == [("cpuset", "cpuset.mems", "0"), ("cpuset", "cpuset.cpus", "0-3")]
    assert not any(f == "memory.swappiness" for _, f, _ in writes)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (Limits(max_cpu=-1), "max_cpu must be 0"),
        (Limits(max_memory_mb=-5), "max_memory_mb must be 0"),
        (Limits(pids_max=10**9), "pids_max 1000000000 is larger"),
        (Limits(max_iobps=100), "max_iobps needs io_device"),
        (Limits(max_iobps=100, io_device=(0, 0)), "not a block device number"),
        (Limits(cpu_cores="0-9"), "cpu_cores: invalid CPU list '0-9': CPU 9 does not exist"),
        (Limits(cpu_cores="x"), "cpu_cores: invalid CPU list"),
        (Limits(max_cpu=True), "max_cpu must be an integer"),
    ],
)
def test_invalid_limits(limits: Limits, message: str) -> None:
    with pytest.raises(InvalidLimitsError, match=message):
        spec.v2_writes(limits, online_cpus=4)
    with pytest.raises(ValueError, match=message):  # InvalidLimitsError is a ValueError too
        spec.v1_writes(
            limits, online_cpus=4, parent_cpus="0-3", parent_mems="0", swap_accounting=True
        )


def test_needed_controllers() -> None:
    assert spec.needed_v2_controllers(Limits()) == frozenset()
    assert spec.needed_v2_controllers(FULL) == {"cpu", "memory", "io", "pids", "cpuset"}
    assert spec.needed_v1_controllers(FULL) == {"cpu", "memory", "blkio", "pids", "cpuset"}


def test_parsers() -> None:
    assert spec.parse_keyed("usage_usec 12\nuser_usec 5\nbogus x\n\n") == {
        "usage_usec": 12,
        "user_usec": 5,
    }
    assert spec.parse_int("max\n") == -1
    assert spec.parse_int("4096\n") == 4096
    assert spec.parse_pids("12\n34\n") == [12, 34]
    assert spec.parse_pids("") == []
