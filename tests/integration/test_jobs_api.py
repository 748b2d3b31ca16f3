"""JobService end to end: uploads, work dirs, listing, prefixes, deletion, idempotent UUIDs,
log replay and follow, bounded logs, and bad input that changes nothing."""

from __future__ import annotations

import os
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator

import grpc
import pytest

from joblet.api import joblet_pb2 as pb
from tests.support.agent import Agent


def test_uploads_with_directories_and_modes(agent: Agent) -> None:
    uploads = [
        pb.FileUpload(path="bin", is_directory=True, mode=0o750),
        pb.FileUpload(path="bin/run.sh", content=b"#!/bin/sh\necho ran $1\n", mode=0o755),
        pb.FileUpload(path="data/in.txt", content=b"payload\n", mode=0o640),
    ]
    st, out = agent.run_to_end(
        "sh",
        "-c",
        "./bin/run.sh ok; cat data/in.txt; stat -c '%a %n' bin bin/run.sh data/in.txt",
        uploads=uploads,
    )
    assert st.status == "COMPLETED", out
    lines = out.decode().splitlines()
    assert lines[:2] == ["ran ok", "payload"]
    assert lines[2:] == ["750 bin", "755 bin/run.sh", "640 data/in.txt"]
    assert sorted(st.uploads) == ["bin", "bin/run.sh", "data/in.txt"]


def test_work_dir(agent: Agent) -> None:
    st, out = agent.run_to_end("pwd", work_dir="/work/sub/dir")
    assert out == b"/work/sub/dir\n" and st.work_dir == "/work/sub/dir"


def test_environment(agent: Agent) -> None:
    _, out = agent.run_to_end(
        "sh", "-c", "echo $GREETING $JOB_ID", environment={"GREETING": "hello"}
    )
    greeting, job_id = out.decode().split()
    assert greeting == "hello" and len(job_id) == 36


