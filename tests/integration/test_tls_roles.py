"""mTLS: no call without a valid client certificate; viewers read, only admins change."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.agent import REPO, Agent, free_port
from tests.support.pki import CertFiles, TestPKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def tls_agent(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    srv = pki.issue("agent", server=True)
    state = tmp_path_factory.mktemp("tls") / "state"
    a = Agent(
        str(state),
        ("--tls-cert", srv.cert, "--tls-key", srv.key, "--tls-ca", srv.ca),
        listen=f"127.0.0.1:{free_port()}",
    ).start()
    yield a
    a.stop()


def stub(agent: Agent, files: CertFiles | None, ca: str) -> pbg.JobServiceStub:
    with open(ca, "rb") as f:
        root = f.read()
    if files is None:
        creds = grpc.ssl_channel_credentials(root_certificates=root)
    else:
        cert, key, _ = files.read()
        creds = grpc.ssl_channel_credentials(root, key, cert)
    return pbg.JobServiceStub(agent.connect(creds))


def test_admin_can_run(tls_agent: Agent, pki: TestPKI) -> None:
    s = stub(tls_agent, pki.issue("alice", ou="admin"), pki.ca_path)
    r = s.RunJob(pb.RunJobRequest(command="echo", args=["over mTLS"]))
    out = b"".join(c.payload for c in s.GetJobLogs(pb.GetJobLogsRequest(uuid=r.job_uuid)))
    assert out == b"over mTLS\n"


def test_viewer_reads_but_cannot_change(tls_agent: Agent, pki: TestPKI) -> None:
    admin = stub(tls_agent, pki.issue("root-admin", ou="admin"), pki.ca_path)
    r = admin.RunJob(pb.RunJobRequest(command="echo", args=["x"]))
    viewer = stub(tls_agent, pki.issue("bob", ou="viewer"), pki.ca_path)
    assert viewer.GetJobStatus(pb.GetJobStatusRequest(uuid=r.job_uuid)).uuid == r.job_uuid
    assert any(j.uuid == r.job_uuid for j in viewer.ListJobs(pb.EmptyRequest()).jobs)
    list(viewer.GetJobLogs(pb.GetJobLogsRequest(uuid=r.job_uuid)))
    calls: list[Callable[[], object]] = [
        lambda: viewer.RunJob(pb.RunJobRequest(command="echo")),
        lambda: viewer.StopJob(pb.StopJobRequest(uuid=r.job_uuid)),
        lambda: viewer.DeleteJob(pb.DeleteJobRequest(uuid=r.job_uuid)),
        lambda: viewer.DeleteAllJobs(pb.DeleteAllJobsRequest()),
        lambda: viewer.CancelJob(pb.CancelJobRequest(uuid=r.job_uuid)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "viewer" in (e.value.details() or "")
    assert admin.GetJobStatus(pb.GetJobStatusRequest(uuid=r.job_uuid)).status == "COMPLETED"


def test_certificate_without_role_is_refused(tls_agent: Agent, pki: TestPKI) -> None:
    s = stub(tls_agent, pki.issue("mallory"), pki.ca_path)
    with pytest.raises(grpc.RpcError) as e:
        s.ListJobs(pb.EmptyRequest())
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "OU=admin" in (e.value.details() or "")


def test_no_client_certificate_no_call(tls_agent: Agent, pki: TestPKI) -> None:
    s = stub(tls_agent, None, pki.ca_path)
    with pytest.raises(grpc.RpcError) as e:
        s.RunJob(pb.RunJobRequest(command="echo"), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_from_another_ca_refused(
    tls_agent: Agent, pki: TestPKI, tmp_path: Path
) -> None:
    other = TestPKI(str(tmp_path / "other"))
    s = stub(tls_agent, other.issue("eve", ou="admin"), pki.ca_path)
    with pytest.raises(grpc.RpcError) as e:
        s.RunJob(pb.RunJobRequest(command="echo"), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_refuses_public_listen_without_tls(tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "node_agent.main",
            "--listen",
            "0.0.0.0:0",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert p.returncode != 0
    assert "refusing to listen on 0.0.0.0:0 without mTLS" in p.stderr
