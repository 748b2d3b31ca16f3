"""The cgroup package's error tree.

Callers (the job supervisor, the gRPC error interceptor) catch :class:`CgroupError` and map its
subclasses to user-facing codes: bad limits are the caller's fault (INVALID_ARGUMENT), a
missing controller is the host's (FAILED_PRECONDITION), a refused kernel write or a cgroup
that will not empty is an internal failure. Every message names the file or limit involved and,
where one is known, what to do about it.
"""

from __future__ import annotations

import errno as _errno


class CgroupError(Exception):
    """Base of every error raised by ``node_agent.isolation.cgroups``."""


class InvalidLimitsError(CgroupError, ValueError):
    """A ``Limits`` value the kernel cannot express or this host cannot honour (e.g. CPU 7 on a
    2-CPU host, an IO limit without a device)."""


class InvalidNameError(CgroupError, ValueError):
    """A cgroup name that is not a single, plain path component."""


class CgroupUnavailableError(CgroupError):
    """No usable cgroup hierarchy, or a controller that a requested limit needs is missing."""


class CgroupAccessError(CgroupError):
    """The kernel refused a read, write, mkdir or rmdir of a cgroup file."""

    def __init__(self, op: str, path: str, err: OSError, value: str | None = None) -> None:
        self.op = op
        self.path = path
        self.value = value
        self.errno = err.errno
        what = f"{op} {path}" if value is None else f"{op} {value!r} to {path}"
        reason = err.strerror or str(err)
        hint = _HINTS.get((op, err.errno or 0), "")
        super().__init__(f"cannot {what}: {reason}{hint}")


class CgroupBusyError(CgroupError):
    """Processes are still inside a cgroup that should be empty (kill timed out, rmdir refused)."""

    def __init__(self, message: str, pids: list[int]) -> None:
        self.pids = pids
        super().__init__(message)


_HINTS: dict[tuple[str, int], str] = {
    ("write", _errno.EACCES): " (the agent must run as root)",
    ("write", _errno.EPERM): " (the agent must run as root)",
    ("mkdir", _errno.EACCES): " (the agent must run as root)",
    ("mkdir", _errno.EPERM): " (the agent must run as root)",
    ("write", _errno.ESRCH): " (the process has already exited)",
    (
        "write",
        _errno.EBUSY,
    ): " (a cgroup v2 parent may not hold processes of its own while controllers are enabled"
    " for its children: move them into a leaf cgroup first)",
    (
        "write",
        _errno.ENOSPC,
    ): " (cpuset: the CPU or memory node list is empty or outside the parent's set)",
}