def test_list_status_prefix_delete(agent: Agent) -> None:
    st, _ = agent.run_to_end("true", name="to-delete")
    listed = {j.uuid: j for j in agent.jobs.ListJobs(pb.EmptyRequest()).jobs}
    assert listed[st.uuid].status == "COMPLETED" and listed[st.uuid].name == "to-delete"
    assert agent.status(st.uuid[:13]).uuid == st.uuid
    r = agent.jobs.DeleteJob(pb.DeleteJobRequest(uuid=st.uuid[:13]))
    assert r.success and r.uuid == st.uuid
    with pytest.raises(grpc.RpcError) as e:
        agent.status(st.uuid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not os.path.exists(os.path.join(agent.state_dir, "jobs", st.uuid))


def test_delete_refuses_running_and_delete_all_skips_it(agent: Agent) -> None:
    running = agent.run("sleep", "30")
    done, _ = agent.run_to_end("true")
    with pytest.raises(grpc.RpcError) as e:
        agent.jobs.DeleteJob(pb.DeleteJobRequest(uuid=running.job_uuid))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    r = agent.jobs.DeleteAllJobs(pb.DeleteAllJobsRequest())
    assert r.success and r.deleted_count >= 1 and r.skipped_count >= 1
    assert agent.status(running.job_uuid).status == "RUNNING"
    with pytest.raises(grpc.RpcError):
        agent.status(done.uuid)
    agent.jobs.StopJob(pb.StopJobRequest(uuid=running.job_uuid))


def test_cancel_only_scheduled(agent: Agent) -> None:
    st, _ = agent.run_to_end("true")
    with pytest.raises(grpc.RpcError) as e:
        agent.jobs.CancelJob(pb.CancelJobRequest(uuid=st.uuid))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only a SCHEDULED job can be canceled" in (e.value.details() or "")


def test_same_job_uuid_never_starts_twice(agent: Agent) -> None:
    u = str(uuidlib.uuid4())
    a = agent.run("sh", "-c", "echo once", job_uuid=u)
    b = agent.run("sh", "-c", "echo once", job_uuid=u)
    assert a.job_uuid == b.job_uuid == u
    agent.wait(u)
    assert agent.output(u) == b"once\n"
    assert sum(1 for j in agent.jobs.ListJobs(pb.EmptyRequest()).jobs if j.uuid == u) == 1


def test_logs_follow_live_output(agent: Agent) -> None:
    r = agent.run("sh", "-c", "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.3; done")
    seen: list[tuple[float, bytes]] = []
    start = time.monotonic()
    stream: Iterator[pb.DataChunk] = agent.jobs.GetJobLogs(pb.GetJobLogsRequest(uuid=r.job_uuid))
    for chunk in stream:
        seen.append((time.monotonic() - start, chunk.payload))
    text = b"".join(p for _, p in seen).decode().split()
    assert text == [f"tick-{i}" for i in range(1, 6)]
    # the first line arrived while the job was still running, not all at the end
    assert seen[0][0] < seen[-1][0] - 0.5


def test_logs_for_a_running_job_from_two_readers(agent: Agent) -> None:
    r = agent.run("sh", "-c", "seq 1 20000; sleep 0.5; seq 20001 40000")
    results: list[bytes] = []

    def read() -> None:
        results.append(agent.output(r.job_uuid))

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expected = "".join(f"{i}\n" for i in range(1, 40001)).encode()
    assert results == [expected, expected]


def test_logs_are_bounded(tmp_path_factory: pytest.TempPathFactory) -> None:
    state = tmp_path_factory.mktemp("bounded") / "state"
    a = Agent(
        str(state), ("--log-max-bytes", str(1 << 20), "--log-segment-bytes", str(256 << 10))
    ).start()
    script = "head -c 20000000 /dev/zero | tr '\\0' 'x'; echo; echo tail-end"
    try:
        # a live follower gets the output in order; if the writer outran it by more than
        # the cap, the gap is marked, never silent
        _, out = a.run_to_end("sh", "-c", script)
        assert out.endswith(b"xx\ntail-end\n")
        if len(out) < 20000000 + len(b"\ntail-end\n"):
            assert b"[joblet: earlier output was dropped by log rotation]" in out
        assert set(
            out.replace(b"\n[joblet: earlier output was dropped by log rotation]\n", b"")
        ) == set(b"x\ntail-end")
        # a reader arriving after the job finds at most the cap, and is told what was dropped
        r = a.run("sh", "-c", script)
        deadline = time.monotonic() + 60
        while a.status(r.job_uuid).status != "COMPLETED" and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = os.path.join(str(state), "jobs", r.job_uuid, "logs")
        on_disk = sum(os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs))
        assert on_disk <= 1 << 20
        late = a.output(r.job_uuid)
        assert late.startswith(b"\n[joblet: earlier output was dropped by log rotation]\n")
        assert late.endswith(b"tail-end\n")
        assert len(late) <= (1 << 20) + 100
    finally:
        a.stop()


