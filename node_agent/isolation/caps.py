"""Dropping Linux capabilities for the job, so that not even an exec of a setuid/file-capability
binary can bring them back.

Three sets matter (capabilities(7)):

* the *bounding* set caps what any later exec may grant; emptying it needs CAP_SETPCAP, so it
  is done first, while the child is still root (:func:`drop_bounding_set`);
* the *permitted/effective* sets are cleared by the kernel when all uids change from 0 to
  non-zero (unless keep-caps is set), and explicitly by :func:`clear_all`;
* the *ambient* and *inheritable* sets would survive exec; :func:`clear_all` zeroes them.

:mod:`node_agent.isolation.user` calls these in the right order around the uid switch.
"""

from __future__ import annotations

import errno
import functools

from node_agent.isolation.errors import CapabilityError
from node_agent.sys import libc

# Files are read as bytes: these functions may run after the switch to the job user, when a text
# codec imported lazily from an install the job user cannot read would fail.
_CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
_STATUS_FILE = "/proc/self/status"


@functools.lru_cache(maxsize=1)
def last_cap() -> int:
    """The highest capability number this kernel knows (read once, cached)."""
    try:
        with open(_CAP_LAST_CAP_FILE, "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError) as exc:
        raise CapabilityError(
            "read cap_last_cap", f"cannot read {_CAP_LAST_CAP_FILE}: {exc}"
        ) from exc


def drop_bounding_set() -> None:
    """Remove every capability from the bounding set (PR_CAPBSET_DROP for 0..cap_last_cap).

    Needs CAP_SETPCAP, so call it while still root. Capabilities already absent are fine.
    """
    for cap in range(last_cap() + 1):
        try:
            libc.prctl(libc.PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno == errno.EPERM and not _in_bounding_set(cap):
                continue  # already gone: nothing to drop, and no CAP_SETPCAP needed
            why = (
                " (needs CAP_SETPCAP: call it before leaving root)"
                if exc.errno == errno.EPERM
                else ""
            )
            raise CapabilityError(
                "drop bounding set", f"cannot drop capability {cap}: {exc}{why}"
            ) from exc


def _in_bounding_set(cap: int) -> bool:
    try:
        return libc.prctl(libc.PR_CAPBSET_READ, cap) == 1
    except OSError:
        return True  # cannot tell: report the drop failure


def clear_all() -> None:
    """Clear the ambient set, then set effective, permitted and inheritable to empty.

    Works as root and as an unprivileged user (lowering capabilities is always allowed).
    """
    try:
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: kernel before 4.3, which has no ambient set
            raise CapabilityError("clear ambient capabilities", str(exc)) from exc
    try:
        libc.capset(0, 0, 0)
    except OSError as exc:
        raise CapabilityError("clear capabilities", str(exc)) from exc


def status_caps() -> dict[str, int]:
    """The Cap* lines of /proc/self/status (CapInh, CapPrm, CapEff, CapBnd, CapAmb) as ints."""
    caps: dict[str, int] = {}
    with open(_STATUS_FILE, "rb") as f:
        for line in f:
            if line.startswith(b"Cap"):
                key, _, value = line.partition(b":")
                caps[key.decode("latin-1")] = int(value.strip(), 16)
    return caps


def current_effective() -> int:
    """The calling process's effective capability set, parsed from /proc/self/status."""
    return status_caps()["CapEff"]
