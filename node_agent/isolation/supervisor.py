"""The supervisor of one job: it outlives the agent and owns everything about the job's run.

Forked from the fork server into a session of its own, it holds an exclusive lock on
`run/supervisor.lock` for as long as it lives, which is how an agent (a restarted one
too) tells a live supervisor from a dead one without trusting PIDs. It creates the job's
cgroup, forks the job into a new PID namespace (the job is its PID 1) and runs the
isolation checklist there, then pumps the job's output into the log segments, carries
out a stop request (SIGTERM from the agent), and finally records the outcome in
`run/exit.json` before it exits. The agent learns of that exit through a pidfd.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass

from node_agent import timefmt
from node_agent.isolation import checklist, netsetup
from node_agent.isolation.cgroups import CgroupManager, Limits, new_manager
from node_agent.isolation.plan import LaunchPlan
from node_agent.state.logs import Masker, SegmentWriter
from node_agent.state.paths import JobPaths
from node_agent.sys import libc
from node_agent.sys.files import write_json

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
READ_CHUNK = 1 << 20
DRAIN_LIMIT_S = 5.0


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None = None
    signal: int | None = None
    oom_killed: bool = False
    stopped: bool = False
    launch_error: str = ""


def proc_starttime(pid: int) -> str:
    """Field 22 of /proc/PID/stat: with the PID it names one process for good."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2 :].split()[19].decode()


def catches_sigterm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


