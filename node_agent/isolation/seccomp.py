"""The job's seccomp filter: a deny-list compiled to classic BPF, without libseccomp.

Capabilities are already gone when this filter is installed, so most calls below would fail with
EPERM anyway. The filter is defence in depth: it shuts kernel code paths that have a long history
of privilege-escalation bugs reachable *without* privileges (user namespaces, bpf, userfaultfd,
keyrings, perf, io_uring) and makes the job's view stable even if a capability slipped through.
It is a deny-list rather than an allow-list so that ordinary programs (python, sh, coreutils,
gcc, MPI codes) keep working unchanged.

The program, in order:

1. ``seccomp_data.arch`` must be this build's architecture, else the process is killed (a 64-bit
   process can still enter the kernel through the 32-bit ABI, whose syscall numbers differ).
2. On x86_64, numbers with the x32 bit (``>= 0x40000000``) are refused: x32 has its own table, so
   without this check every entry of the deny-list could be bypassed.
3. A range check lets everything outside [lowest, highest] listed number through at once (on
   x86_64 the hot calls — read, write, mmap, poll, socket... — are all below 56).
4. Each denied number returns ``EPERM``; ``clone3`` returns ``ENOSYS`` (its flags live in a
   struct that BPF cannot read, and ENOSYS makes glibc fall back to ``clone``); ``clone`` with any
   ``CLONE_NEW*`` flag returns ``EPERM``. Everything else is allowed.

The program is built once per architecture (cached); :func:`install` only does the two kernel
calls, because it runs between fork and exec of every job.
"""

from __future__ import annotations

import errno
import functools
import platform
import struct
from collections.abc import Mapping
from typing import Final

from node_agent.isolation.errors import SeccompError
from node_agent.sys import libc

