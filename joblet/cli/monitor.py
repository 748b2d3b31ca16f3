"""``joblet monitor status|watch``: a node's host metrics, summarised for people."""

from __future__ import annotations

import sys

from joblet.api import joblet_pb2 as pb
from joblet.cli.output import human_bytes, print_json, print_json_line, print_pairs
from joblet.cli.session import Session


def summary_pairs(
    host: pb.HostInfo,
    cpu: pb.CPUMetrics,
    memory: pb.MemoryMetrics,
    disks: list[pb.DiskMetrics],
) -> list[tuple[str, object]]:
    platform = " ".join(p for p in (host.platform, host.platform_version) if p) or host.os
    pairs: list[tuple[str, object]] = [
        ("host", host.hostname),
        ("node", host.node_id),
        ("os", f"{platform}, kernel {host.kernel_version or '?'}, {host.architecture or '?'}"),
        ("uptime", _duration(host.uptime) if host.uptime else None),
        (
            "cpu",
            f"{cpu.cores or host.cpu_count} cores, {cpu.usage_percent:.1f}% used, load "
            + " ".join(f"{x:.2f}" for x in cpu.load_average),
        ),
        (
            "memory",
            f"{human_bytes(memory.used_bytes)} of {human_bytes(memory.total_bytes)} used "
            f"({memory.usage_percent:.1f}%), {human_bytes(memory.available_bytes)} available",
        ),
    ]
    for disk in disks:
        pairs.append(
            (
                f"disk {disk.mount_point or disk.device}",
                f"{human_bytes(disk.used_bytes)} of {human_bytes(disk.total_bytes)} used "
                f"({disk.usage_percent:.1f}%) {disk.device} {disk.filesystem}".rstrip(),
            )
        )
    return pairs


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return (f"{days}d " if days else "") + f"{hours}h{rest // 60:02d}m"


def monitor_status(session: Session) -> int:
    status = session.client.system_status()
    if session.json:
        print_json(status)
        return 0
    pairs = summary_pairs(status.host, status.cpu, status.memory, list(status.disks))
    pairs.insert(0, ("time", status.timestamp))
    pairs.insert(1, ("available", "yes" if status.available else "no"))
    pairs.extend(detail_pairs(status))
    print_pairs(pairs)
    return 0


def detail_pairs(status: pb.SystemStatusResponse) -> list[tuple[str, object]]:
    """Everything below the summary: addresses, traffic, processes, cloud, agent version."""
    host = status.host
    pairs: list[tuple[str, object]] = []
    if host.server_ips:
        pairs.append(("addresses", ", ".join(host.server_ips)))
    if host.mac_addresses:
        pairs.append(("macs", ", ".join(host.mac_addresses)))
    if status.memory.swap_total:
        m = status.memory
        pairs.append(("swap", f"{human_bytes(m.swap_used)} of {human_bytes(m.swap_total)} used"))
    for net in status.networks:
        if net.interface == "lo":
            continue
        pairs.append(
            (
                f"net {net.interface}",
                f"rx {human_bytes(net.receive_rate)}/s tx {human_bytes(net.transmit_rate)}/s "
                f"(total rx {human_bytes(net.bytes_received)} tx {human_bytes(net.bytes_sent)})",
            )
        )
    if status.HasField("io"):
        io = status.io
        pairs.append(
            ("disk io", f"read {human_bytes(io.read_rate)}/s write {human_bytes(io.write_rate)}/s")
        )
    if status.HasField("processes"):
        p = status.processes
        pairs.append(
            (
                "processes",
                f"{p.total_processes} ({p.running_processes} running, {p.sleeping_processes} "
                f"sleeping, {p.zombie_processes} zombie), {p.total_threads} threads",
            )
        )
        top = ", ".join(f"{t.name}[{t.pid}] {t.cpu_percent:.1f}%" for t in p.top_by_cpu[:3])
        pairs.append(("top cpu", top or None))
        top = ", ".join(
            f"{t.name}[{t.pid}] {human_bytes(t.memory_bytes)}" for t in p.top_by_memory[:3]
        )
        pairs.append(("top memory", top or None))
    cloud = status.cloud
    if cloud.provider:
        extra = ", ".join(
            x for x in (cloud.instance_type, cloud.region, cloud.zone, cloud.hypervisor_type) if x
        )
        pairs.append(("cloud", cloud.provider + (f" ({extra})" if extra else "")))
    version = status.server_version
    if version.version:
        commit = f" {version.git_commit[:12]}" if version.git_commit else ""
        runtime = f", {version.go_version}" if version.go_version else ""
        pairs.append(
            (
                "agent",
                f"{version.component or 'joblet-agent'} {version.version}{commit}"
                f" ({version.platform or '?'}{runtime})",
            )
        )
    return pairs


def monitor_watch(session: Session) -> int:
    args = session.args
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    stream = session.client.stream_metrics(args.interval, metrics)
    try:
        for sample in stream:
            if session.json:
                print_json_line(sample)
            else:
                sys.stdout.write(_line(sample) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        stream.cancel()
        return 0
    return 0


def _line(sample: pb.SystemMetricsResponse) -> str:
    parts = [sample.timestamp or "-"]
    if sample.HasField("cpu"):
        load = " ".join(f"{x:.2f}" for x in sample.cpu.load_average)
        parts.append(f"cpu {sample.cpu.usage_percent:5.1f}%" + (f" load {load}" if load else ""))
    if sample.HasField("memory"):
        parts.append(f"mem {sample.memory.usage_percent:5.1f}%")
    for disk in sample.disks:
        parts.append(f"{disk.mount_point or disk.device} {disk.usage_percent:.0f}%")
    if sample.networks:
        nets = [n for n in sample.networks if n.interface != "lo"]
        rx = sum(n.receive_rate for n in nets)
        tx = sum(n.transmit_rate for n in nets)
        parts.append(f"net rx {human_bytes(rx)}/s tx {human_bytes(tx)}/s")
    if sample.HasField("io"):
        io = sample.io
        parts.append(f"io r {human_bytes(io.read_rate)}/s w {human_bytes(io.write_rate)}/s")
    if sample.HasField("processes"):
        parts.append(f"procs {sample.processes.total_processes}")
    return "  ".join(parts)