@pytest.mark.parametrize(
    ("request_", "code", "fragment"),
    [
        (pb.RunJobRequest(command=""), grpc.StatusCode.INVALID_ARGUMENT, "command is empty"),
        (
            pb.RunJobRequest(command="x", cpu_cores="9-3"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "cpu_cores",
        ),
        (
            pb.RunJobRequest(command="x", max_memory=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "negative",
        ),
        (
            pb.RunJobRequest(
                command="x", uploads=[pb.FileUpload(path="../../etc/cron.d/x", content=b"x")]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "'..'",
        ),
        (
            pb.RunJobRequest(
                command="x", uploads=[pb.FileUpload(path="/etc/passwd", content=b"x")]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "absolute",
        ),
        (
            pb.RunJobRequest(command="x", schedule="2020-01-01T00:00:00Z"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "past",
        ),
        (
            pb.RunJobRequest(command="x", schedule="next tuesday"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "RFC3339",
        ),
        (
            pb.RunJobRequest(
                command="x", uploads=[pb.FileUpload(path="big", content=b"0" * (65 << 20))]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "more than this agent accepts",
        ),
    ],
)
def test_bad_run_requests_change_nothing(
    agent: Agent, request_: pb.RunJobRequest, code: grpc.StatusCode, fragment: str
) -> None:
    before = sorted(os.listdir(os.path.join(agent.state_dir, "jobs")))
    n_before = len(agent.jobs.ListJobs(pb.EmptyRequest()).jobs)
    with pytest.raises(grpc.RpcError) as e:
        agent.jobs.RunJob(request_)
    assert e.value.code() == code
    assert fragment in (e.value.details() or "")
    assert sorted(os.listdir(os.path.join(agent.state_dir, "jobs"))) == before
    assert len(agent.jobs.ListJobs(pb.EmptyRequest()).jobs) == n_before


def test_oversized_message_refused(agent: Agent) -> None:
    with pytest.raises(grpc.RpcError) as e:
        agent.jobs.RunJob(
            pb.RunJobRequest(
                command="x", uploads=[pb.FileUpload(path="huge", content=b"0" * (130 << 20))]
            )
        )
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("network", "nope", "network 'nope' does not exist"),
        ("volumes", ["data"], "volume 'data' does not exist"),
        ("runtime", "python-3.11-ml", "runtime 'python-3.11-ml' is not installed"),
    ],
)
def test_missing_node_resources(agent: Agent, field: str, value: object, fragment: str) -> None:
    n_before = len(agent.jobs.ListJobs(pb.EmptyRequest()).jobs)
    with pytest.raises(grpc.RpcError) as e:
        agent.jobs.RunJob(pb.RunJobRequest(command="true", **{field: value}))  # type: ignore[arg-type]
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert fragment in (e.value.details() or "")
    assert len(agent.jobs.ListJobs(pb.EmptyRequest()).jobs) == n_before


@pytest.mark.parametrize(
    "call", ["GetJobStatus", "StopJob", "CancelJob", "DeleteJob", "GetJobLogs"]
)
def test_unknown_job(agent: Agent, call: str) -> None:
    req = {
        "GetJobStatus": pb.GetJobStatusRequest,
        "StopJob": pb.StopJobRequest,
        "CancelJob": pb.CancelJobRequest,
        "DeleteJob": pb.DeleteJobRequest,
        "GetJobLogs": pb.GetJobLogsRequest,
    }[call](uuid="ffffffff-0000")
    with pytest.raises(grpc.RpcError) as e:
        result = getattr(agent.jobs, call)(req)
        if call == "GetJobLogs":
            list(result)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "not found" in (e.value.details() or "")


def test_workflow_rpcs_say_they_are_not_available(agent: Agent) -> None:
    with pytest.raises(grpc.RpcError) as e:
        agent.jobs.RunWorkflow(pb.RunWorkflowRequest(workflow="w.yaml"))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "workflows are not available on this agent yet" in (e.value.details() or "")


def test_launch_finishes_when_the_client_gives_up(agent: Agent) -> None:
    """gRPC cancels a handler whose client goes away; an accepted launch must still finish,
    and a retry of the same job_uuid must see it run, not a record stuck in INITIALIZING."""
    u = str(uuidlib.uuid4())
    big = pb.FileUpload(path="blob", content=b"0" * (32 << 20))  # makes admission take a while
    req = pb.RunJobRequest(command="sh", args=["-c", "wc -c < blob"], uploads=[big], job_uuid=u)
    call = agent.jobs.RunJob.future(req)
    job_dir = os.path.join(agent.state_dir, "jobs", u)
    deadline = time.monotonic() + 30
    while not os.path.exists(job_dir) and time.monotonic() < deadline:
        pass  # the agent creates the job's directory while admitting it
    assert os.path.exists(job_dir), "the agent never started admitting the job"
    call.cancel()  # the client goes away in the middle of admission
    again = agent.jobs.RunJob(req, timeout=30)
    assert again.job_uuid == u
    st = agent.wait(u, timeout=30)
    assert (st.status, st.exit_code) == ("COMPLETED", 0)
    assert agent.output(u) == b"33554432\n"
    assert sum(1 for j in agent.jobs.ListJobs(pb.EmptyRequest()).jobs if j.uuid == u) == 1
