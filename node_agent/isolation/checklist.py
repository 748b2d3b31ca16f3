"""The containment of one job, as one ordered checklist run between fork and exec.

Each step does one thing and fails with its own error; the first failure stops the
launch, and its message travels to the supervisor through a close-on-exec pipe (so a
successful exec is seen as that pipe closing with nothing written). The order matters
and is the point of keeping it in one place:

 1. descriptors      stdout/stderr to the log pipe, stdin from /dev/null, nothing else open
 2. signals          default dispositions (Python ignores SIGPIPE; exec would keep that)
 3. cgroup           join the job's cgroup (before the cgroup namespace, which roots at it)
 4. namespaces       new mount, UTS, IPC, network and cgroup namespaces (PID is already new:
                     the supervisor unshared it, so this process is PID 1)
 5. network-ready    (with a network plan) tell the supervisor, which now creates our veth
                     while we go on building the root
 6. hostname         the job's own
 7. loopback         `lo` up in the empty network namespace
 8. root             private root, pivot_root, fresh /proc, sealed read-only root
 9. network          (with a network plan) wait for the host side, configure our end
                     (netlink only: nothing from the host's files is needed any more)
10. workdir          chdir into the job's working directory
11. user             unprivileged uid/gid, every capability dropped
12. seccomp          no_new_privs and the syscall filter
13. exec             the job's own command
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import struct
from collections.abc import Callable

from node_agent.isolation import netsetup, rootfs, seccomp
from node_agent.isolation.cgroups import CgroupManager
from node_agent.isolation.errors import IsolationError
from node_agent.isolation.plan import LaunchPlan
from node_agent.isolation.user import JobUser, switch_user
from node_agent.sys import libc

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
NAMESPACES = (
    libc.CLONE_NEWNS
    | libc.CLONE_NEWUTS
    | libc.CLONE_NEWIPC
    | libc.CLONE_NEWNET
    | libc.CLONE_NEWCGROUP
)


class StepError(IsolationError):
    pass


def _descriptors(out_fd: int, err_fd: int, go_fd: int) -> None:
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    keep = {0, 1, 2, err_fd, go_fd}
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ and handles SIGINT and SIGTERM; exec would keep
    the ignored ones, so put back the default wherever it was changed."""
    for sig in range(1, signal.NSIG):
        try:
            current = signal.getsignal(sig)
        except ValueError:
            continue
        if current not in (signal.SIG_DFL, None):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _root(plan: LaunchPlan) -> None:
    rootfs.make_private()
    rootfs.build(plan.rootfs, plan.mounts)
    rootfs.pivot(plan.rootfs)
    rootfs.mount_proc()
    rootfs.seal_root()


def _exec(plan: LaunchPlan) -> None:
    try:
        os.execvpe(plan.argv[0], list(plan.argv), dict(plan.env))
    except FileNotFoundError:
        raise StepError("exec", f"command {plan.argv[0]!r} not found in the job's PATH") from None
    except PermissionError:
        raise StepError("exec", f"command {plan.argv[0]!r} is not executable") from None


def _network_ready(plan: LaunchPlan, go_fd: int) -> None:
    """Tell the supervisor our network namespace exists: it creates our veth meanwhile."""
    if plan.network is not None:
        os.write(go_fd, b"r")


def _network(plan: LaunchPlan, go_fd: int) -> None:
    """Wait until the supervisor has joined our namespace to the host, then configure it."""
    if plan.network is None:
        return
    if os.read(go_fd, 1) != b"1":
        raise StepError("network", "the supervisor could not attach the job's network")
    os.close(go_fd)
    netsetup.job_side(plan.network)


def steps(
    plan: LaunchPlan, cgroup: CgroupManager, out_fd: int, err_fd: int, go_fd: int = -1
) -> list[tuple[str, Callable[[], None]]]:
    return [
        ("descriptors", lambda: _descriptors(out_fd, err_fd, go_fd)),
        ("signals", _signals),
        ("cgroup", lambda: cgroup.add_process(0)),
        ("namespaces", lambda: libc.unshare(NAMESPACES)),
        ("network-ready", lambda: _network_ready(plan, go_fd)),
        ("hostname", lambda: libc.sethostname(plan.hostname)),
        ("loopback", _loopback_up),
        ("root", lambda: _root(plan)),
        ("network", lambda: _network(plan, go_fd)),
        ("workdir", lambda: os.chdir(plan.work_dir)),
        ("user", lambda: switch_user(JobUser(plan.uid, plan.gid))),
        ("seccomp", seccomp.install if plan.seccomp else lambda: None),
        ("exec", lambda: _exec(plan)),
    ]


def run(plan: LaunchPlan, cgroup: CgroupManager, out_fd: int, err_fd: int, go_fd: int = -1) -> None:
    """Never returns: exec succeeds, or the failing step is reported and the process exits."""
    name = "start"
    try:
        for name, step in steps(plan, cgroup, out_fd, err_fd, go_fd):  # noqa: B007 - used on error
            step()
        raise StepError("exec", "exec returned")  # unreachable
    except BaseException as e:
        if isinstance(e, IsolationError):
            msg = str(e)
        elif isinstance(e, OSError):
            msg = f"{name}: {e.strerror or e}"
        else:
            msg = f"{name}: {e}"
        try:
            os.write(err_fd, msg.encode(errors="replace")[:4000])
        finally:
            os._exit(127)
