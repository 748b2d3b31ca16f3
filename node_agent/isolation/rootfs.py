"""Build the job's private root and switch into it.

Runs in the job's own process, inside its fresh mount namespace, as root, before the
privilege drop. The new root is a small tmpfs holding only mount points: host system
directories bound read-only, the job's /work bound read-write, a private /tmp, a minimal
/dev of device nodes, and a fresh /proc for the job's PID namespace. After pivot_root the
old root is detached, so nothing of the host outside these mounts is reachable, and the
root tmpfs itself is made read-only.
"""

from __future__ import annotations

import os

from node_agent.isolation.errors import MountError
from node_agent.isolation.plan import Mount
from node_agent.sys import libc

RO = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV
DEVICES = (  # name, major, minor
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    try:
        libc.mount(src, target, fstype, flags, data)
    except OSError as e:
        raise MountError(
            "root", f"mount {fstype or src} on {target}: {os.strerror(e.errno or 0)}"
        ) from e


def make_private() -> None:
    """Stop mount events flowing between this namespace and the host, both ways."""
    _mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE, None)


def _bind(source: str, target: str, *, readonly: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            with open(target, "w"):
                pass
    _mount(source, target, None, libc.MS_BIND | libc.MS_REC, None)
    flags = libc.MS_BIND | libc.MS_REMOUNT | libc.MS_NOSUID | libc.MS_NODEV
    if readonly:
        flags |= libc.MS_RDONLY
    _mount(None, target, None, flags, None)


def build(root: str, mounts: tuple[Mount, ...]) -> None:
    _mount("joblet-root", root, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV, "size=1m,mode=755")
    for m in mounts:
        target = root + m.target
        if m.kind == "bind-ro":
            _bind(m.source, target, readonly=True)
        elif m.kind == "bind-rw":
            _bind(m.source, target, readonly=False)
        elif m.kind == "tmpfs":
            os.makedirs(target, exist_ok=True)
            _mount("tmpfs", target, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV, m.options)
        elif m.kind == "symlink":
            os.symlink(m.source, target)
        else:
            raise MountError("root", f"unknown mount kind {m.kind!r} for {m.target}")
    _make_dev(root + "/dev")
    os.makedirs(root + "/proc", exist_ok=True)


def _make_dev(dev: str) -> None:
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", libc.MS_NOSUID | libc.MS_NOEXEC, "size=64k,mode=755")
    old = os.umask(0)
    try:
        for name, major, minor in DEVICES:
            os.mknod(f"{dev}/{name}", 0o666 | 0o020000, os.makedev(major, minor))
        os.mkdir(f"{dev}/shm", 0o1777)
        os.mkdir(f"{dev}/pts", 0o755)
    finally:
        os.umask(old)
    for name, text in DEV_LINKS:
        os.symlink(text, f"{dev}/{name}")
    _mount("shm", f"{dev}/shm", "tmpfs", libc.MS_NOSUID | libc.MS_NODEV, "size=64m,mode=1777")
    _mount(
        "devpts",
        f"{dev}/pts",
        "devpts",
        libc.MS_NOSUID | libc.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )


def pivot(root: str) -> None:
    """Make `root` the filesystem root and detach the host's."""
    os.chdir(root)
    try:
        libc.pivot_root(".", ".")
        libc.umount2(".", libc.MNT_DETACH)
    except OSError as e:
        raise MountError("root", f"pivot_root into {root}: {os.strerror(e.errno or 0)}") from e
    os.chdir("/")


def mount_proc() -> None:
    """A /proc of the job's own PID namespace, with the kernel tunables read-only."""
    _mount("proc", "/proc", "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, None)
    _mount("/proc/sys", "/proc/sys", None, libc.MS_BIND | libc.MS_REC, None)
    _mount(None, "/proc/sys", None, libc.MS_BIND | libc.MS_REMOUNT | RO, None)


def seal_root() -> None:
    """The root tmpfs holds only mount points: nothing may be created beside them."""
    _mount(None, "/", None, libc.MS_BIND | libc.MS_REMOUNT | RO, None)
