"""One file-access point for kernel pseudo-filesystems (cgroupfs, sysfs, procfs).

Everything under ``node_agent.isolation`` that reads or writes a kernel interface file goes
through a :class:`HostFS` rooted at that filesystem's mount point. Tests hand the drivers a
``HostFS`` rooted in a temporary directory (or a subclass that emulates a kernel quirk, such as
cgroupfs letting ``rmdir`` remove a directory that still lists control files), so the same
driver code runs against a fake tree and the real host.

Errors are plain :class:`OSError`; callers that know what the file means turn them into
their own typed errors with a message a person understands.
"""

from __future__ import annotations

import contextlib
import os


class HostFS:
    """Read and write small files below ``root``; paths are relative to ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def path(self, rel: str) -> str:
        """The absolute path of ``rel``; ``rel`` may not climb out of ``root``."""
        full = os.path.normpath(os.path.join(self.root, rel))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise ValueError(f"path {rel!r} escapes {self.root}")
        return full

    def read(self, rel: str) -> str:
        with open(self.path(rel), encoding="ascii", errors="replace") as f:
            return f.read()

    def write(self, rel: str, value: str) -> None:
        # Kernel interface files take one value per write(2); an empty write is a no-op in
        # kernfs, so an empty value is sent as a lone newline (which resets e.g. cpuset.cpus).
        # No O_CREAT: a missing interface file is an error, never a new regular file.
        data = (value or "\n").encode("ascii")
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self.path(rel))

    def listdir(self, rel: str) -> list[str]:
        return sorted(os.listdir(self.path(rel)))

    def subdirs(self, rel: str) -> list[str]:
        """Names of the directories in ``rel`` (d_type from getdents: no stat per entry)."""
        with os.scandir(self.path(rel)) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))

    def mkdir(self, rel: str) -> None:
        """Create a directory; an existing one is fine."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.path(rel), 0o755)

    def rmdir(self, rel: str) -> None:
        os.rmdir(self.path(rel))
