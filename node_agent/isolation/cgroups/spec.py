"""What a job asks for, and the exact cgroup file writes that express it — with no I/O.

The drivers (``v1.py``, ``v2.py``) only apply what this module plans, so every rule about
units, ordering and "unlimited" values is tested here without root or a kernel:

* ``max_cpu`` is a percentage of one core: 250 means a CFS quota of 250 ms per 100 ms period.
* ``max_memory_mb`` is MiB. Swap is capped so it cannot extend the limit (v2 ``memory.swap.max
  0``; v1 ``memsw`` equal to the memory limit when swap accounting exists, else swappiness 0).
  A v2 kernel offers no ``memory.swap.max`` when built without swap or (before 6.1) booted
  with ``swapaccount=0``; swap then cannot be capped per cgroup, only switched off host-wide.
* ``max_iobps`` throttles read and write on the job's own block device, never a fixed one.
* Every limit is written even when it is 0 ("unlimited"), so re-applying a spec to an existing
  cgroup converges on it instead of keeping an old value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidLimitsError

CFS_PERIOD_US = 100_000
MIB = 1024 * 1024
# Bounds that keep every value inside what the kernel accepts (and catch unit mix-ups early).
MAX_CPU_PERCENT = 1_000_000  # 10,000 cores
MAX_MEMORY_MB = (1 << 62) // MIB
PID_MAX_LIMIT = 4 * 1024 * 1024  # the kernel's PID_MAX_LIMIT on 64-bit
MAX_MAJOR = (1 << 12) - 1
MAX_MINOR = (1 << 20) - 1

V2Write = tuple[str, str]  # (file in the job's cgroup, value)
V1Write = tuple[str, str, str]  # (controller, file in the job's cgroup of it, value)


@dataclass(frozen=True)
class Limits:
    """A job's resource limits; every 0 / "" / None means "unlimited"."""

    max_cpu: int = 0  # percent of ONE core, may exceed 100 (250 = 2.5 cores)
    cpu_cores: str = ""  # cpuset list like "0-3" or "1,3"; "" = all cores
    max_memory_mb: int = 0  # MiB
    max_iobps: int = 0  # bytes/s, read AND write, on io_device
    io_device: tuple[int, int] | None = None  # (major, minor) of the whole block device
    pids_max: int = 0


@dataclass(frozen=True)
class CgroupStats:
    """A snapshot of a job cgroup's usage counters."""

    cpu_usage_usec: int
    memory_current: int
    memory_peak: int
    pids_current: int
    oom_kills: int


_CPU_ITEM = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")