class Supervisor:
    def __init__(self, plan: LaunchPlan, report_fd: int) -> None:
        self.plan = plan
        self.paths = JobPaths(plan.job_dir)
        self.report_fd = report_fd
        self.cgroup: CgroupManager = new_manager(
            plan.uuid, root=plan.cgroup_root, version=plan.cgroup_version
        )
        self.stop_deadline: float | None = None
        self.pid1_catches_term = False
        self.trace: list[tuple[str, float]] = []
        # a stop may arrive while the job is still being set up: catch it from the start
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, lambda *_: None)

    # -- reporting to the agent that launched us (it may be gone) ---------------------------

    def _report(self, event: dict[str, object]) -> None:
        if self.report_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.report_fd, json.dumps(event).encode() + b"\n")

    def _close_report(self) -> None:
        if self.report_fd >= 0:
            os.close(self.report_fd)
            self.report_fd = -1

    # -- the run ---------------------------------------------------------------------------

    def _mark(self, phase: str) -> None:
        self.trace.append((phase, time.time()))

    def run(self) -> None:
        self._mark("supervisor")
        lock = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        me = os.getpid()
        with open(self.paths.pidfile, "w") as f:
            f.write(f"{me} {proc_starttime(me)}\n")
        outcome = self._launch_and_wait()
        self._finish(outcome)
        os.close(lock)

    def _launch_and_wait(self) -> Outcome:
        lim = self.plan.limits
        try:
            self.cgroup.create(
                Limits(
                    max_cpu=lim.max_cpu,
                    cpu_cores=lim.cpu_cores,
                    max_memory_mb=lim.max_memory_mb,
                    max_iobps=lim.max_iobps,
                    io_device=lim.io_device,
                    pids_max=lim.pids_max,
                )
            )
        except Exception as e:
            return self._launch_failed(f"cgroup: {e}")
        out_r, out_w = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(out_r, F_SETPIPE_SZ, PIPE_SIZE)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # with a network to join, the job says on this socket when its namespace exists and
        # then waits on it until the host side has joined that namespace to the bridge
        go_r, go_w = _sync_pair() if self.plan.network else (-1, -1)
        libc.unshare(libc.CLONE_NEWPID)
        self._mark("cgroup-created")
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(err_r)
            if go_w >= 0:
                os.close(go_w)
            checklist.run(self.plan, self.cgroup, out_w, err_w, go_r)
        os.close(out_w)
        os.close(err_w)
        self._mark("forked")
        if self.plan.network is not None:
            os.close(go_r)
            try:
                # nothing to read: the job failed an earlier step (its error follows on err_r)
                if os.read(go_w, 1) == b"r":
                    netsetup.host_side(self.plan.network, pid)
                    self._mark("network")
                    os.write(go_w, b"1")
            except Exception as e:
                _kill(pid)
                os.waitpid(pid, 0)
                os.close(out_r)
                os.close(go_w)
                os.close(err_r)
                return self._launch_failed(str(e))
            os.close(go_w)
        error = _read_all(err_r)
        os.close(err_r)
        self._mark("exec")
        if error:
            os.waitpid(pid, 0)
            os.close(out_r)
            return self._launch_failed(error.decode(errors="replace"))
        started = timefmt.now_str()
        write_json(os.path.join(self.paths.run, "started.json"), {"pid": pid, "time": started})
        self._report(
            {
                "event": "started",
                "pid": pid,
                "supervisor": os.getpid(),
                "time": started,
                "trace": self.trace,
            }
        )
        self._close_report()
        return self._pump(pid, out_r)

    def _launch_failed(self, message: str) -> Outcome:
        self._report({"event": "failed", "error": message})
        self._close_report()
        return Outcome(launch_error=message)

    def _pump(self, pid: int, out_r: int) -> Outcome:
        writer = SegmentWriter(
            self.paths.logs, self.plan.log_segment_bytes, self.plan.log_max_bytes
        )
        masker = Masker(self.plan.mask)
        wake_r = self.wake_r
        pidfd = os.pidfd_open(pid)
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, "out")
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        sel.register(wake_r, selectors.EVENT_READ, "signal")
        status: int | None = None
        drain_until: float | None = None
        out_open = True
        try:
            while out_open or status is None:
                timeout = 0.05 if self.stop_deadline is not None else None
                if drain_until is not None:
                    timeout = max(0.0, drain_until - time.monotonic())
                    if timeout == 0.0:
                        break
                for key, _ in sel.select(timeout):
                    if key.data == "out":
                        data = os.read(out_r, READ_CHUNK)
                        if data:
                            writer.write(masker.feed(data))
                        else:
                            sel.unregister(out_r)
                            out_open = False
                    elif key.data == "exit":
                        sel.unregister(pidfd)
                        status = os.waitpid(pid, 0)[1]
                        drain_until = time.monotonic() + DRAIN_LIMIT_S
                    elif key.data == "signal":
                        got = os.read(wake_r, 64)  # always drain the wakeup pipe
                        if signal.SIGTERM in got and self.stop_deadline is None:
                            self._begin_stop(pid)
                if self.stop_deadline is not None and status is None:
                    self._advance_stop(pid)
        finally:
            writer.write(masker.flush())
            writer.close()
            os.close(out_r)
            os.close(pidfd)
        assert status is not None
        oom = False
        with contextlib.suppress(Exception):
            oom = self.cgroup.oom_killed()
        stopped = self.stop_deadline is not None
        if os.WIFEXITED(status):
            return Outcome(exit_code=os.WEXITSTATUS(status), oom_killed=oom, stopped=stopped)
        return Outcome(signal=os.WTERMSIG(status), oom_killed=oom, stopped=stopped)

    def _begin_stop(self, pid: int) -> None:
        self.stop_deadline = time.monotonic() + self.plan.stop_grace
        self.pid1_catches_term = catches_sigterm(pid)
        with contextlib.suppress(Exception):
            self.cgroup.signal(signal.SIGTERM)

    def _advance_stop(self, pid: int) -> None:
        """PID 1 of a namespace ignores signals it has no handler for; SIGTERM's default
        action would end it, so once its descendants have gone (or the grace ran out)
        it gets SIGKILL, which ends the whole namespace."""
        assert self.stop_deadline is not None
        if time.monotonic() >= self.stop_deadline:
            _kill(pid)
            return
        if not self.pid1_catches_term:
            try:
                others = [p for p in self.cgroup.procs() if p != pid]
            except Exception:
                others = []
            if not others:
                _kill(pid)

    def _finish(self, outcome: Outcome) -> None:
        try:
            self.cgroup.kill()
            self.cgroup.destroy()
        except Exception:
            pass
        write_json(
            self.paths.exit,
            {
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "oom_killed": outcome.oom_killed,
                "stopped": outcome.stopped,
                "launch_error": outcome.launch_error,
                "memory_limit_mb": self.plan.limits.max_memory_mb,
                "time": timefmt.now_str(),
            },
        )


def _sync_pair() -> tuple[int, int]:
    """(job end, supervisor end) of a close-on-exec socket pair."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a.detach(), b.detach()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def main(plan: LaunchPlan, report_fd: int) -> None:
    """Entry from the fork server, in the supervisor process; never returns."""
    code = 0
    try:
        Supervisor(plan, report_fd).run()
    except BaseException:
        code = 1
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)
