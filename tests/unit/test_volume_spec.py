"""Volume requests parsed purely: sizes, names, types, bounds, the definition, mountinfo."""

from __future__ import annotations

import pytest

from node_agent.errors import InvalidArgument
from node_agent.volumes.spec import (
    GiB,
    MiB,
    VolumeDef,
    VolumePaths,
    format_size,
    mount_points,
    parse_request,
    parse_size,
)

NOW = "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GB", GiB),
        ("1Gi", GiB),
        ("1gib", GiB),
        ("1G", GiB),
        ("500MB", 500 * MiB),
        ("64M", 64 * MiB),
        (" 64 mb ", 64 * MiB),
        ("1.5GB", 1536 * MiB),
        ("2TB", 2 << 40),
        ("1048576", MiB),
        ("4096B", 4096),
        ("8Ki", 8192),
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "GB", "1XB", "-1GB", "1 G B", "1e9", "0x10", "1.5"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(InvalidArgument, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("n", "text"),
    [(GiB, "1GB"), (1536 * MiB, "1536MB"), (64 * MiB, "64MB"), (4096, "4KB"), (1000, "1000B")],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text
    assert parse_size(text) == n


def test_request_ok() -> None:
    v = parse_request("data-1", "64MB", "filesystem", NOW)
    assert v == VolumeDef("data-1", "filesystem", 64 * MiB, NOW)
    assert v.size == "64MB"
    assert parse_request("m", "1MB", "MEMORY", NOW).kind == "memory"
    assert parse_request("d", "64MB", "", NOW).kind == "filesystem"  # Joblet's default
    assert parse_request("r", "10000001B", "memory", NOW).size_bytes % 4096 == 0


@pytest.mark.parametrize(
    ("name", "size", "kind", "words"),
    [
        ("Bad", "64MB", "filesystem", "name"),
        ("", "64MB", "filesystem", "name"),
        ("-x", "64MB", "filesystem", "name"),
        ("a/b", "64MB", "filesystem", "name"),
        ("x" * 64, "64MB", "filesystem", "name"),
        ("ok", "64MB", "nfs", "type"),
        ("ok", "1MB", "filesystem", "too small"),
        ("ok", "512KB", "memory", "too small"),
        ("ok", "2TB", "filesystem", "larger"),
        ("ok", "lots", "memory", "not a size"),
    ],
)
def test_bad_requests(name: str, size: str, kind: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_request(name, size, kind, NOW)


def test_memory_volume_bounded_by_host_memory() -> None:
    with pytest.raises(InvalidArgument, match="memory"):
        parse_request("m", "2GB", "memory", NOW, memory_limit=GiB)
    parse_request("f", "2GB", "filesystem", NOW, memory_limit=GiB)  # disk is not memory


def test_longest_name() -> None:
    assert parse_request("a" * 63, "64MB", "filesystem", NOW).name == "a" * 63


def test_definition_round_trip() -> None:
    v = parse_request("data", "1GB", "filesystem", NOW)
    assert VolumeDef.from_json(v.to_json()) == v
    with pytest.raises(InvalidArgument):
        VolumeDef.from_json({**v.to_json(), "name": "../etc"})


def test_paths() -> None:
    p = VolumePaths("/s/volumes")
    assert p.definition("v") == "/s/volumes/v.json"
    assert p.image("v") == "/s/volumes/v.img"
    assert p.mount_point("v") == "/s/volumes/mnt/v"


def test_mountinfo() -> None:
    text = (
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "90 27 7:0 / /var/lib/joblet/volumes/mnt/data rw,nosuid - ext4 /dev/loop0 rw\n"
        "91 27 0:50 / /with\\040space rw - tmpfs joblet-m rw,size=1024k\n"
        "garbage\n"
    )
    assert mount_points(text) == {
        "/proc": "proc",
        "/var/lib/joblet/volumes/mnt/data": "ext4",
        "/with space": "tmpfs",
    }
