"""Find and undo the mounts and loop devices a test or benchmark left under a directory."""

from __future__ import annotations

import os
import subprocess

from node_agent.volumes.spec import mount_points


def mounts_under(path: str) -> dict[str, str]:
    """Mount point → filesystem type, for every mount at or below `path`."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        found = mount_points(f.read())
    return {m: t for m, t in found.items() if m == real or m.startswith(real + "/")}


def loops_of(path: str) -> list[str]:
    """`losetup -a` lines of loop devices backed by a file below `path`."""
    real = os.path.realpath(path)
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if real in line]


def cleanup(path: str) -> None:
    """Unmount (deepest first) and free loop devices: nothing outlives a test."""
    for m in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    for line in loops_of(path):
        subprocess.run(["losetup", "-d", line.split(":", 1)[0]], check=False)
