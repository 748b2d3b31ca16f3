"""The libc access point (node_agent.sys.libc) that caps, user and seccomp are built on:
failures are OSErrors with the errno and a message naming the call. Only calls that fail
harmlessly (bad arguments) are made, so this runs as any user."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from node_agent.sys import libc


def _raises(call: Callable[[], object]) -> OSError:
    with pytest.raises(OSError) as info:
        call()
    return info.value


def test_prctl_error_names_the_option() -> None:
    exc = _raises(lambda: libc.prctl(libc.PR_CAPBSET_READ, 10_000))
    assert exc.errno == errno.EINVAL
    assert "prctl(PR_CAPBSET_READ, 10000" in str(exc)
    assert "Invalid argument" in str(exc)


def test_prctl_returns_the_value() -> None:
    assert libc.prctl(libc.PR_GET_SECCOMP) in (0, 2)
    assert libc.prctl(libc.PR_CAPBSET_READ, 0) in (0, 1)


def test_setns_bad_fd() -> None:
    exc = _raises(lambda: libc.setns(-1, libc.CLONE_NEWNET))
    assert exc.errno == errno.EBADF
    assert "setns(fd=-1, nstype=0x40000000)" in str(exc)


def test_mount_umount_pivot_root_on_missing_paths() -> None:
    missing = "/nonexistent-joblet-test/a"
    for name, call in [
        ("mount", lambda: libc.mount(None, missing, None, libc.MS_BIND, None)),
        ("umount2", lambda: libc.umount2(missing, libc.MNT_DETACH)),
        ("pivot_root", lambda: libc.pivot_root(missing, missing)),
    ]:
        exc = _raises(call)
        assert exc.errno in (errno.ENOENT, errno.EPERM), name
        assert str(exc).startswith(f"[Errno {exc.errno}] {name}("), str(exc)
        assert missing in str(exc)


def test_eperm_becomes_permission_error() -> None:
    err = OSError(errno.EPERM, "x")
    assert isinstance(err, PermissionError)  # what callers of libc may rely on


def test_sethostname_too_long() -> None:
    exc = _raises(lambda: libc.sethostname("h" * 300))
    assert exc.errno in (errno.EINVAL, errno.EPERM)
    assert "sethostname(" in str(exc)


def test_capget_self_and_missing_pid() -> None:
    eff, prm, inh = libc.capget()
    with open("/proc/self/status", "rb") as f:
        fields = dict(line.split(b":", 1) for line in f)
    assert eff == int(fields[b"CapEff"].strip(), 16)
    assert prm == int(fields[b"CapPrm"].strip(), 16)
    assert inh == int(fields[b"CapInh"].strip(), 16)
    exc = _raises(lambda: libc.capget(2**31 - 2))
    assert exc.errno == errno.ESRCH
    assert "capget(pid=" in str(exc)


def test_seccomp_set_filter_refuses_malformed_programs_before_the_kernel() -> None:
    before = libc.prctl(libc.PR_GET_SECCOMP)
    for bad in (b"", b"\x00" * 9, b"\x00" * 8 * (libc.BPF_MAXINSNS + 1)):
        with pytest.raises(OSError, match="invalid BPF program"):
            libc.seccomp_set_filter(bad)
    assert libc.prctl(libc.PR_GET_SECCOMP) == before  # nothing was installed


def test_namespace_mask() -> None:
    assert libc.CLONE_NEW_MASK == 0x7E020000
    assert not libc.CLONE_NEW_MASK & 0xFF  # never overlaps clone's exit-signal byte
