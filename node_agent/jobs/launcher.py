"""Agent side of job launching: the fork server's client and supervisor liveness.

The agent never forks after its gRPC threads exist; it hands plans to the fork server
(started here as a fresh interpreter) and awaits the supervisor's one-line start report.
Supervisor liveness is read from the lock it holds, never from a PID alone, so a recycled
PID can't be mistaken for a live job.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from node_agent.errors import LaunchFailed
from node_agent.isolation.forkserver import send_plan
from node_agent.isolation.plan import LaunchPlan
from node_agent.state.paths import JobPaths

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Started:
    pid: int
    supervisor: int
    time: str


class Launcher:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "node_agent.isolation.forkserver", "--fd", str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self._sock = parent

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def _ensure(self) -> socket.socket:
        if self._proc is None or self._proc.poll() is not None or self._sock is None:
            if self._proc is not None:
                log.error("fork server exited (%s); starting a new one", self._proc.returncode)
            self.close()
            self.start()
        assert self._sock is not None
        return self._sock

    async def launch(self, plan: LaunchPlan) -> Started:
        r, w = os.pipe2(os.O_CLOEXEC)
        sent = time.time()
        try:
            async with self._lock:
                sock = self._ensure()
                try:
                    send_plan(sock, plan, w)
                except OSError:
                    self.close()
                    send_plan(self._ensure(), plan, w)
        finally:
            os.close(w)
        line = await asyncio.wait_for(_read_line(r), START_TIMEOUT_S)
        if not line:
            raise LaunchFailed("the job's supervisor exited before reporting a start")
        event = json.loads(line)
        if event.get("event") != "started":
            raise LaunchFailed(str(event.get("error", "unknown launch failure")))
        if log.isEnabledFor(logging.DEBUG):
            t0 = sent
            phases = " ".join(
                f"{name}=+{(t - t0) * 1000:.1f}ms" for name, t in event.get("trace", [])
            )
            log.debug(
                "launch %s: %s reported=+%.1fms", plan.uuid, phases, (time.time() - t0) * 1000
            )
        return Started(int(event["pid"]), int(event["supervisor"]), str(event["time"]))


async def _read_line(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await reader.readline()
    finally:
        transport.close()


def supervisor_alive(paths: JobPaths) -> bool:
    """True while the job's supervisor holds its lock."""
    try:
        fd = os.open(paths.lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def supervisor_pid(paths: JobPaths) -> int | None:
    try:
        with open(paths.pidfile) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
