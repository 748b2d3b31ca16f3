"""The `joblet` CLI against a real agent, as a user types it; and the README's Python snippet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from joblet.cli.main import main
from tests.support.agent import REPO, Agent
from tests.support.pki import TestPKI


@pytest.fixture
def cli(agent: Agent, tmp_path: Path) -> list[str]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"version: 1\ndefault: local\nnodes:\n  local:\n    address: {agent.target}\n")
    return ["--config", str(cfg)]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_follow_streams_and_exits_with_job_code(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, *cli, "job", "run", "--follow", "--", "sh", "-c", "echo from-job; exit 3"
    )
    assert code == 3
    assert out == "from-job\n"


def test_run_list_status_log_delete(
    cli: list[str], capsys: pytest.CaptureFixture[str], agent: Agent
) -> None:
    code, out, _ = run_cli(
        capsys, *cli, "--json", "job", "run", "--name", "cli-job", "-e", "A=1", "echo", "hello"
    )
    assert code == 0
    uuid = json.loads(out)["job_uuid"] if "job_uuid" in json.loads(out) else json.loads(out)["uuid"]
    agent.wait(uuid)
    code, out, _ = run_cli(capsys, *cli, "job", "log", uuid[:8])
    assert (code, out) == (0, "hello\n")
    code, out, _ = run_cli(capsys, *cli, "--json", "job", "status", uuid)
    status = json.loads(out)
    assert status["status"] == "COMPLETED" and status["name"] == "cli-job"
    code, out, _ = run_cli(capsys, *cli, "job", "list")
    assert code == 0 and uuid in out and "COMPLETED" in out
    code, out, _ = run_cli(capsys, *cli, "job", "delete", uuid)
    assert code == 0
    code, _, err = run_cli(capsys, *cli, "job", "status", uuid)
    assert code == 1 and "NOT_FOUND" in err


def test_limits_uploads_and_secret_flags(
    cli: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "script.sh"
    src.write_text("echo uploaded $TOKEN\n")
    code, out, _ = run_cli(
        capsys,
        *cli,
        "job",
        "run",
        "--follow",
        "--max-memory",
        "64",
        "--max-cpu",
        "50",
        "--upload",
        str(src),
        "-s",
        "TOKEN=very-secret-1",
        "--",
        "sh",
        "script.sh",
    )
    assert code == 0
    assert out == "uploaded ***\n"


def test_stop_and_scheduled_cancel(
    cli: list[str], capsys: pytest.CaptureFixture[str], agent: Agent
) -> None:
    code, out, _ = run_cli(capsys, *cli, "--json", "job", "run", "--schedule", "5m", "true")
    job = json.loads(out)
    uuid = job.get("job_uuid") or job["uuid"]
    assert job["status"] == "SCHEDULED"
    code, out, _ = run_cli(capsys, *cli, "job", "cancel", uuid)
    assert code == 0 and "CANCELED" in out
    r = agent.run("sleep", "60")
    code, out, _ = run_cli(capsys, *cli, "job", "stop", r.job_uuid)
    assert code == 0 and "STOPPED" in out


def test_bad_input_is_a_clear_error(cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, *cli, "job", "run", "--cpu-cores", "0-99", "true")
    assert code == 1 and "INVALID_ARGUMENT" in err and "cpu_cores" in err


def test_cli_over_mtls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = TestPKI(str(tmp_path / "pki"))
    srv = pki.issue("agent", server=True)
    admin = pki.issue("cli-admin", ou="admin")
    a = Agent(
        str(tmp_path / "state"), ("--tls-cert", srv.cert, "--tls-key", srv.key, "--tls-ca", srv.ca)
    ).start()
    try:
        port = a.target.rsplit(":", 1)[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            "version: 1\ndefault: secure\nnodes:\n  secure:\n"
            f"    address: localhost:{port}\n    cert: {admin.cert}\n"
            f"    key: {admin.key}\n    ca: {admin.ca}\n"
        )
        code, out, err = run_cli(
            capsys, "--config", str(cfg), "job", "run", "--follow", "echo", "secure"
        )
        assert (code, out) == (0, "secure\n"), err
    finally:
        a.stop()


README_SNIPPET = """
import grpc
import joblet_pb2, joblet_pb2_grpc

channel = grpc.insecure_channel("{target}")
stub = joblet_pb2_grpc.JobServiceStub(channel)
job = stub.RunJob(joblet_pb2.RunJobRequest(command="echo", args=["Hello, World!"]))
print(job.job_uuid, job.status)
for chunk in stub.GetJobLogs(joblet_pb2.GetJobLogsRequest(uuid=job.job_uuid)):
    print(chunk.payload.decode(), end="")
"""


def test_readme_python_snippet(agent: Agent, tmp_path: Path) -> None:
    """Stubs generated the way users do (plain grpc_tools.protoc), then the README's code."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            os.path.join(REPO, "proto"),
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "joblet.proto",
        ],
        check=True,
    )
    (tmp_path / "snippet.py").write_text(README_SNIPPET.format(target=agent.target))
    p = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()
    assert first.endswith(("RUNNING", "COMPLETED"))
    assert second == "Hello, World!"
