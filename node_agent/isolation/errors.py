"""Typed errors of the isolation layer.

Every containment step (switch user, drop capabilities, install seccomp, and the lead's
namespace, mount and cgroup steps) fails with its own subclass of :class:`IsolationError`, so
the supervisor can stop at the first failure and report *which* step failed in words a person
understands, and the server can map the whole family to one gRPC code in one place.
"""

from __future__ import annotations


class IsolationError(Exception):
    """A containment step could not be completed; the job must not run."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


class SeccompError(IsolationError):
    """Building or installing the seccomp filter failed."""


class CapabilityError(IsolationError):
    """Dropping or clearing Linux capabilities failed."""


class UserError(IsolationError):
    """The job user is invalid, or switching to it failed or did not take effect."""


class MountError(IsolationError):
    """Building the private root (mounts, pivot_root, /proc) failed."""