def parse_cpuset(text: str, online_cpus: int) -> tuple[int, ...]:
    """Parse a CPU list such as ``"0-3"``, ``"1,3"`` or ``"0-1,4"`` into sorted CPU numbers.

    Raises ValueError naming the offending item when the syntax is wrong, a range runs
    backwards, or a CPU number is not below ``online_cpus``.
    """
    body = text.strip()
    if not body:
        raise ValueError("CPU list is empty; give CPUs like '0-3' or '1,3'")
    cpus: set[int] = set()
    for item in body.split(","):
        m = _CPU_ITEM.fullmatch(item)
        if m is None:
            raise ValueError(
                f"invalid CPU list {text!r}: {item!r} is not a CPU number or a range like '0-3'"
            )
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if last < first:
            raise ValueError(f"invalid CPU list {text!r}: range {item!r} runs backwards")
        if last >= online_cpus:
            raise ValueError(
                f"invalid CPU list {text!r}: CPU {last} does not exist"
                f" (this host has CPUs 0-{online_cpus - 1})"
            )
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def format_cpuset(cpus: tuple[int, ...]) -> str:
    """The kernel's canonical form of a CPU list: ``(0, 1, 2, 5)`` -> ``"0-2,5"``."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            parts.append(_run_text(run))
        run = [cpu]
    if run:
        parts.append(_run_text(run))
    return ",".join(parts)


def _run_text(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def validate(limits: Limits, online_cpus: int) -> tuple[int, ...]:
    """Check ``limits`` against the kernel's ranges and this host; return the parsed cpuset
    (empty when ``cpu_cores`` is ""). Raises InvalidLimitsError."""
    for field, value, top in (
        ("max_cpu", limits.max_cpu, MAX_CPU_PERCENT),
        ("max_memory_mb", limits.max_memory_mb, MAX_MEMORY_MB),
        ("max_iobps", limits.max_iobps, 1 << 62),
        ("pids_max", limits.pids_max, PID_MAX_LIMIT),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidLimitsError(f"{field} must be an integer, got {value!r}")
        if value < 0:
            raise InvalidLimitsError(f"{field} must be 0 (unlimited) or positive, got {value}")
        if value > top:
            raise InvalidLimitsError(f"{field} {value} is larger than the maximum {top}")
    if limits.io_device is not None:
        major, minor = limits.io_device
        if not (0 < major <= MAX_MAJOR and 0 <= minor <= MAX_MINOR):
            raise InvalidLimitsError(
                f"io_device {major}:{minor} is not a block device number (major:minor)"
            )
    elif limits.max_iobps:
        raise InvalidLimitsError(
            "max_iobps needs io_device: the block device backing the job's files"
            " (see device_for_path); it is never guessed"
        )
    if not limits.cpu_cores:
        return ()
    try:
        return parse_cpuset(limits.cpu_cores, online_cpus)
    except ValueError as e:
        raise InvalidLimitsError(f"cpu_cores: {e}") from e


def cpu_quota_us(max_cpu: int) -> int:
    """CFS quota per ``CFS_PERIOD_US`` for a percentage of one core (0 -> -1, unlimited)."""
    return max_cpu * CFS_PERIOD_US // 100 if max_cpu else -1


def memory_bytes(max_memory_mb: int) -> int:
    return max_memory_mb * MIB


def v2_writes(
    limits: Limits, *, online_cpus: int, swap_accounting: bool = True, oom_group: bool = True
) -> list[V2Write]:
    """The cgroup v2 writes, in order, that put a job cgroup into the state ``limits`` asks for.

    ``swap_accounting``: the job cgroup has ``memory.swap.max``. ``oom_group``: it has
    ``memory.oom.group`` — set so an OOM kill takes the whole job, not a random part of it.
    """
    cpus = validate(limits, online_cpus)
    quota = cpu_quota_us(limits.max_cpu)
    writes: list[V2Write] = [("cpu.max", f"{quota if quota > 0 else 'max'} {CFS_PERIOD_US}")]
    mem = str(memory_bytes(limits.max_memory_mb)) if limits.max_memory_mb else "max"
    writes.append(("memory.max", mem))
    if swap_accounting:
        writes.append(("memory.swap.max", "0" if limits.max_memory_mb else "max"))
    if oom_group:
        writes.append(("memory.oom.group", "1"))
    if limits.io_device is not None:
        major, minor = limits.io_device
        bps = str(limits.max_iobps) if limits.max_iobps else "max"
        writes.append(("io.max", f"{major}:{minor} rbps={bps} wbps={bps}"))
    writes.append(("pids.max", str(limits.pids_max) if limits.pids_max else "max"))
    # "" makes the job use its parent's CPUs again, so re-applying without cores widens it.
    writes.append(("cpuset.cpus", format_cpuset(cpus)))
    return writes


def v1_writes(
    limits: Limits,
    *,
    online_cpus: int,
    parent_cpus: str,
    parent_mems: str,
    swap_accounting: bool,
) -> list[V1Write]:
    """The cgroup v1 writes, in order, for ``limits``.

    ``parent_cpus``/``parent_mems`` are the parent cpuset's lists: a v1 cpuset starts empty and
    no process may join until both are set. ``swap_accounting``: ``memory.memsw.*`` exists.
    """
    cpus = validate(limits, online_cpus)
    writes: list[V1Write] = [
        ("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US)),
        ("cpu", "cpu.cfs_quota_us", str(cpu_quota_us(limits.max_cpu))),
    ]
    mem = str(memory_bytes(limits.max_memory_mb)) if limits.max_memory_mb else "-1"
    if swap_accounting:
        # memsw may never be below the memory limit: lift it first so raising an existing
        # limit cannot fail, then pin it to the memory limit so swap adds nothing.
        writes.append(("memory", "memory.memsw.limit_in_bytes", "-1"))
        writes.append(("memory", "memory.limit_in_bytes", mem))
        writes.append(("memory", "memory.memsw.limit_in_bytes", mem))
    else:
        writes.append(("memory", "memory.limit_in_bytes", mem))
        if limits.max_memory_mb:
            # Without memsw the limit only counts RAM; keep the job's pages out of swap.
            writes.append(("memory", "memory.swappiness", "0"))
    if limits.io_device is not None:
        major, minor = limits.io_device
        # 0 removes the device's rule, i.e. unlimited.
        rule = f"{major}:{minor} {limits.max_iobps}"
        writes.append(("blkio", "blkio.throttle.read_bps_device", rule))
        writes.append(("blkio", "blkio.throttle.write_bps_device", rule))
    writes.append(("pids", "pids.max", str(limits.pids_max) if limits.pids_max else "max"))
    writes.append(("cpuset", "cpuset.mems", parent_mems))
    writes.append(("cpuset", "cpuset.cpus", format_cpuset(cpus) if cpus else parent_cpus))
    return writes


def needed_v2_controllers(limits: Limits) -> frozenset[str]:
    """Controllers without which ``limits`` cannot be enforced on cgroup v2."""
    needed = {"pids"} if limits.pids_max else set()
    if limits.max_cpu:
        needed.add("cpu")
    if limits.max_memory_mb:
        needed.add("memory")
    if limits.max_iobps:
        needed.add("io")
    if limits.cpu_cores:
        needed.add("cpuset")
    return frozenset(needed)


def needed_v1_controllers(limits: Limits) -> frozenset[str]:
    """Controllers without which ``limits`` cannot be enforced on cgroup v1."""
    v2_to_v1 = {"cpu": "cpu", "memory": "memory", "io": "blkio", "pids": "pids", "cpuset": "cpuset"}
    return frozenset(v2_to_v1[c] for c in needed_v2_controllers(limits))


def v2_controller_of(filename: str) -> str:
    """The v2 controller that owns an interface file: ``"memory.swap.max"`` -> ``"memory"``."""
    return filename.split(".", 1)[0]


def parse_keyed(text: str) -> dict[str, int]:
    """Parse "key value" lines (cpu.stat, memory.events, memory.oom_control); lines whose value
    is not an integer are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_int(text: str) -> int:
    """Parse a single-value counter file; ``"max"`` reads as -1."""
    value = text.strip()
    return -1 if value == "max" else int(value)


def parse_pids(text: str) -> list[int]:
    """Parse ``cgroup.procs``: one pid per line."""
    return [int(line) for line in text.split()]
