"""Host metrics as plain frozen records, and the pure arithmetic between two samples.

Field names match the proto messages (`SystemStatusResponse` and friends), so the servicer
converts them one-to-one. Rates (CPU usage, network and disk throughput, disk utilisation)
need two samples of the kernel's monotonically growing counters; `cpu_usage`, `rate` and
friends compute them here, without touching the host, so they can be unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node_agent.errors import InvalidArgument

METRIC_TYPES = ("cpu", "memory", "disk", "network", "io", "process")
_ALIASES = {"disks": "disk", "networks": "network", "processes": "process", "mem": "memory"}
DEFAULT_INTERVAL = 5
MAX_INTERVAL = 3600


@dataclass(frozen=True)
class StreamRequest:
    interval_seconds: int
    metric_types: frozenset[str]


def parse_stream_request(interval: int, types: list[str]) -> StreamRequest:
    if interval == 0:
        interval = DEFAULT_INTERVAL
    if interval < 1 or interval > MAX_INTERVAL:
        raise InvalidArgument(
            f"interval_seconds {interval} is out of range: give 1 to {MAX_INTERVAL} "
            f"(0 means the default, {DEFAULT_INTERVAL})"
        )
    wanted: set[str] = set()
    for t in types:
        key = t.strip().lower()
        key = _ALIASES.get(key, key)
        if key not in METRIC_TYPES:
            raise InvalidArgument(f"metric type {t!r} is not one of: {', '.join(METRIC_TYPES)}")
        wanted.add(key)
    return StreamRequest(interval, frozenset(wanted or METRIC_TYPES))


# -- raw counters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float

    @property
    def total(self) -> float:
        return (
            self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
        )

    @property
    def busy(self) -> float:
        return self.total - self.idle - self.iowait


@dataclass(frozen=True)
class NetCounters:
    bytes_recv: int
    bytes_sent: int
    packets_recv: int
    packets_sent: int
    errin: int
    errout: int
    dropin: int
    dropout: int


@dataclass(frozen=True)
class DiskCounters:
    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int
    read_time: int  # ms
    write_time: int  # ms
    busy_time: int  # ms


@dataclass(frozen=True)
class Counters:
    """What the kernel counts, read at one instant (`at` is a monotonic clock)."""

    at: float
    cpu: CpuTimes
    per_cpu: tuple[CpuTimes, ...]
    net: dict[str, NetCounters]
    disks: dict[str, DiskCounters]  # whole disks only


def cpu_usage(before: CpuTimes, after: CpuTimes) -> float:
    """Percent of time busy between two readings (0 when no time passed)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (after.busy - before.busy) / total))


def rate(before: int, after: int, seconds: float) -> float:
    """Per-second growth of a counter; a counter that went back (wrapped, reset) gives 0."""
    if seconds <= 0 or after < before:
        return 0.0
    return (after - before) / seconds


def utilization(before: DiskCounters, after: DiskCounters, seconds: float) -> float:
    if seconds <= 0:
        return 0.0
    return max(0.0, min(100.0, (after.busy_time - before.busy_time) / (seconds * 10.0)))


# -- the records sent to clients (field names as in the proto) --------------------------------


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    os: str
    platform: str
    platform_family: str
    platform_version: str
    kernel_version: str
    kernel_arch: str
    architecture: str
    cpu_count: int
    total_memory: int
    boot_time: str
    uptime: int
    node_id: str
    server_ips: tuple[str, ...]
    mac_addresses: tuple[str, ...]


@dataclass(frozen=True)
class CPUMetrics:
    cores: int
    usage_percent: float
    user_time: float
    system_time: float
    idle_time: float
    io_wait_time: float
    steal_time: float
    load_average: tuple[float, ...]
    per_core_usage: tuple[float, ...]


@dataclass(frozen=True)
class MemoryMetrics:
    total_bytes: int
    used_bytes: int
    free_bytes: int
    available_bytes: int
    usage_percent: float
    cached_bytes: int
    buffered_bytes: int
    swap_total: int
    swap_used: int
    swap_free: int


@dataclass(frozen=True)
class DiskMetrics:
    device: str
    mount_point: str
    filesystem: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    usage_percent: float
    inodes_total: int
    inodes_used: int
    inodes_free: int
    inodes_usage_percent: float


@dataclass(frozen=True)
class NetworkMetrics:
    interface: str
    bytes_received: int
    bytes_sent: int
    packets_received: int
    packets_sent: int
    errors_in: int
    errors_out: int
    drops_in: int
    drops_out: int
    receive_rate: float
    transmit_rate: float


@dataclass(frozen=True)
class DiskIOMetrics:
    device: str
    reads_completed: int
    writes_completed: int
    read_bytes: int
    write_bytes: int
    read_time: int
    write_time: int
    io_time: int
    utilization: float


@dataclass(frozen=True)
class IOMetrics:
    total_reads: int
    total_writes: int
    read_bytes: int
    write_bytes: int
    read_rate: float
    write_rate: float
    disk_io: tuple[DiskIOMetrics, ...]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    name: str
    command: str
    cpu_percent: float
    memory_percent: float
    memory_bytes: int
    status: str
    start_time: str
    user: str


