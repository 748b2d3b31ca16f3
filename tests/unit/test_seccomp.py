"""The seccomp filter, checked without a kernel: structure, and decisions of a BPF interpreter.

The interpreter below runs the program the way the kernel's classic-BPF seccomp checker and
runtime do for the instructions we emit (32-bit loads from seccomp_data, forward jumps, returns),
and refuses anything else, so the decisions tested here are the decisions the kernel makes.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from node_agent.isolation import seccomp
from node_agent.isolation.errors import IsolationError, SeccompError
from node_agent.sys import libc

ARCHES = ("x86_64", "aarch64")
AUDIT_ARCH_I386 = 0x40000003
EPERM = seccomp.SECCOMP_RET_ERRNO | errno.EPERM
ENOSYS = seccomp.SECCOMP_RET_ERRNO | errno.ENOSYS
ALLOW = seccomp.SECCOMP_RET_ALLOW
KILL = seccomp.SECCOMP_RET_KILL_PROCESS

# Flags glibc passes to clone(2) for fork() and for pthread_create().
FORK_FLAGS = 0x01200000 | 17  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
THREAD_FLAGS = 0x003D0F00  # VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": libc.CLONE_NEWNS,
    "CLONE_NEWCGROUP": libc.CLONE_NEWCGROUP,
    "CLONE_NEWUTS": libc.CLONE_NEWUTS,
    "CLONE_NEWIPC": libc.CLONE_NEWIPC,
    "CLONE_NEWUSER": libc.CLONE_NEWUSER,
    "CLONE_NEWPID": libc.CLONE_NEWPID,
    "CLONE_NEWNET": libc.CLONE_NEWNET,
}


def decode(prog: bytes) -> list[tuple[int, int, int, int]]:
    assert len(prog) % 8 == 0
    return [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]


def seccomp_data(nr: int, arch: int, args: tuple[int, ...] = ()) -> bytes:
    full = (list(args) + [0] * 6)[:6]
    return struct.pack("=iIQ6Q", nr, arch, 0x401000, *full)


def run_bpf(prog: bytes, data: bytes) -> int:
    """Execute a classic-BPF seccomp program; return the action word it returns."""
    insns = decode(prog)
    acc = 0
    pc = 0
    steps = 0
    while True:
        assert 0 <= pc < len(insns), f"program runs off its end at {pc}"
        steps += 1
        assert steps <= len(insns), "classic BPF has no backward jumps"
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data), f"bad load offset {k}"
            (acc,) = struct.unpack_from("=I", data, k)
            pc += 1
        elif code in (0x15, 0x25, 0x35, 0x45):  # JEQ, JGT, JGE, JSET with K
            taken = {
                0x15: acc == k,
                0x25: acc > k,
                0x35: acc >= k,
                0x45: (acc & k) != 0,
            }[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")


def decide(arch: str, name_or_nr: str | int, args: tuple[int, ...] = ()) -> int:
    table = seccomp.SYSCALL_TABLES[arch]
    nr = table[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    prog = seccomp.build_filter(arch)
    return run_bpf(prog, seccomp_data(nr, seccomp.AUDIT_ARCHES[arch], args))


# --- the deny-list itself --------------------------------------------------------------------


def test_denied_list_has_no_duplicates_and_every_name_is_known() -> None:
    names = seccomp.DENIED_SYSCALLS
    assert len(names) == len(set(names))
    for name in names:
        assert any(name in t for t in seccomp.SYSCALL_TABLES.values()), name


def test_denied_list_covers_the_brief() -> None:
    required = {
        "mount", "umount2", "pivot_root", "kexec_load", "kexec_file_load", "bpf",
        "init_module", "finit_module", "delete_module", "ptrace", "process_vm_readv",
        "process_vm_writev", "keyctl", "add_key", "request_key", "reboot", "swapon", "swapoff",
        "setns", "unshare", "open_by_handle_at", "name_to_handle_at", "perf_event_open",
        "userfaultfd", "acct", "quotactl", "settimeofday", "clock_settime", "adjtimex", "syslog",
        "iopl", "ioperm", "lookup_dcookie",
    }  # fmt: skip
    assert required <= set(seccomp.DENIED_SYSCALLS)


def test_everyday_syscalls_are_not_denied() -> None:
    for name in ("read", "write", "getpid", "clone", "clone3", "fork", "vfork", "personality"):
        assert name not in seccomp.DENIED_SYSCALLS
    for name in ("mbind", "set_mempolicy", "get_mempolicy", "seccomp"):
        assert name not in seccomp.DENIED_SYSCALLS


def test_only_x86_specific_calls_are_missing_on_aarch64() -> None:
    x86, arm = seccomp.SYSCALL_TABLES["x86_64"], seccomp.SYSCALL_TABLES["aarch64"]
    assert all(name in x86 for name in seccomp.DENIED_SYSCALLS)
    assert {n for n in seccomp.DENIED_SYSCALLS if n not in arm} == {"iopl", "ioperm", "uselib"}


def _header_numbers(path: Path) -> dict[str, int]:
    text = path.read_text()
    found: dict[str, int] = {}
    for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", text):
        found.setdefault(m.group(1), int(m.group(2)))
    return found


@pytest.mark.parametrize(
    ("arch", "header"),
    [
        ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
        ("aarch64", "/usr/include/asm-generic/unistd.h"),
    ],
)
def test_syscall_numbers_match_the_kernel_headers(arch: str, header: str) -> None:
    path = Path(header)
    if not path.exists():
        pytest.skip(f"{header} not installed")
    numbers = _header_numbers(path)
    for name, nr in seccomp.SYSCALL_TABLES[arch].items():
        assert numbers.get(name) == nr, f"{arch} {name}: table {nr}, header {numbers.get(name)}"


def test_libc_syscall_numbers_agree_with_the_filter_tables() -> None:
    for arch, numbers in libc._SYS_NUMBERS.items():
        for name, nr in numbers.items():
            assert seccomp.SYSCALL_TABLES[arch][name] == nr


# --- structure of the program ----------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_program_structure(arch: str) -> None:
    prog = seccomp.build_filter(arch)
    insns = decode(prog)
    assert 0 < len(insns) <= libc.BPF_MAXINSNS
    # The arch check comes first and kills on mismatch.
    assert insns[0] == (0x20, 0, 0, seccomp.OFFSET_ARCH)
    assert insns[1] == (0x15, 1, 0, seccomp.AUDIT_ARCHES[arch])
    assert insns[2] == (0x06, 0, 0, KILL)
    assert insns[3] == (0x20, 0, 0, seccomp.OFFSET_NR)
    # It ends with the three shared returns, ALLOW first.
    assert [i[3] for i in insns[-3:]] == [ALLOW, EPERM, ENOSYS]
    assert all(i[0] == 0x06 for i in insns[-3:])
    # Every denied number of this arch is compared against.
    compared = {k for code, _, _, k in insns if code == 0x15}
    table = seccomp.SYSCALL_TABLES[arch]
    for name in seccomp.DENIED_SYSCALLS:
        if name in table:
            assert table[name] in compared, name


def test_build_filter_is_pure_and_accepts_aliases() -> None:
    assert seccomp.build_filter("x86_64") == seccomp.build_filter("x86_64")
    assert seccomp.build_filter("amd64") == seccomp.build_filter("x86_64")
    assert seccomp.build_filter("arm64") == seccomp.build_filter("aarch64")
    assert seccomp.build_filter("x86_64") != seccomp.build_filter("aarch64")


def test_unsupported_arch_is_a_clear_error() -> None:
    with pytest.raises(SeccompError) as info:
        seccomp.build_filter("riscv64")
    assert isinstance(info.value, IsolationError)
    assert info.value.step == "build seccomp filter"
    assert "riscv64" in str(info.value)
    assert "aarch64" in str(info.value) and "x86_64" in str(info.value)


# --- decisions -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_every_denied_syscall_gets_eperm(arch: str) -> None:
    table = seccomp.SYSCALL_TABLES[arch]
    for name in seccomp.DENIED_SYSCALLS:
        if name in table:
            assert decide(arch, name) == EPERM, name


@pytest.mark.parametrize("arch", ARCHES)
def test_every_other_syscall_number_is_allowed(arch: str) -> None:
    table = seccomp.SYSCALL_TABLES[arch]
    denied = {table[n] for n in seccomp.DENIED_SYSCALLS if n in table}
    special = {table["clone"], table["clone3"]}
    for nr in range(0, 1024):
        if nr in denied or nr in special:
            continue
        assert decide(arch, nr) == ALLOW, nr


@pytest.mark.parametrize("arch", ARCHES)
def test_ordinary_calls(arch: str) -> None:
    assert decide(arch, "read") == ALLOW
    assert decide(arch, "write") == ALLOW
    assert decide(arch, "getpid") == ALLOW
    assert decide(arch, "mount") == EPERM
    assert decide(arch, "ptrace") == EPERM
    assert decide(arch, "unshare", (libc.CLONE_NEWNS,)) == EPERM


@pytest.mark.parametrize("arch", ARCHES)
def test_wrong_arch_is_killed(arch: str) -> None:
    prog = seccomp.build_filter(arch)
    others = [a for a in seccomp.AUDIT_ARCHES.values() if a != seccomp.AUDIT_ARCHES[arch]]
    for audit_arch in [AUDIT_ARCH_I386, 0x40000028, 0, *others]:  # i386, 32-bit ARM, ...
        for nr in (0, 1, 63, 165):
            assert run_bpf(prog, seccomp_data(nr, audit_arch)) == KILL


def test_x32_syscalls_are_refused_on_x86_64() -> None:
    for nr in (0, 1, 165, 272, 512, 0x3FFFFFFF):
        assert decide("x86_64", seccomp.X32_SYSCALL_BIT | nr) == EPERM
    assert decide("x86_64", -1) == EPERM  # nr -1 (a tracer skipped the call)


@pytest.mark.parametrize("arch", ARCHES)
def test_clone3_gets_enosys_so_libc_falls_back(arch: str) -> None:
    assert decide(arch, "clone3") == ENOSYS
    assert decide(arch, "clone3", (0, 88)) == ENOSYS


@pytest.mark.parametrize("arch", ARCHES)
def test_plain_clone_is_allowed(arch: str) -> None:
    assert decide(arch, "clone", (FORK_FLAGS,)) == ALLOW
    assert decide(arch, "clone", (THREAD_FLAGS,)) == ALLOW
    assert decide(arch, "clone", (0x4000 | 0x100 | 17,)) == ALLOW  # vfork-style
    # The kernel ignores the upper half of clone's flags, so the filter does too.
    assert decide(arch, "clone", (FORK_FLAGS | (libc.CLONE_NEWUSER << 32),)) == ALLOW
    # CLONE_NEWTIME's bit is part of the exit signal in clone(2), not a namespace.
    assert decide(arch, "clone", (libc.CLONE_NEWTIME | 0x01,)) == ALLOW


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("flag", sorted(NAMESPACE_FLAGS))
def test_clone_with_a_namespace_flag_gets_eperm(arch: str, flag: str) -> None:
    value = NAMESPACE_FLAGS[flag]
    assert decide(arch, "clone", (value,)) == EPERM
    assert decide(arch, "clone", (FORK_FLAGS | value,)) == EPERM
    assert decide(arch, "clone", (THREAD_FLAGS | value, 0x7F0000001000)) == EPERM


# --- install() error paths (in a child: no_new_privs and filters cannot be undone) -----------


def _in_child(fn: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_install_rejects_a_malformed_program() -> None:
    def child() -> int:
        for bad in (b"", b"\x00" * 7, b"\x00" * 8 * (libc.BPF_MAXINSNS + 1)):
            try:
                seccomp.install(bad)
            except SeccompError as exc:
                if exc.step != "install seccomp filter":
                    return 2
            else:
                return 3
        return 0

    assert _in_child(child) == 0


def test_install_reports_a_program_the_kernel_rejects() -> None:
    # A program that can fall off its end (no return) is refused by the kernel's checker.
    bad = struct.pack("=HBBI", 0x20, 0, 0, 0)

    def child() -> int:
        try:
            seccomp.install(bad)
        except SeccompError as exc:
            cause = exc.__cause__
            return 0 if isinstance(cause, OSError) and cause.errno == errno.EINVAL else 4
        return 5

    assert _in_child(child) == 0