# Why each call is denied. "Needs CAP_X" means it fails anyway once capabilities are dropped;
# denying it here also closes the path if a job ever regains the capability (e.g. inside a user
# namespace) and removes the kernel code from the job's reach.
DENIED_SYSCALLS: Final[tuple[str, ...]] = (
    # Mounts and the root directory (CAP_SYS_ADMIN / CAP_SYS_CHROOT): the job's filesystem view
    # is fixed by the agent. The fs* / *_mount / open_tree calls are the new mount API and would
    # otherwise be a second way in.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # Namespaces: entering or creating them (an unprivileged user namespace hands out a full
    # capability set over new namespaces, the classic way into kernel bugs). clone with CLONE_NEW*
    # and clone3 are handled separately below.
    "setns",
    "unshare",
    # Loading kernel code or replacing the kernel (CAP_SYS_MODULE / CAP_SYS_BOOT). uselib is the
    # a.out-era library loader, unused by any ELF program.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "uselib",
    # eBPF: verifier bugs are a recurring route to kernel code execution; unprivileged bpf is
    # often enabled.
    "bpf",
    # Inspecting or changing other processes: ptrace and its cousins read memory, file
    # descriptors or kernel object identities of other processes. (gdb/strace do not work in a
    # job; that is the price.)
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # Kernel keyrings are not namespaced: a job could read or fill keys shared with the host.
    "keyctl",
    "add_key",
    "request_key",
    # Whole-host operations (CAP_SYS_BOOT, CAP_SYS_ADMIN, CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG).
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "vhangup",
    # Opening files by handle bypasses the path walk, so it escapes bind mounts and chroots
    # (the "shocker" breakout); CAP_DAC_READ_SEARCH.
    "open_by_handle_at",
    "name_to_handle_at",
    # perf events: a large, often-exploited attack surface and a side channel across jobs.
    "perf_event_open",
    # userfaultfd lets a job stall kernel copies at will, the standard helper of kernel exploits.
    "userfaultfd",
    # The host clock is shared by all jobs (CAP_SYS_TIME). adjtimex/clock_adjtime also read
    # state; no ordinary batch program uses them.
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    # The kernel log leaks host addresses and other jobs' activity (dmesg).
    "syslog",
    # Raw I/O port access (x86 only; CAP_SYS_RAWIO).
    "iopl",
    "ioperm",
    # Profiling interface for oprofile, removed from recent kernels; CAP_SYS_ADMIN.
    "lookup_dcookie",
    # Moving pages of *other* processes between NUMA nodes, and it has leaked page locations.
    # (mbind, set_mempolicy and get_mempolicy stay allowed: NUMA-aware HPC codes and MPI use
    # them, and they only affect the caller's own memory, inside its cpuset.)
    "move_pages",
    "migrate_pages",
    # fanotify watches whole mounts or filesystems, host paths included (CAP_SYS_ADMIN).
    "fanotify_init",
    # io_uring: a second system call interface that this filter cannot see through, and the
    # source of many kernel exploits. Programs that use it (rare) fall back to normal I/O.
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
# Deliberately allowed although other profiles restrict them: personality (setarch, and some
# programs query it), mbind/set_mempolicy/get_mempolicy (see above), landlock_* (self-sandboxing).

AUDIT_ARCH_X86_64: Final = 0xC000003E  # EM_X86_64 (62) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH_AARCH64: Final = 0xC00000B7  # EM_AARCH64 (183) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
X32_SYSCALL_BIT: Final = 0x40000000

SECCOMP_RET_KILL_PROCESS: Final = 0x80000000
SECCOMP_RET_ERRNO: Final = 0x00050000
SECCOMP_RET_ALLOW: Final = 0x7FFF0000

# Classic BPF opcodes (<linux/bpf_common.h>).
BPF_LD_W_ABS: Final = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K: Final = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGT_K: Final = 0x05 | 0x20 | 0x00
BPF_JGE_K: Final = 0x05 | 0x30 | 0x00
BPF_JSET_K: Final = 0x05 | 0x40 | 0x00
BPF_RET_K: Final = 0x06 | 0x00  # BPF_RET | BPF_K

# Offsets in struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6];}.
# Both supported architectures are little-endian, so the low word of args[i] is at 16 + 8 * i.
OFFSET_NR: Final = 0
OFFSET_ARCH: Final = 4
OFFSET_ARG0_LOW: Final = 16

#: Syscall numbers of the names the filter refers to, per architecture. x86_64 from
#: arch/x86/entry/syscalls/syscall_64.tbl, aarch64 from the generic table (asm-generic/unistd.h).
#: A denied name missing from an architecture does not exist there and needs no rule.
# fmt: off
SYSCALL_TABLES: Final[Mapping[str, Mapping[str, int]]] = {
    "x86_64": {
        "read": 0, "write": 1, "getpid": 39, "clone": 56, "fork": 57, "vfork": 58,
        "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "vhangup": 153,
        "pivot_root": 155, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
        "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
        "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
        "lookup_dcookie": 212, "clock_settime": 227, "mbind": 237, "set_mempolicy": 238,
        "get_mempolicy": 239, "kexec_load": 246, "add_key": 248, "request_key": 249,
        "keyctl": 250, "migrate_pages": 256, "unshare": 272, "move_pages": 279,
        "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303,
        "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
        "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
        "seccomp": 317, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "mount_setattr": 442,
        "quotactl_fd": 443,
    },
    "aarch64": {
        "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51,
        "vhangup": 58, "quotactl": 60, "read": 63, "write": 64, "acct": 89, "personality": 92,
        "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
        "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142,
        "settimeofday": 170, "adjtimex": 171, "getpid": 172, "add_key": 217,
        "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225,
        "mbind": 235, "get_mempolicy": 236, "set_mempolicy": 237, "migrate_pages": 238,
        "move_pages": 239, "perf_event_open": 241, "fanotify_init": 262,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
        "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
        "seccomp": 277, "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "mount_setattr": 442,
        "quotactl_fd": 443,
    },
}
# fmt: on

AUDIT_ARCHES: Final[Mapping[str, int]] = {
    "x86_64": AUDIT_ARCH_X86_64,
    "aarch64": AUDIT_ARCH_AARCH64,
}

_ARCH_ALIASES: Final[Mapping[str, str]] = {"amd64": "x86_64", "arm64": "aarch64"}


def host_arch() -> str:
    """The running machine's architecture in the names :func:`build_filter` takes."""
    machine = platform.machine().lower()
    return _ARCH_ALIASES.get(machine, machine)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


# Jump targets in the program under construction are labels, resolved when it is assembled.
_ALLOW, _EPERM, _ENOSYS, _NEXT = "allow", "eperm", "enosys", "next"
_Insn = tuple[int, int, str, str]  # code, k, jt label, jf label


@functools.cache
def build_filter(arch: str = "x86_64") -> bytes:
    """The filter for ``arch`` as an array of ``struct sock_filter`` (native byte order).

    Pure and cached: the same bytes for the same ``arch``. Raises :class:`SeccompError` for an
    architecture without a syscall table here.
    """
    arch = _ARCH_ALIASES.get(arch, arch)
    table = SYSCALL_TABLES.get(arch)
    if table is None:
        supported = ", ".join(sorted(SYSCALL_TABLES))
        raise SeccompError(
            "build seccomp filter",
            f"unsupported architecture {arch!r}: there is a syscall table only for {supported}",
        )
    denied = sorted({table[name] for name in DENIED_SYSCALLS if name in table})
    clone_nr, clone3_nr = table["clone"], table["clone3"]
    watched = [*denied, clone_nr, clone3_nr]

    body: list[_Insn] = [(BPF_LD_W_ABS, OFFSET_NR, _NEXT, _NEXT)]
    if arch == "x86_64":
        body.append((BPF_JGE_K, X32_SYSCALL_BIT, _EPERM, _NEXT))
    body.append((BPF_JGT_K, max(watched), _ALLOW, _NEXT))
    body.append((BPF_JGE_K, min(watched), _NEXT, _ALLOW))
    body.extend((BPF_JEQ_K, nr, _EPERM, _NEXT) for nr in denied)
    body.append((BPF_JEQ_K, clone3_nr, _ENOSYS, _NEXT))
    body.append((BPF_JEQ_K, clone_nr, _NEXT, _ALLOW))
    body.append((BPF_LD_W_ABS, OFFSET_ARG0_LOW, _NEXT, _NEXT))  # clone flags (lower 32 bits)
    body.append((BPF_JSET_K, libc.CLONE_NEW_MASK, _EPERM, _ALLOW))

    head = [
        _insn(BPF_LD_W_ABS, OFFSET_ARCH),
        _insn(BPF_JEQ_K, AUDIT_ARCHES[arch], jt=1, jf=0),
        _insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ]
    tail_at = len(head) + len(body)
    labels = {
        _ALLOW: tail_at,
        _EPERM: tail_at + 1,
        _ENOSYS: tail_at + 2,
    }
    tail = [
        _insn(BPF_RET_K, SECCOMP_RET_ALLOW),
        _insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM),
        _insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS),
    ]

    def offset(at: int, label: str) -> int:
        if label == _NEXT:
            return 0
        off = labels[label] - at - 1
        if not 0 <= off <= 255:  # classic BPF jumps forward by at most 255 instructions
            raise SeccompError("build seccomp filter", f"jump of {off} does not fit in BPF")
        return off

    code = [
        _insn(op, k, offset(len(head) + i, jt), offset(len(head) + i, jf))
        for i, (op, k, jt, jf) in enumerate(body)
    ]
    return b"".join([*head, *code, *tail])


def install(prog: bytes | None = None) -> None:
    """Set no_new_privs and install ``prog`` (default: the filter for this machine).

    Irreversible for the calling process and everything it executes; call it last, just before
    exec. Raises :class:`SeccompError` naming the step that failed.
    """
    if prog is None:
        prog = build_filter(host_arch())
    try:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
    except OSError as exc:
        raise SeccompError("set no_new_privs", f"the kernel refused: {exc}") from exc
    try:
        libc.seccomp_set_filter(prog)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EINVAL:
            hint = " (malformed program, or a kernel without CONFIG_SECCOMP_FILTER)"
        elif exc.errno == errno.EACCES:
            hint = " (no_new_privs is not set and the caller lacks CAP_SYS_ADMIN)"
        raise SeccompError("install seccomp filter", f"{exc}{hint}") from exc


# Build the filter for this machine at import, so the first job launch does not pay for it.
if host_arch() in SYSCALL_TABLES:
    build_filter(host_arch())
