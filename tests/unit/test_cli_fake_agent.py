"""The CLI's own behaviour over real gRPC, against a scripted in-process JobService.

Not a substitute for the integration tests against the real agent: these pin what only the CLI
decides — exit statuses, streaming and idle cut-off of logs, error lines for server errors and
unimplemented services, plaintext refusal, and the mutual-TLS channel set-up.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pb_grpc
from joblet.cli.main import main

JOB = "4f1c2a9e-0000-4000-8000-000000000001"


@dataclass
class Script:
    """What the fake agent answers."""

    final_status: str = "COMPLETED"
    exit_code: int = 0
    chunks: list[bytes] = field(default_factory=lambda: [b"hello\n", b"world\n"])
    keep_streaming_open: bool = False  # a job that is still running
    requests: list[pb.RunJobRequest] = field(default_factory=list)
    log_cancelled: threading.Event = field(default_factory=threading.Event)
    big_name: str = ""  # name of the listed job, to exceed gRPC's default 4 MiB limit


class FakeJobs(pb_grpc.JobServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    def RunJob(self, request: pb.RunJobRequest, context: grpc.ServicerContext) -> pb.RunJobResponse:
        self.script.requests.append(request)
        return pb.RunJobResponse(
            job_uuid=JOB, status="RUNNING", command=request.command, args=request.args
        )

    def GetJobStatus(
        self, request: pb.GetJobStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetJobStatusResponse:
        if not JOB.startswith(request.uuid):
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.uuid} not found")
        s = self.script
        status = "RUNNING" if s.keep_streaming_open else s.final_status
        return pb.GetJobStatusResponse(
            uuid=JOB,
            status=status,
            exit_code=s.exit_code,
            command="sh",
            args=["-c", "echo hi"],
            secret_environment={"TOKEN": "*****"},
            message="killed: memory limit exceeded" if s.final_status == "FAILED" else "",
        )

    def GetJobLogs(
        self, request: pb.GetJobLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.DataChunk]:
        for chunk in self.script.chunks:
            yield pb.DataChunk(payload=chunk)
        if self.script.keep_streaming_open:
            deadline = time.monotonic() + 20
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not context.is_active():
                self.script.log_cancelled.set()

    def ListJobs(self, request: pb.EmptyRequest, context: grpc.ServicerContext) -> pb.Jobs:
        return pb.Jobs(
            jobs=[
                pb.Job(
                    uuid=JOB,
                    name=self.script.big_name or "demo",
                    status="COMPLETED",
                    command="echo",
                    args=["a b"],
                ),
                pb.Job(uuid="x2", status="RUNNING", command="sleep", args=["60"]),
            ]
        )


@pytest.fixture
def script() -> Script:
    return Script()


def _serve(
    script: Script, credentials: grpc.ServerCredentials | None = None
) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    # The fake leaves the RPCs it does not script abstract: gRPC answers them UNIMPLEMENTED.
    pb_grpc.add_JobServiceServicer_to_server(FakeJobs(script), server)  # type: ignore[abstract]
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@pytest.fixture
def agent(script: Script, tmp_path: Path) -> Iterator[Path]:
    """A running fake agent; yields the path of a config file that points at it."""
    server, port = _serve(script)
    config = tmp_path / "config.yaml"
    config.write_text(f"version: 1\nnodes:\n  fake:\n    address: 127.0.0.1:{port}\n")
    try:
        yield config
    finally:
        server.stop(grace=None)


def run_cli(config: Path, *argv: str) -> int:
    return main(["--config", str(config), *argv])


def test_run_prints_uuid_and_status(agent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(agent, "job", "run", "--", "echo", "Hello, World!") == 0
    out = capsys.readouterr().out
    assert f"job_uuid: {JOB}" in out and "status:   RUNNING" in out
    assert "command:  echo 'Hello, World!'" in out


def test_run_json(agent: Path, script: Script, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(agent, "--json", "job", "run", "-s", "TOKEN=hunter2", "true") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["job_uuid"] == JOB and data["status"] == "RUNNING"
    assert dict(script.requests[0].secret_environment) == {"TOKEN": "hunter2"}


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [("COMPLETED", 0, 0), ("FAILED", 3, 3), ("FAILED", -1, 1), ("STOPPED", 0, 1)],
)
def test_follow_streams_output_and_exits_with_job_code(
    agent: Path,
    script: Script,
    capsys: pytest.CaptureFixture[str],
    status: str,
    code: int,
    expected: int,
) -> None:
    script.final_status, script.exit_code = status, code
    assert run_cli(agent, "job", "run", "-f", "sh", "-c", "echo hello; echo world") == expected
    captured = capsys.readouterr()
    assert captured.out == "hello\nworld\n"
    assert status in captured.err


def test_log_of_running_job_without_follow_stops_when_idle(
    agent: Path, script: Script, capsys: pytest.CaptureFixture[str]
) -> None:
    script.keep_streaming_open = True
    started = time.monotonic()
    assert run_cli(agent, "job", "log", JOB[:8]) == 0
    assert time.monotonic() - started < 10
    assert capsys.readouterr().out == "hello\nworld\n"
    assert script.log_cancelled.wait(5), "the CLI should cancel the log stream"


def test_log_of_ended_job_prints_everything(
    agent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(agent, "job", "log", "-f", JOB) == 0
    assert capsys.readouterr().out == "hello\nworld\n"


def test_status_shows_masked_secrets_and_message(
    agent: Path, script: Script, capsys: pytest.CaptureFixture[str]
) -> None:
    script.final_status, script.exit_code = "FAILED", 137
    assert run_cli(agent, "job", "status", JOB[:4]) == 0
    out = capsys.readouterr().out
    assert "status:" in out and "FAILED" in out
    assert "exit_code:" in out and "137" in out
    assert "TOKEN=*****" in out
    assert "command:" in out and "sh -c 'echo hi'" in out
    assert "killed: memory limit exceeded" in out


def test_list_table_and_json(agent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(agent, "job", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["UUID", "NAME", "STATUS", "EXIT", "START", "COMMAND"]
    assert JOB in lines[1] and "echo 'a b'" in lines[1]
    assert run_cli(agent, "job", "list", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [j["uuid"] for j in data] == [JOB, "x2"]


def test_server_error_is_one_line_and_exit_1(
    agent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(agent, "job", "status", "nope") == 1
    captured = capsys.readouterr()
    assert captured.err == "error: NOT_FOUND: job nope not found\n"
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["network", "list"],
        ["volume", "create", "v", "--size", "1GB"],
        ["monitor", "status"],
        ["runtime", "list"],
        ["job", "delete-all"],
    ],
)
def test_unimplemented_service_is_reported_cleanly(
    agent: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert run_cli(agent, *argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: UNIMPLEMENTED: ") and err.count("\n") == 1


def test_unreachable_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\nnodes:\n  gone:\n    address: 127.0.0.1:9\n")
    assert run_cli(config, "job", "list") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: UNAVAILABLE: ") and "127.0.0.1:9" in err


def test_plaintext_to_remote_address_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\nnodes:\n  far:\n    address: 192.0.2.10:50051\n")
    assert run_cli(config, "job", "list") == 1
    assert "refusing plaintext" in capsys.readouterr().err


def test_nodes_lists_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "version: 1\ndefault: b\nnodes:\n  a: {address: 'localhost:1'}\n"
        "  b: {address: 'h:2', cert: c, key: k, ca: ca}\n"
    )
    assert run_cli(config, "nodes") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["a", "localhost:1", "plaintext", "no"]
    assert lines[2].split() == ["b", "h:2", "mtls", "yes"]
    assert run_cli(config, "nodes", "--json") == 0
    assert json.loads(capsys.readouterr().out)[1] == {
        "name": "b",
        "address": "h:2",
        "tls": True,
        "default": True,
    }


def test_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("version: 7\n")
    assert run_cli(config, "job", "list") == 1
    assert "version must be 1" in capsys.readouterr().err


# Mutual TLS ----------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("joblet-agent"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def mtls_agent(script: Script, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("test-ca", ca_key, "test-ca", ca_key, ca=True)
    server_cert = _cert("joblet-agent", server_key, "test-ca", ca_key, server=True)
    client_cert = _cert("admin", client_key, "test-ca", ca_key)
    (tmp_path / "ca.crt").write_bytes(_pem(ca))
    (tmp_path / "client.crt").write_bytes(_pem(client_cert))
    (tmp_path / "client.key").write_bytes(_pem_key(client_key))
    credentials = grpc.ssl_server_credentials(
        [(_pem_key(server_key), _pem(server_cert))],
        root_certificates=_pem(ca),
        require_client_auth=True,
    )
    server, port = _serve(script, credentials)
    try:
        yield port, tmp_path
    finally:
        server.stop(grace=None)


def test_mtls_channel(mtls_agent: tuple[int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    port, certs = mtls_agent
    config = certs / "config.yaml"
    config.write_text(
        "version: 1\nnodes:\n"
        f"  tls:\n    address: 127.0.0.1:{port}\n"
        "    cert: client.crt\n    key: client.key\n    ca: ca.crt\n"
        f"  named:\n    address: localhost:{port}\n    server_name: joblet-agent\n"
        "    cert: client.crt\n    key: client.key\n    ca: ca.crt\n"
        f"  plain:\n    address: 127.0.0.1:{port}\n"
        "default: tls\n"
    )
    assert run_cli(config, "job", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["uuid"] == JOB
    assert run_cli(config, "--node", "named", "job", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["uuid"] == JOB
    # Without a client certificate the agent refuses the connection.
    assert run_cli(config, "--node", "plain", "job", "list") == 1
    assert capsys.readouterr().err.startswith("error: UNAVAILABLE")


def test_mtls_missing_cert_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "version: 1\nnodes:\n  n:\n    address: 192.0.2.1:1\n"
        "    cert: nope.crt\n    key: nope.key\n    ca: nope.ca\n"
    )
    assert run_cli(config, "job", "list") == 1
    assert "cannot read TLS file" in capsys.readouterr().err


def test_follow_json_keeps_stdout_for_job_output(
    agent: Path, script: Script, capsys: pytest.CaptureFixture[str]
) -> None:
    script.final_status, script.exit_code = "FAILED", 2
    assert run_cli(agent, "--json", "job", "run", "-f", "false") == 2
    captured = capsys.readouterr()
    assert captured.out == "hello\nworld\n"
    verdict = json.loads(captured.err.splitlines()[-1])
    assert (verdict["status"], verdict["exit_code"]) == ("FAILED", 2)


def test_responses_beyond_the_4mib_grpc_default_are_received(
    agent: Path, script: Script, capsys: pytest.CaptureFixture[str]
) -> None:
    script.big_name = "n" * (10 * 1024 * 1024)
    assert run_cli(agent, "--json", "job", "list") == 0
    assert len(json.loads(capsys.readouterr().out)[0]["name"]) == 10 * 1024 * 1024
