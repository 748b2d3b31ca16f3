"""Read the host with psutil (and a few /sys and /etc files) into the records of `model`.

Every function here blocks (it reads /proc), so the servicer calls them through
`asyncio.to_thread`. Cloud facts come only from local DMI files: nothing here contacts a
metadata server or any other address. Per-process CPU percentages come from psutil's
cached Process objects, so they are measured between two successive samples; one lock
keeps concurrent streams from interleaving on that shared cache.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata

import psutil

from node_agent import timefmt
from node_agent.monitoring.model import (
    CloudInfo,
    Counters,
    CPUMetrics,
    CpuTimes,
    DiskCounters,
    DiskMetrics,
    HostInfo,
    MemoryMetrics,
    NetCounters,
    ProcessInfo,
    ProcessMetrics,
    ServerVersionInfo,
    Snapshot,
    StreamRequest,
    classify_cloud,
    cpu_usage,
    hypervisor_from,
    io_metrics,
    net_metrics,
)
from node_agent.sys.run import CommandError, run

TOP = 10
DMI = "/sys/class/dmi/id"
DMI_FILES = (
    "sys_vendor",
    "product_name",
    "bios_vendor",
    "board_vendor",
    "chassis_asset_tag",
    "board_asset_tag",
)
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le"}
_lock = threading.Lock()


def _ts(epoch: float) -> str:
    return timefmt.fmt(datetime.fromtimestamp(epoch, UTC))


def _cpu(t: object) -> CpuTimes:
    def g(name: str) -> float:
        return float(getattr(t, name, 0.0))

    return CpuTimes(
        g("user"),
        g("nice"),
        g("system"),
        g("idle"),
        g("iowait"),
        g("irq"),
        g("softirq"),
        g("steal"),
    )


def _whole_disks() -> set[str]:
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return set()
    return {n for n in names if not n.startswith(("ram", "zram"))}


def counters() -> Counters:
    net = {
        name: NetCounters(
            c.bytes_recv,
            c.bytes_sent,
            c.packets_recv,
            c.packets_sent,
            c.errin,
            c.errout,
            c.dropin,
            c.dropout,
        )
        for name, c in psutil.net_io_counters(pernic=True, nowrap=True).items()
    }
    whole = _whole_disks()
    disks = {}
    for name, d in (psutil.disk_io_counters(perdisk=True, nowrap=True) or {}).items():
        if name not in whole:
            continue
        if name.startswith("loop") and d.read_count == 0 and d.write_count == 0:
            continue  # an unused loop device says nothing
        disks[name] = DiskCounters(
            d.read_count,
            d.write_count,
            d.read_bytes,
            d.write_bytes,
            d.read_time,
            d.write_time,
            int(getattr(d, "busy_time", 0)),
        )
    return Counters(
        at=time.monotonic(),
        cpu=_cpu(psutil.cpu_times()),
        per_cpu=tuple(_cpu(t) for t in psutil.cpu_times(percpu=True)),
        net=net,
        disks=disks,
    )


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                out[key] = value.strip().strip('"')
    return out


def host_info(node_id: str) -> HostInfo:
    rel = _os_release()
    machine = platform.machine()
    ips: list[str] = []
    macs: list[str] = []
    for name, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                ip = a.address.split("%")[0]
                if ip.startswith(("127.", "fe80")) or ip == "::1":
                    continue
                ips.append(ip)
            elif (
                a.family == psutil.AF_LINK
                and name != "lo"
                and a.address not in ("", "00:00:00:00:00:00", *macs)
            ):
                macs.append(a.address)
    boot = psutil.boot_time()
    return HostInfo(
        hostname=socket.gethostname(),
        os=platform.system().lower(),
        platform=rel.get("ID", ""),
        platform_family=(rel.get("ID_LIKE") or rel.get("ID", "")).split()[0]
        if (rel.get("ID_LIKE") or rel.get("ID"))
        else "",
        platform_version=rel.get("VERSION_ID", ""),
        kernel_version=platform.release(),
        kernel_arch=machine,
        architecture=ARCH.get(machine, machine),
        cpu_count=psutil.cpu_count() or 0,
        total_memory=psutil.virtual_memory().total,
        boot_time=_ts(boot),
        uptime=int(time.time() - boot),
        node_id=node_id,
        server_ips=tuple(ips),
        mac_addresses=tuple(macs),
    )


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def cloud_info() -> CloudInfo:
    dmi = {name: _read(os.path.join(DMI, name)) for name in DMI_FILES}
    dmi = {k: v for k, v in dmi.items() if v}
    cpu_flag = False
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu_flag = any(line.startswith("flags") and " hypervisor" in line for line in f)
    return classify_cloud(dmi, hypervisor_from(dmi, _read("/sys/hypervisor/type"), cpu_flag))


@functools.lru_cache(maxsize=1)
def server_version() -> ServerVersionInfo:
    try:
        version = metadata.version("joblet-k8s")
    except metadata.PackageNotFoundError:
        version = "0.0.0+unknown"
    source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    commit = tag = ""
    with contextlib.suppress(CommandError):
        commit = run(["git", "-C", source, "rev-parse", "HEAD"], timeout=5).stdout.decode().strip()
    if commit:
        with contextlib.suppress(CommandError):
            tag = (
                run(["git", "-C", source, "describe", "--tags", "--exact-match"], timeout=5)
                .stdout.decode()
                .strip()
            )
    machine = platform.machine()
    return ServerVersionInfo(
        version=version,
        git_commit=commit,
        git_tag=tag,
        build_date="",
        component="joblet-agent",
        go_version=f"python{platform.python_version()} ({sys.implementation.name})",
        platform=f"{platform.system().lower()}/{ARCH.get(machine, machine)}",
    )


def cpu_metrics(before: Counters, after: Counters) -> CPUMetrics:
    t = after.cpu
    return CPUMetrics(
        cores=len(after.per_cpu),
        usage_percent=cpu_usage(before.cpu, after.cpu),
        user_time=t.user,
        system_time=t.system,
        idle_time=t.idle,
        io_wait_time=t.iowait,
        steal_time=t.steal,
        load_average=tuple(os.getloadavg()),
        per_core_usage=tuple(
            cpu_usage(b, a) for b, a in zip(before.per_cpu, after.per_cpu, strict=False)
        ),
    )


def memory_metrics() -> MemoryMetrics:
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return MemoryMetrics(
        total_bytes=vm.total,
        used_bytes=vm.used,
        free_bytes=vm.free,
        available_bytes=vm.available,
        usage_percent=float(vm.percent),
        cached_bytes=int(getattr(vm, "cached", 0)),
        buffered_bytes=int(getattr(vm, "buffers", 0)),
        swap_total=sw.total,
        swap_used=sw.used,
        swap_free=sw.free,
    )


def disk_metrics() -> tuple[DiskMetrics, ...]:
    out = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            st = os.statvfs(part.mountpoint)
        except OSError:
            continue
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        used = total - st.f_bfree * st.f_frsize
        inodes_used = st.f_files - st.f_ffree
        out.append(
            DiskMetrics(
                device=part.device,
                mount_point=part.mountpoint,
                filesystem=part.fstype,
                total_bytes=total,
                used_bytes=used,
                free_bytes=free,
                usage_percent=100.0 * used / (used + free) if used + free else 0.0,
                inodes_total=st.f_files,
                inodes_used=inodes_used,
                inodes_free=st.f_ffree,
                inodes_usage_percent=100.0 * inodes_used / st.f_files if st.f_files else 0.0,
            )
        )
    return tuple(out)


ATTRS = [
    "pid",
    "ppid",
    "name",
    "cmdline",
    "cpu_percent",
    "memory_percent",
    "memory_info",
    "status",
    "create_time",
    "username",
    "num_threads",
]


def _proc(info: dict[str, object]) -> ProcessInfo:
    mem = info.get("memory_info")
    cmd = info.get("cmdline")
    return ProcessInfo(
        pid=int(info.get("pid") or 0),  # type: ignore[call-overload]
        ppid=int(info.get("ppid") or 0),  # type: ignore[call-overload]
        name=str(info.get("name") or ""),
        command=" ".join(cmd) if isinstance(cmd, list) else "",
        cpu_percent=float(info.get("cpu_percent") or 0.0),  # type: ignore[arg-type]
        memory_percent=float(info.get("memory_percent") or 0.0),  # type: ignore[arg-type]
        memory_bytes=int(getattr(mem, "rss", 0)),
        status=str(info.get("status") or ""),
        start_time=_ts(float(info.get("create_time") or 0.0)),  # type: ignore[arg-type]
        user=str(info.get("username") or ""),
    )


def process_metrics() -> ProcessMetrics:
    procs: list[dict[str, object]] = []
    for p in psutil.process_iter(ATTRS):
        procs.append(p.info)
    counts: dict[str, int] = {}
    for info in procs:
        s = str(info.get("status") or "")
        counts[s] = counts.get(s, 0) + 1

    def top(key: str) -> tuple[ProcessInfo, ...]:
        ranked = sorted(procs, key=lambda i: float(i.get(key) or 0.0), reverse=True)  # type: ignore[arg-type]
        return tuple(_proc(i) for i in ranked[:TOP])

    return ProcessMetrics(
        total_processes=len(procs),
        running_processes=counts.get(psutil.STATUS_RUNNING, 0),
        sleeping_processes=counts.get(psutil.STATUS_SLEEPING, 0)
        + counts.get(psutil.STATUS_IDLE, 0)
        + counts.get(psutil.STATUS_DISK_SLEEP, 0),
        stopped_processes=counts.get(psutil.STATUS_STOPPED, 0)
        + counts.get(psutil.STATUS_TRACING_STOP, 0),
        zombie_processes=counts.get(psutil.STATUS_ZOMBIE, 0),
        total_threads=sum(int(i.get("num_threads") or 0) for i in procs),  # type: ignore[call-overload]
        top_by_cpu=top("cpu_percent"),
        top_by_memory=top("memory_percent"),
    )


def baseline(want: Iterable[str]) -> Counters:
    """The first sample of a pair; also primes per-process CPU accounting."""
    with _lock:
        if "process" in set(want):
            for _ in psutil.process_iter(["cpu_percent"]):
                pass
        return counters()


def snapshot(node_id: str, before: Counters, req: StreamRequest) -> tuple[Snapshot, Counters]:
    """The second sample of a pair, as one message; returns the counters for the next pair."""
    want = req.metric_types
    with _lock:
        after = counters()
        return (
            Snapshot(
                timestamp=timefmt.now_str(),
                host=host_info(node_id),
                cloud=cloud_info(),
                cpu=cpu_metrics(before, after) if "cpu" in want else None,
                memory=memory_metrics() if "memory" in want else None,
                disks=disk_metrics() if "disk" in want else (),
                networks=net_metrics(before, after) if "network" in want else (),
                io=io_metrics(before, after) if "io" in want else None,
                processes=process_metrics() if "process" in want else None,
            ),
            after,
        )
