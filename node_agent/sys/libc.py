"""The one access point to the libc/kernel calls that Python's ``os`` module does not offer.

The isolation layer needs prctl, unshare, setns, mount, umount2, pivot_root, sethostname,
capget/capset and seccomp. They run between fork and exec of every job, so libc is loaded and
the prototypes are declared once at import; each wrapper is one ctypes call plus an error check.
Every failure raises :class:`OSError` carrying the errno (so callers can test
``exc.errno == errno.EPERM``, and Python picks the subclass such as ``PermissionError``) and a
message naming the call and its arguments.

Constant values come from the Linux UAPI headers (<linux/prctl.h>, <linux/mount.h>,
<linux/sched.h>, <linux/capability.h>, <linux/seccomp.h>) and are the same on x86_64 and aarch64.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from typing import Any, Final

# --- namespaces (clone(2) / unshare(2) / setns(2) flags) ------------------------------------
CLONE_NEWTIME: Final = 0x00000080  # only valid for unshare/clone3; in clone(2) it is signal bits
CLONE_NEWNS: Final = 0x00020000
CLONE_NEWCGROUP: Final = 0x02000000
CLONE_NEWUTS: Final = 0x04000000
CLONE_NEWIPC: Final = 0x08000000
CLONE_NEWUSER: Final = 0x10000000
CLONE_NEWPID: Final = 0x20000000
CLONE_NEWNET: Final = 0x40000000
#: Every namespace flag that clone(2) accepts (CLONE_NEWTIME excluded, see above).
CLONE_NEW_MASK: Final = (
    CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
)

# --- mount(2) flags -----------------------------------------------------------------------
MS_RDONLY: Final = 1
MS_NOSUID: Final = 2
MS_NODEV: Final = 4
MS_NOEXEC: Final = 8
MS_SYNCHRONOUS: Final = 16
MS_REMOUNT: Final = 32
MS_MANDLOCK: Final = 64
MS_DIRSYNC: Final = 128
MS_NOSYMFOLLOW: Final = 256
MS_NOATIME: Final = 1024
MS_NODIRATIME: Final = 2048
MS_BIND: Final = 4096
MS_MOVE: Final = 8192
MS_REC: Final = 16384
MS_SILENT: Final = 32768
MS_POSIXACL: Final = 1 << 16
MS_UNBINDABLE: Final = 1 << 17
MS_PRIVATE: Final = 1 << 18
MS_SLAVE: Final = 1 << 19
MS_SHARED: Final = 1 << 20
MS_RELATIME: Final = 1 << 21
MS_STRICTATIME: Final = 1 << 24
MS_LAZYTIME: Final = 1 << 25

# --- umount2(2) flags ---------------------------------------------------------------------
MNT_FORCE: Final = 1
MNT_DETACH: Final = 2
MNT_EXPIRE: Final = 4
UMOUNT_NOFOLLOW: Final = 8

# --- prctl(2) options ---------------------------------------------------------------------
PR_SET_PDEATHSIG: Final = 1
PR_GET_DUMPABLE: Final = 3
PR_SET_DUMPABLE: Final = 4
PR_GET_KEEPCAPS: Final = 7
PR_SET_KEEPCAPS: Final = 8
PR_SET_NAME: Final = 15
PR_GET_SECCOMP: Final = 21
PR_SET_SECCOMP: Final = 22
PR_CAPBSET_READ: Final = 23
PR_CAPBSET_DROP: Final = 24
PR_GET_SECUREBITS: Final = 27
PR_SET_SECUREBITS: Final = 28
PR_SET_CHILD_SUBREAPER: Final = 36
PR_SET_NO_NEW_PRIVS: Final = 38
PR_GET_NO_NEW_PRIVS: Final = 39
PR_CAP_AMBIENT: Final = 47
PR_CAP_AMBIENT_IS_SET: Final = 1
PR_CAP_AMBIENT_CLEAR_ALL: Final = 4

# --- seccomp(2) -----------------------------------------------------------------------------
SECCOMP_MODE_FILTER: Final = 2  # for prctl(PR_SET_SECCOMP, ...)
SECCOMP_SET_MODE_FILTER: Final = 1  # for seccomp(2)
SECCOMP_FILTER_FLAG_TSYNC: Final = 1
BPF_MAXINSNS: Final = 4096

# --- capget/capset ------------------------------------------------------------------------
_LINUX_CAPABILITY_VERSION_3: Final = 0x20080522

# Syscalls glibc has no wrapper for (or only a recent one), by machine.
_SYS_NUMBERS: Final[dict[str, dict[str, int]]] = {
    "x86_64": {"pivot_root": 155, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "seccomp": 277},
}
_MACHINE: Final = {"amd64": "x86_64", "arm64": "aarch64"}.get(
    platform.machine().lower(), platform.machine().lower()
)
_SYS: Final = _SYS_NUMBERS.get(_MACHINE, {})

_libc = ctypes.CDLL(None, use_errno=True)

_c_int = ctypes.c_int
_c_ulong = ctypes.c_ulong
_c_char_p = ctypes.c_char_p
_c_void_p = ctypes.c_void_p


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CapDataPair = _CapData * 2  # version 3 uses two 32-bit words per set


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _proto(name: str, restype: type | None, *argtypes: type) -> Any:
    fn = getattr(_libc, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_prctl = _proto("prctl", _c_int, _c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong)
_unshare = _proto("unshare", _c_int, _c_int)
_setns = _proto("setns", _c_int, _c_int, _c_int)
_mount = _proto("mount", _c_int, _c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p)
_umount2 = _proto("umount2", _c_int, _c_char_p, _c_int)
_sethostname = _proto("sethostname", _c_int, _c_char_p, ctypes.c_size_t)
_capget = _proto("capget", _c_int, ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))
_capset = _proto("capset", _c_int, ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long  # variadic: arguments are passed as explicit ctypes values


_PR_NAMES: Final = {
    value: name
    for name, value in list(globals().items())
    if name.startswith("PR_") and not name.startswith("PR_CAP_AMBIENT_") and isinstance(value, int)
}


def _fail(call: str, detail: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}({detail}) failed: {os.strerror(err)}")


def _enc(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's non-negative result (some options return a value)."""
    ret = _prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        name = _PR_NAMES.get(option, str(option))
        raise _fail("prctl", f"{name}, {arg2}, {arg3}, {arg4}, {arg5}")
    return int(ret)


