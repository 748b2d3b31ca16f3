"""The fork server: a small pre-imported process that starts job supervisors by forking.

Starting a fresh interpreter per job costs ~15 ms here; a fork of this process costs
about a millisecond, and since it imports only the isolation code (no gRPC, no asyncio
server), a supervisor forked from it carries little private memory. The agent starts
it at boot and talks to it over a socketpair: each request is a length-prefixed
`LaunchPlan` plus, as SCM_RIGHTS, the write end of a pipe on which the supervisor
reports the start. Each supervisor gets its own session; when the agent (and with it this
server, which exits at EOF) goes away, init adopts the supervisors and they live on.
"""

from __future__ import annotations

import argparse
import array
import gc
import os
import signal
import socket
import struct
import sys

from node_agent.isolation import netsetup, supervisor
from node_agent.isolation.plan import LaunchPlan

HEADER = struct.Struct("!I")
MAX_PLAN = 16 << 20


def send_plan(sock: socket.socket, plan: LaunchPlan, report_fd: int) -> None:
    data = plan.to_json()
    fds = array.array("i", [report_fd])
    sock.sendmsg([HEADER.pack(len(data)), data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _recv_plan(sock: socket.socket) -> tuple[bytes, int]:
    fds = array.array("i")
    msg, anc, _flags, _addr = sock.recvmsg(HEADER.size, socket.CMSG_SPACE(fds.itemsize))
    if not msg:
        raise EOFError
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(msg) < HEADER.size:
        msg += _recv_exact(sock, HEADER.size - len(msg))
    (length,) = HEADER.unpack(msg)
    if length > MAX_PLAN or not fds:
        raise EOFError
    return _recv_exact(sock, length), fds[0]


def _reap() -> None:
    """Collect supervisors that ended while this server lives (init adopts the rest)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # keep the collector from touching (and so copying) inherited pages
    while True:
        try:
            data, report_fd = _recv_plan(sock)
        except (EOFError, ConnectionError):
            return
        _reap()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.setsid()  # its own session: no signal aimed at the agent's group reaches it
                os.chdir("/")
                os.umask(0o022)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                supervisor.main(LaunchPlan.from_json(data), report_fd)
            finally:
                os._exit(1)
        os.close(report_fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    netsetup.warm()
    serve(sock)
    sys.exit(0)


if __name__ == "__main__":
    main()