@dataclass(frozen=True)
class ProcessMetrics:
    total_processes: int
    running_processes: int
    sleeping_processes: int
    stopped_processes: int
    zombie_processes: int
    total_threads: int
    top_by_cpu: tuple[ProcessInfo, ...]
    top_by_memory: tuple[ProcessInfo, ...]


@dataclass(frozen=True)
class CloudInfo:
    provider: str = "none"
    region: str = ""
    zone: str = ""
    instance_id: str = ""
    instance_type: str = ""
    hypervisor_type: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerVersionInfo:
    version: str
    git_commit: str
    git_tag: str
    build_date: str
    component: str
    go_version: str  # the Python version (API-COMPAT: carried in this field)
    platform: str
    proto_commit: str = ""
    proto_tag: str = ""


@dataclass(frozen=True)
class Snapshot:
    """One message's worth; a section left None was not asked for."""

    timestamp: str
    host: HostInfo
    cloud: CloudInfo
    cpu: CPUMetrics | None = None
    memory: MemoryMetrics | None = None
    disks: tuple[DiskMetrics, ...] = ()
    networks: tuple[NetworkMetrics, ...] = ()
    io: IOMetrics | None = None
    processes: ProcessMetrics | None = None


def net_metrics(before: Counters, after: Counters) -> tuple[NetworkMetrics, ...]:
    secs = after.at - before.at
    out = []
    for name in sorted(after.net):
        c = after.net[name]
        p = before.net.get(name, c)
        out.append(
            NetworkMetrics(
                interface=name,
                bytes_received=c.bytes_recv,
                bytes_sent=c.bytes_sent,
                packets_received=c.packets_recv,
                packets_sent=c.packets_sent,
                errors_in=c.errin,
                errors_out=c.errout,
                drops_in=c.dropin,
                drops_out=c.dropout,
                receive_rate=rate(p.bytes_recv, c.bytes_recv, secs),
                transmit_rate=rate(p.bytes_sent, c.bytes_sent, secs),
            )
        )
    return tuple(out)


def io_metrics(before: Counters, after: Counters) -> IOMetrics:
    secs = after.at - before.at
    disks = []
    for name in sorted(after.disks):
        c = after.disks[name]
        p = before.disks.get(name, c)
        disks.append(
            DiskIOMetrics(
                device=name,
                reads_completed=c.read_count,
                writes_completed=c.write_count,
                read_bytes=c.read_bytes,
                write_bytes=c.write_bytes,
                read_time=c.read_time,
                write_time=c.write_time,
                io_time=c.busy_time,
                utilization=utilization(p, c, secs),
            )
        )

    shared = before.disks.keys() & after.disks.keys()

    def total(attr: str) -> int:
        return sum(getattr(d, attr) for d in after.disks.values())

    def moved(attr: str) -> int:
        return sum(getattr(after.disks[k], attr) - getattr(before.disks[k], attr) for k in shared)

    return IOMetrics(
        total_reads=total("read_count"),
        total_writes=total("write_count"),
        read_bytes=total("read_bytes"),
        write_bytes=total("write_bytes"),
        read_rate=rate(0, moved("read_bytes"), secs),
        write_rate=rate(0, moved("write_bytes"), secs),
        disk_io=tuple(disks),
    )


def classify_cloud(dmi: dict[str, str], hypervisor: str) -> CloudInfo:
    """Best guess of the cloud from local DMI facts only ("none" when nothing says so)."""
    vendor = dmi.get("sys_vendor", "")
    product = dmi.get("product_name", "")
    bios = dmi.get("bios_vendor", "")
    asset = dmi.get("chassis_asset_tag", "")
    board_asset = dmi.get("board_asset_tag", "")
    text = " ".join((vendor, product, bios, asset)).lower()
    provider, instance_type, instance_id = "none", "", ""
    if "amazon" in text:
        provider, instance_type = "aws", product
        instance_id = board_asset if board_asset.startswith("i-") else ""
    elif "google" in text:
        provider = "gcp"
    elif "microsoft corporation" in text and "7783-7084-3265-9085" in asset:
        provider = "azure"
    elif "digitalocean" in text:
        provider = "digitalocean"
    elif "oraclecloud" in text:
        provider = "oracle"
    elif "alibaba" in text:
        provider = "alibaba"
    elif "hetzner" in text:
        provider = "hetzner"
    elif "openstack" in text:
        provider = "openstack"
    metadata = {k: v for k, v in dmi.items() if v and k in ("sys_vendor", "product_name")}
    return CloudInfo(
        provider=provider,
        instance_id=instance_id,
        instance_type=instance_type,
        hypervisor_type=hypervisor,
        metadata=metadata,
    )


def hypervisor_from(dmi: dict[str, str], sys_hypervisor: str, cpu_flag: bool) -> str:
    text = " ".join((dmi.get("sys_vendor", ""), dmi.get("product_name", ""))).lower()
    for needle, name in (
        ("kvm", "kvm"),
        ("qemu", "qemu"),
        ("vmware", "vmware"),
        ("virtualbox", "virtualbox"),
        ("xen", "xen"),
        ("amazon ec2", "nitro"),
        ("google compute engine", "kvm"),
        ("virtual machine", "hyper-v"),
    ):
        if needle in text:
            return name
    if sys_hypervisor:
        return sys_hypervisor
    return "unknown" if cpu_flag else "none"
