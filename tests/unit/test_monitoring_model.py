"""Monitoring arithmetic and request rules, without reading the host."""

from __future__ import annotations

import pytest

from node_agent.errors import InvalidArgument
from node_agent.monitoring.model import (
    METRIC_TYPES,
    Counters,
    CpuTimes,
    DiskCounters,
    NetCounters,
    classify_cloud,
    cpu_usage,
    hypervisor_from,
    io_metrics,
    net_metrics,
    parse_stream_request,
    rate,
)


def cpu(busy: float, idle: float, iowait: float = 0.0) -> CpuTimes:
    return CpuTimes(busy, 0, 0, idle, iowait, 0, 0, 0)


def test_stream_request_defaults_and_aliases() -> None:
    r = parse_stream_request(0, [])
    assert r.interval_seconds == 5
    assert r.metric_types == frozenset(METRIC_TYPES)
    r = parse_stream_request(1, ["CPU", "disks", " network "])
    assert r.interval_seconds == 1
    assert r.metric_types == {"cpu", "disk", "network"}
    assert parse_stream_request(3600, ["io"]).interval_seconds == 3600


@pytest.mark.parametrize("interval", [-1, 3601, 100000])
def test_bad_interval(interval: int) -> None:
    with pytest.raises(InvalidArgument, match="interval_seconds"):
        parse_stream_request(interval, [])


def test_unknown_metric_type() -> None:
    with pytest.raises(InvalidArgument, match="gpu"):
        parse_stream_request(1, ["cpu", "gpu"])


def test_cpu_usage() -> None:
    assert cpu_usage(cpu(10, 90), cpu(20, 180)) == pytest.approx(10.0)
    assert cpu_usage(cpu(10, 90), cpu(60, 90)) == pytest.approx(100.0)
    assert cpu_usage(cpu(10, 90), cpu(10, 90)) == 0.0  # no time passed
    assert cpu_usage(cpu(0, 0), cpu(0, 50, iowait=50)) == 0.0  # waiting is not busy


def test_rate() -> None:
    assert rate(100, 300, 2.0) == 100.0
    assert rate(300, 100, 2.0) == 0.0  # counter reset
    assert rate(1, 2, 0.0) == 0.0


def _counters(at: float, rx: int, disk_read: int, busy_ms: int) -> Counters:
    return Counters(
        at=at,
        cpu=cpu(0, 0),
        per_cpu=(),
        net={"eth0": NetCounters(rx, 2 * rx, 1, 1, 0, 0, 0, 0)},
        disks={"vda": DiskCounters(1, 1, disk_read, 0, 0, 0, busy_ms)},
    )


def test_net_and_io_rates() -> None:
    a, b = _counters(10.0, 1000, 4096, 100), _counters(12.0, 3000, 12288, 600)
    (eth,) = net_metrics(a, b)
    assert (eth.interface, eth.bytes_received, eth.receive_rate) == ("eth0", 3000, 1000.0)
    assert eth.transmit_rate == 2000.0
    io = io_metrics(a, b)
    assert io.read_bytes == 12288 and io.read_rate == 4096.0 and io.write_rate == 0.0
    assert io.disk_io[0].utilization == pytest.approx(25.0)  # 500 ms busy of 2000 ms


def test_new_interface_has_no_rate_yet() -> None:
    a = _counters(10.0, 1000, 0, 0)
    b = _counters(11.0, 5000, 0, 0)
    b.net["veth9"] = NetCounters(7000, 0, 0, 0, 0, 0, 0, 0)
    rates = {n.interface: n.receive_rate for n in net_metrics(a, b)}
    assert rates == {"eth0": 4000.0, "veth9": 0.0}


def test_cloud_from_dmi() -> None:
    assert classify_cloud({}, "none").provider == "none"
    aws = classify_cloud(
        {"sys_vendor": "Amazon EC2", "product_name": "m5.large", "board_asset_tag": "i-0abc"},
        "nitro",
    )
    assert (aws.provider, aws.instance_type, aws.instance_id) == ("aws", "m5.large", "i-0abc")
    gcp = classify_cloud({"sys_vendor": "Google", "product_name": "Google Compute Engine"}, "kvm")
    assert gcp.provider == "gcp"
    azure = classify_cloud(
        {"sys_vendor": "Microsoft Corporation", "chassis_asset_tag": "7783-7084-3265-9085"}, ""
    )
    assert azure.provider == "azure"
    assert classify_cloud({"sys_vendor": "Dell Inc."}, "none").provider == "none"


def test_hypervisor() -> None:
    assert hypervisor_from({"sys_vendor": "QEMU"}, "", True) == "qemu"
    assert hypervisor_from({}, "xen", True) == "xen"
    assert hypervisor_from({}, "", True) == "unknown"
    assert hypervisor_from({}, "", False) == "none"
