"""Jobs outlive the agent: kill -9, restart, and every job finishes with its exit code and
complete log; scheduled jobs and finished jobs' logs survive restarts too."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

from joblet.api import joblet_pb2 as pb
from node_agent import timefmt
from tests.support.agent import Agent

COUNT_SCRIPT = "for i in $(seq 1 {n}); do echo line-$i; sleep {d}; done; exit {code}"


def expected_lines(n: int) -> list[str]:
    return [f"line-{i}" for i in range(1, n + 1)]


def test_kill9_agent_jobs_finish_with_code_and_full_log(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    jobs = {
        "short": (a.run("sh", "-c", COUNT_SCRIPT.format(n=10, d=0.1, code=0)).job_uuid, 10, 0),
        "mid": (a.run("sh", "-c", COUNT_SCRIPT.format(n=20, d=0.15, code=3)).job_uuid, 20, 3),
        "long": (a.run("sh", "-c", COUNT_SCRIPT.format(n=30, d=0.2, code=5)).job_uuid, 30, 5),
    }
    time.sleep(0.5)
    a.kill9()
    # jobs keep running with no agent at all; the short one finishes while it is down
    time.sleep(1.5)
    a.start()
    try:
        for name, (uuid, n, code) in jobs.items():
            st = a.wait(uuid, timeout=30)
            assert (st.status, st.exit_code) == ("COMPLETED" if code == 0 else "FAILED", code), name
            assert a.output(uuid).decode().split() == expected_lines(n), name
            assert st.start_time and st.end_time
    finally:
        a.stop()


def test_finished_logs_survive_restart(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    st, _ = a.run_to_end("sh", "-c", "echo persisted; exit 4")
    a.stop()
    a.start()
    try:
        assert a.output(st.uuid) == b"persisted\n"
        assert (a.status(st.uuid).status, a.status(st.uuid).exit_code) == ("FAILED", 4)
    finally:
        a.stop()


def test_scheduled_job_runs_on_time_across_restart(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    when = timefmt.now() + timedelta(seconds=3)
    r = a.run(
        "sh",
        "-c",
        "echo secret=$TOKEN; date +%s",
        schedule=timefmt.fmt(when),
        secret_environment={"TOKEN": "tok-123456"},
    )
    assert r.status == "SCHEDULED" and r.scheduled_time
    # the secret is not on disk in clear while the job waits
    for root, _, files in os.walk(fresh_state):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert b"tok-123456" not in fh.read(), f
    a.kill9()
    a.start()
    try:
        st = a.wait(r.job_uuid, timeout=30)
        assert st.status == "COMPLETED"
        out = a.output(r.job_uuid).decode().split()
        assert out[0] == "secret=***"
        started = int(out[1])
        assert started >= int(when.timestamp()) - 1
        assert timefmt.parse(st.start_time) >= when - timedelta(seconds=1)
    finally:
        a.stop()


def test_cancel_scheduled_job(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    try:
        r = a.run(
            "sh",
            "-c",
            "echo should-not-run",
            schedule=timefmt.fmt(timefmt.now() + timedelta(seconds=2)),
        )
        c = a.jobs.CancelJob(pb.CancelJobRequest(uuid=r.job_uuid))
        assert c.status == "CANCELED"
        time.sleep(3)
        st = a.status(r.job_uuid)
        assert st.status == "CANCELED"
        assert a.output(r.job_uuid) == b""
    finally:
        a.stop()
    a.start()
    try:
        assert a.status(r.job_uuid).status == "CANCELED"  # and it stays canceled
    finally:
        a.stop()


def test_job_records_on_disk_hold_no_secret_values(fresh_state: str) -> None:
    a = Agent(fresh_state).start()
    try:
        st, out = a.run_to_end(
            "sh",
            "-c",
            "echo $PASSWORD; echo $PASSWORD | rev",
            secret_environment={"PASSWORD": "p4ssw0rd-xyz"},
        )
        assert out.decode().split() == ["***", "zyx-dr0wss4p"]
        assert dict(st.secret_environment) == {"PASSWORD": "***"}
        with open(os.path.join(fresh_state, "jobs", st.uuid, "job.json")) as f:
            rec = json.load(f)
        assert "p4ssw0rd-xyz" not in json.dumps(rec)
        assert rec["spec"]["secret_names"] == ["PASSWORD"]
    finally:
        a.stop()
    with open(a.log_path, "rb") as f:
        assert b"p4ssw0rd-xyz" not in f.read()
