"""What a volume is, decided without touching the host: names, types, sizes, the on-disk
definition, and where its files live under the state directory.

Everything a user types (a size like "1GB", a name, a type) is parsed here once into a
frozen `VolumeDef`, so a bad request is refused with a clear message before anything is
created. Sizes use binary units: "1GB" and "1Gi" both mean 2^30 bytes. An empty type
means "filesystem".

Layout under the state directory:

    STATE/volumes/NAME.json   the definition (written atomically; its presence is the
                              commit point of a create)
    STATE/volumes/NAME.img    the sparse ext4 image of a filesystem volume
    STATE/volumes/mnt/NAME    the host mount point (loop-mounted image, or tmpfs)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from node_agent.errors import InvalidArgument

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TYPES = ("filesystem", "memory")
KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
# ext4 has no room for a journal below ~4 MiB; keep a margin.
MIN_BYTES = {"filesystem": 8 * MiB, "memory": 1 * MiB}
MAX_BYTES = 1 * TiB
_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kb": KiB,
    "ki": KiB,
    "kib": KiB,
    "m": MiB,
    "mb": MiB,
    "mi": MiB,
    "mib": MiB,
    "g": GiB,
    "gb": GiB,
    "gi": GiB,
    "gib": GiB,
    "t": TiB,
    "tb": TiB,
    "ti": TiB,
    "tib": TiB,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """ "1GB", "500MB", "64M", "1Gi", "1.5G", "1048576" → bytes (binary units)."""
    if not text.strip():
        raise InvalidArgument('volume size is empty: give one like "1GB" or "500MB"')
    m = _SIZE_RE.match(text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise InvalidArgument(
            f"volume size {text!r} is not a size: use a number with an optional unit "
            'B, K/KB/Ki, M/MB/Mi, G/GB/Gi or T/TB/Ti (binary), e.g. "1GB" or "500MB"'
        )
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value) and m.group(2).lower() in ("", "b"):
        raise InvalidArgument(f"volume size {text!r}: bytes must be a whole number")
    return int(value)


def format_size(n: int) -> str:
    """The shortest exact Joblet-style spelling: 1073741824 → "1GB", 1536 MiB → "1536MB"."""
    for unit, factor in (("TB", TiB), ("GB", GiB), ("MB", MiB), ("KB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"volume name {name!r} is not valid: use 1-63 characters a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_type(kind: str) -> str:
    kind = kind.strip().lower() or "filesystem"
    if kind not in TYPES:
        raise InvalidArgument(f"volume type {kind!r} is not one of: {', '.join(TYPES)}")
    return kind


def check_bounds(kind: str, size: int, text: str, memory_limit: int = 0) -> None:
    low = MIN_BYTES[kind]
    high = MAX_BYTES if not memory_limit or kind != "memory" else min(MAX_BYTES, memory_limit)
    if size < low:
        raise InvalidArgument(
            f"volume size {text!r} is too small for a {kind} volume: at least {format_size(low)}"
        )
    if size > high:
        what = "this node's memory" if high < MAX_BYTES else "the largest volume allowed"
        raise InvalidArgument(f"volume size {text!r} is larger than {what} ({format_size(high)})")


@dataclass(frozen=True)
class VolumeDef:
    name: str
    kind: str  # "filesystem" | "memory"
    size_bytes: int
    created_time: str  # RFC3339

    @property
    def size(self) -> str:
        return format_size(self.size_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "size_bytes": self.size_bytes,
            "created_time": self.created_time,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VolumeDef:
        return cls(
            name=check_name(str(d["name"])),
            kind=check_type(str(d["type"])),
            size_bytes=int(d["size_bytes"]),
            created_time=str(d["created_time"]),
        )


def parse_request(
    name: str, size: str, kind: str, created_time: str, memory_limit: int = 0
) -> VolumeDef:
    """Validate a CreateVolume request in full; nothing on the host is touched."""
    check_name(name)
    kind = check_type(kind)
    n = parse_size(size)
    check_bounds(kind, n, size, memory_limit)
    # Round up to whole 4 KiB pages/blocks: both tmpfs and ext4 work in those.
    n = (n + 4095) // 4096 * 4096
    return VolumeDef(name, kind, n, created_time)


@dataclass(frozen=True)
class VolumePaths:
    root: str  # STATE/volumes

    @property
    def mnt_root(self) -> str:
        return os.path.join(self.root, "mnt")

    def definition(self, name: str) -> str:
        return os.path.join(self.root, f"{name}.json")

    def image(self, name: str) -> str:
        return os.path.join(self.root, f"{name}.img")

    def mount_point(self, name: str) -> str:
        return os.path.join(self.mnt_root, name)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str) -> dict[str, str]:
    """/proc/self/mountinfo text → {mount point: filesystem type} (the last mount wins)."""
    out: dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        out[_unescape(fields[4])] = right.split()[0] if right.split() else ""
    return out