def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces named by CLONE_NEW* flags."""
    if _unshare(flags) != 0:
        raise _fail("unshare", f"{flags:#x}")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace that ``fd`` (from /proc/PID/ns/*) refers to."""
    if _setns(fd, nstype) != 0:
        raise _fail("setns", f"fd={fd}, nstype={nstype:#x}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2)."""
    if _mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)) != 0:
        raise _fail("mount", f"{source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r}")


def umount2(target: str, flags: int) -> None:
    """umount2(2)."""
    if _umount2(_enc(target), flags) != 0:
        raise _fail("umount2", f"{target!r}, {flags:#x}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2), through syscall(2): glibc has no wrapper."""
    nr = _SYS.get("pivot_root")
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: no syscall number for machine {_MACHINE!r}")
    if _syscall(ctypes.c_long(nr), _c_char_p(_enc(new_root)), _c_char_p(_enc(put_old))) != 0:
        raise _fail("pivot_root", f"{new_root!r}, {put_old!r}")


def sethostname(name: str) -> None:
    """sethostname(2), for the job's own UTS namespace."""
    raw = name.encode()
    if _sethostname(raw, len(raw)) != 0:
        raise _fail("sethostname", repr(name))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): the (effective, permitted, inheritable) sets of ``pid`` (0 = caller)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = _CapDataPair()
    if _capget(ctypes.byref(header), data) != 0:
        raise _fail("capget", f"pid={pid}")
    eff = data[0].effective | (data[1].effective << 32)
    prm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) on the calling thread; each set is a 64-bit mask of capability numbers."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _capset(ctypes.byref(header), data) != 0:
        raise _fail("capset", f"eff={effective:#x}, prm={permitted:#x}, inh={inheritable:#x}")


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """Install a classic-BPF seccomp filter on the calling thread.

    ``program`` is an array of ``struct sock_filter`` (8 bytes each, native byte order). Uses
    seccomp(2) (SECCOMP_SET_MODE_FILTER); falls back to prctl(PR_SET_SECCOMP) on kernels that
    lack seccomp(2), when no flags are asked for. The caller must hold CAP_SYS_ADMIN or have set
    no_new_privs first.
    """
    if not program or len(program) % 8 or len(program) // 8 > BPF_MAXINSNS:
        raise OSError(errno.EINVAL, f"seccomp: invalid BPF program of {len(program)} bytes")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    nr = _SYS.get("seccomp")
    if nr is not None:
        ret = _syscall(
            ctypes.c_long(nr),
            ctypes.c_long(SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(flags),
            _c_void_p(ctypes.addressof(fprog)),
        )
        if ret == 0:
            return
        if ctypes.get_errno() != errno.ENOSYS or flags:  # anything but ENOSYS is the real answer
            raise _fail("seccomp", f"SECCOMP_SET_MODE_FILTER, flags={flags:#x}")
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        raise _fail("prctl", "PR_SET_SECCOMP, SECCOMP_MODE_FILTER")
