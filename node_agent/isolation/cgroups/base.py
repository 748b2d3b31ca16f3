"""What the v1 and v2 drivers share: checked file access and process bookkeeping.

:class:`CgroupFiles` wraps the package's single file-access point (``node_agent.sys.fs.HostFS``)
and turns every ``OSError`` into a :class:`CgroupAccessError` that names the file. The other
helpers implement the parts of kill/destroy that do not depend on the cgroup version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Iterable

from node_agent.sys.fs import HostFS

from . import spec
from .errors import CgroupAccessError, CgroupBusyError, InvalidNameError

POLL_INTERVAL = 0.01
# Processes usually leave within a millisecond of SIGKILL: poll fast first, then back off.
FIRST_POLL, MAX_POLL = 0.0005, 0.02


def check_name(name: str) -> str:
    """A cgroup name must be one plain path component (it becomes a directory name)."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\0" in name
        or "\n" in name
        or len(name.encode()) > 255
    ):
        raise InvalidNameError(
            f"cgroup name {name!r} must be 1-255 bytes without '/', NUL or newline,"
            " and not '.' or '..'"
        )
    return name


class CgroupFiles:
    """Cgroup file access below one mount point, with errors that name the file."""

    def __init__(self, fs: HostFS) -> None:
        self.fs = fs

    def read(self, rel: str) -> str:
        try:
            return self.fs.read(rel)
        except OSError as e:
            raise CgroupAccessError("read", self.fs.path(rel), e) from e

    def read_optional(self, rel: str) -> str | None:
        """The file's content, or None when the file (or its cgroup) does not exist."""
        try:
            return self.fs.read(rel)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise CgroupAccessError("read", self.fs.path(rel), e) from e

    def read_int(self, rel: str, default: int = 0) -> int:
        text = self.read_optional(rel)
        return default if text is None or not text.strip() else spec.parse_int(text)

    def read_keyed(self, rel: str) -> dict[str, int]:
        text = self.read_optional(rel)
        return {} if text is None else spec.parse_keyed(text)

    def write(self, rel: str, value: str) -> None:
        try:
            self.fs.write(rel, value)
        except OSError as e:
            raise CgroupAccessError("write", self.fs.path(rel), e, value) from e

    def exists(self, rel: str) -> bool:
        return self.fs.exists(rel)

    def mkdir(self, rel: str) -> None:
        try:
            self.fs.mkdir(rel)
        except OSError as e:
            raise CgroupAccessError("mkdir", self.fs.path(rel), e) from e

    def subtree(self, rel: str) -> list[str]:
        """``rel`` and every cgroup below it, children before parents (the rmdir order);
        empty when ``rel`` does not exist."""
        try:
            names = self.fs.subdirs(rel)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise CgroupAccessError("list", self.fs.path(rel), e) from e
        out: list[str] = []
        for child in names:
            out.extend(self.subtree(f"{rel}/{child}"))
        out.append(rel)
        return out

    def procs(self, rel: str) -> list[int]:
        """Pids in ``rel`` and every cgroup below it."""
        pids: list[int] = []
        for d in self.subtree(rel):
            text = self.read_optional(f"{d}/cgroup.procs")
            if text is not None:
                pids.extend(spec.parse_pids(text))
        return pids

    def remove_tree(self, rel: str, timeout: float, procs: Callable[[], list[int]]) -> None:
        """rmdir ``rel`` and its descendants; a cgroup that is already gone is fine. The kernel
        refuses (EBUSY) while a task is still leaving; retry until ``timeout``."""
        deadline = time.monotonic() + timeout
        for d in self.subtree(rel):
            while True:
                try:
                    self.fs.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise CgroupAccessError("rmdir", self.fs.path(d), e) from e
                    if time.monotonic() >= deadline:
                        pids = procs()
                        raise CgroupBusyError(
                            f"cannot remove cgroup {self.fs.path(d)}: still in use"
                            f" (pids {pids or 'none listed'}); kill() the job first",
                            pids,
                        ) from e
                    time.sleep(POLL_INTERVAL)


def send_signal(pids: Iterable[int], sig: int) -> None:
    """Signal each pid; one that has already exited is not an error."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_until_empty(name: str, procs: Callable[[], list[int]], deadline: float) -> None:
    """Poll until ``procs()`` is empty; CgroupBusyError at ``deadline`` (time.monotonic)."""
    delay = FIRST_POLL
    while True:
        pids = procs()
        if not pids:
            return
        if time.monotonic() >= deadline:
            raise CgroupBusyError(
                f"cgroup {name!r} still holds pids {pids} after they were sent SIGKILL"
                " (a process stuck in uninterruptible sleep, e.g. on a hung disk?)",
                pids,
            )
        time.sleep(delay)
        delay = min(delay * 2, MAX_POLL)


class SignalsAll:
    """What both drivers do the same way once they can list a cgroup's processes."""

    def procs(self) -> list[int]:
        raise NotImplementedError

    def signal(self, sig: int) -> None:
        send_signal(self.procs(), sig)

    def _procs_after_kill(self) -> list[int]:
        pids = self.procs()
        send_signal(pids, signal.SIGKILL)  # catches anything forked before the freeze took
        return pids
