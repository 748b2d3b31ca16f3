"""Starts and stops the control-plane daemons. Each runs in its own session (process group) with
its output in a log file, so that stopping kills the whole group, and, unless detached, with a
parent-death signal so that no daemon outlives a test run that is killed outright."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class Daemon:
    """A started daemon: its name, pid (= process group id) and log file."""

    name: str
    pid: int
    log: Path

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_daemon(
    name: str, argv: Sequence[str], log_dir: Path, *, detach: bool = False
) -> tuple[Daemon, subprocess.Popen[bytes]]:
    """Starts ``argv`` in a new session; with ``detach`` it survives this Python process."""
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        preexec: Callable[[], None] | None = None if detach else _die_with_parent
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    return Daemon(name=name, pid=proc.pid, log=log), proc


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_group(pid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds; reaps our own child."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            if proc is None and not pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    # Anything else left in the group (none expected) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
