"""Run a real `joblet-agent` process for tests and benchmarks, and talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.netclean import remove_agent_networks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# every state directory an agent was started on in this process, so a test session can
# remove the bridges and rules those agents left on the host (tests/support/netclean.py)
STARTED: set[str] = set()


@dataclass
class Agent:
    state_dir: str
    args: tuple[str, ...] = ()
    listen: str = ""
    proc: subprocess.Popen[bytes] | None = None
    channel: grpc.Channel | None = None
    log_path: str = ""
    _creds: grpc.ChannelCredentials | None = field(default=None, repr=False)

    def start(self, timeout: float = 20.0) -> Agent:
        if not self.listen:
            self.listen = f"127.0.0.1:{free_port()}"
        STARTED.add(os.path.abspath(self.state_dir))
        parent = os.path.dirname(os.path.abspath(self.state_dir))
        os.makedirs(parent, exist_ok=True)
        self.log_path = os.path.join(parent, f"agent-{os.path.basename(self.state_dir)}.log")
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        offset = log.tell()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node_agent.main",
                "--listen",
                self.listen,
                "--state-dir",
                self.state_dir,
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"listening on" in f.read():
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"agent did not start in {timeout}s:\n{self.log()}")
        return self

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-5000:]
        except OSError:
            return ""

    @property
    def target(self) -> str:
        return self.listen

    def connect(self, creds: grpc.ChannelCredentials | None = None) -> grpc.Channel:
        opts = [
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.max_send_message_length", 256 << 20),
        ]
        if creds is None:
            return grpc.insecure_channel(self.target, options=opts)
        return grpc.secure_channel(
            self.target, creds, options=[*opts, ("grpc.ssl_target_name_override", "localhost")]
        )

    @property
    def jobs(self) -> pbg.JobServiceStub:
        if self.channel is None:
            self.channel = self.connect()
        return pbg.JobServiceStub(self.channel)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._close_channel()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_channel()

    def destroy(self) -> None:
        """Stop the agent and remove what it left on the host on purpose (bridges, nftables
        rules): for callers that are done with its state directory for good."""
        self.stop()
        remove_agent_networks(self.state_dir)

    def _close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    # -- helpers for tests ------------------------------------------------------------------

    def run(self, command: str, *args: str, **kw: object) -> pb.RunJobResponse:
        return self.jobs.RunJob(pb.RunJobRequest(command=command, args=list(args), **kw))  # type: ignore[arg-type]

    def status(self, uuid: str) -> pb.GetJobStatusResponse:
        return self.jobs.GetJobStatus(pb.GetJobStatusRequest(uuid=uuid))

    def wait(self, uuid: str, timeout: float = 30.0) -> pb.GetJobStatusResponse:
        """Follow the job's log stream to its end (the server ends it when the job ends)."""
        for _ in self.jobs.GetJobLogs(pb.GetJobLogsRequest(uuid=uuid), timeout=timeout):
            pass
        return self.status(uuid)

    def output(self, uuid: str, timeout: float = 30.0) -> bytes:
        chunks: Iterator[pb.DataChunk] = self.jobs.GetJobLogs(
            pb.GetJobLogsRequest(uuid=uuid), timeout=timeout
        )
        return b"".join(c.payload for c in chunks)

    def wait_output(self, uuid: str, text: bytes, timeout: float = 30.0) -> bytes:
        """Follow the job's live output until `text` appears (a condition, not a sleep)."""
        stream = self.jobs.GetJobLogs(pb.GetJobLogsRequest(uuid=uuid), timeout=timeout)
        seen = b""
        for chunk in stream:
            seen += chunk.payload
            if text in seen:
                stream.cancel()
                return seen
        raise AssertionError(f"job {uuid} ended without printing {text!r}: {seen!r}")

    def run_to_end(
        self, command: str, *args: str, **kw: object
    ) -> tuple[pb.GetJobStatusResponse, bytes]:
        r = self.run(command, *args, **kw)
        out = self.output(r.job_uuid)
        return self.status(r.job_uuid), out
