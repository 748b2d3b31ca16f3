"""Running the job as an unprivileged user instead of root.

:func:`parse_user` turns the user given in a job request into a :class:`JobUser` at the edge
(numeric only: the forked child must not read /etc/passwd of the host or of the job's root).
:func:`switch_user` is the containment step run in the forked child, as root, before the seccomp
filter is installed and the job is exec'd; it leaves the process with the job's uid/gid, its
supplementary groups and no capabilities at all, and checks that this really took effect.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from node_agent.isolation import caps
from node_agent.isolation.errors import UserError
from node_agent.sys import libc

#: The highest usable id: (uid_t)-1 = 4294967295 means "leave unchanged" to setresuid(2).
MAX_ID = 0xFFFFFFFE
#: The kernel's NGROUPS_MAX.
MAX_GROUPS = 65536

_ID = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class JobUser:
    """The identity a job runs under: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for what, value in (("uid", self.uid), ("gid", self.gid)):
            _check_id(what, value)
        if len(self.groups) > MAX_GROUPS:
            raise UserError(
                "job user",
                f"{len(self.groups)} supplementary groups; the kernel allows at most {MAX_GROUPS}",
            )
        for g in self.groups:
            _check_id("supplementary group", g)


def _check_id(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise UserError("job user", f"{what} {value!r} is not an id between 0 and {MAX_ID}")


def parse_user(text: str, *, allow_root: bool = False) -> JobUser:
    """Parse ``"UID"`` or ``"UID:GID"`` (numbers only) into a :class:`JobUser`.

    Without a GID the gid equals the uid (never 0: the root group owns much of a host). Root
    (uid 0) and the root group (gid 0) are refused unless ``allow_root`` is true.
    """
    parts = text.split(":")
    if len(parts) > 2 or not all(_ID.fullmatch(p) for p in parts):
        raise UserError(
            "job user",
            f"{text!r} is not a user: expected a numeric UID or UID:GID, for example 65532:65532",
        )
    uid = int(parts[0])
    gid = int(parts[1]) if len(parts) == 2 else uid
    user = JobUser(uid, gid)
    if not allow_root and (uid == 0 or gid == 0):
        raise UserError(
            "job user",
            f"{text!r} would run the job as root (uid or gid 0); jobs run as an unprivileged "
            "user unless root is explicitly allowed",
        )
    return user


def switch_user(user: JobUser, *, allow_root: bool = False) -> None:
    """Become ``user`` with no capabilities; call as root in the forked child, before exec.

    Order matters: the bounding set can only be emptied while CAP_SETPCAP is held, and groups
    and gids only be set while CAP_SETGID is held, so uid goes last. With keep-caps off, the uid
    change from 0 clears the permitted and effective sets; :func:`caps.clear_all` then zeroes
    ambient and inheritable too (and the rest, whatever securebits the parent had set).

    PR_SET_DUMPABLE is deliberately left alone: the uid change makes the process non-dumpable
    until exec (so nobody of the job's uid can ptrace it while it still holds the agent's file
    descriptors), and exec of the job's program makes it dumpable again, so the job can read its
    own /proc/self/{fd,maps,environ}. Forcing 0 would break that; forcing 1 would open the window.

    Raises :class:`UserError` (or :class:`CapabilityError` from the capability steps) at the first
    step that fails, and if the result is not what was asked for.
    """
    if user.uid == 0 and not allow_root:
        raise UserError("switch user", "refusing to run the job as root (uid 0)")
    caps.drop_bounding_set()
    try:
        libc.prctl(libc.PR_SET_KEEPCAPS, 0)
    except OSError as exc:
        raise UserError("switch user", f"cannot turn keep-caps off: {exc}") from exc
    _step("set supplementary groups", os.setgroups, list(user.groups))
    _step("set gid", os.setresgid, user.gid, user.gid, user.gid)
    _step("set uid", os.setresuid, user.uid, user.uid, user.uid)
    caps.clear_all()
    _verify(user, allow_root=allow_root)


def _step(step: str, call: Callable[..., object], *args: object) -> None:
    try:
        call(*args)
    except OSError as exc:
        why = " (the agent must start jobs as root)" if exc.errno == errno.EPERM else ""
        raise UserError(step, f"{exc}{why}") from exc


def _verify(user: JobUser, *, allow_root: bool) -> None:
    uids, gids = os.getresuid(), os.getresgid()
    if uids != (user.uid,) * 3 or gids != (user.gid,) * 3:
        raise UserError(
            "verify user", f"expected uid/gid {user.uid}/{user.gid}, have uids {uids} gids {gids}"
        )
    if not allow_root and os.getuid() == 0:
        raise UserError("verify user", "the process is still root")
    if sorted(os.getgroups()) != sorted(set(user.groups)):
        raise UserError(
            "verify user", f"supplementary groups are {os.getgroups()}, expected {user.groups}"
        )
    try:
        effective, permitted, inheritable = libc.capget()
    except OSError as exc:
        raise UserError("verify user", f"cannot read capabilities: {exc}") from exc
    if effective or permitted or inheritable:
        raise UserError(
            "verify user",
            f"capabilities remain (effective {effective:#x}, permitted {permitted:#x}, "
            f"inheritable {inheritable:#x})",
        )
