"""Cgroup limits observed from inside real jobs: memory, pids, cpu quota, cpuset, stop."""

from __future__ import annotations

import time

from joblet.api import joblet_pb2 as pb
from tests.support.agent import Agent


def test_memory_hog_killed_and_reported(agent: Agent) -> None:
    st, out = agent.run_to_end(
        "python3", "-c", "b = bytearray(400 * 1024 * 1024); print('survived')", max_memory=48
    )
    assert st.status == "FAILED"
    assert b"survived" not in out
    assert "memory limit of 48 MB exceeded" in st.message


def test_fork_bomb_stopped_by_pids_max(agent: Agent) -> None:
    script = (
        "import os, time\n"
        "kids = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        kids += 1\n"
        "except OSError as e:\n"
        "    print('fork failed after', kids, e.strerror, flush=True)\n"
        "    os._exit(0)\n"
    )
    st, out = agent.run_to_end("python3", "-c", script)
    text = out.decode()
    assert "fork failed after" in text, text
    kids = int(text.split("after")[1].split()[0])
    assert kids < 1024  # the agent's default pids.max per job
    assert st.status == "COMPLETED"  # the job survived its own fork bomb and ended


def test_cpu_quota_observed(agent: Agent) -> None:
    script = (
        "import os, time\n"
        "t = time.monotonic()\n"
        "while time.monotonic() - t < 2.0: pass\n"
        "c = os.times()\n"
        "print(c.user + c.system)\n"
    )
    st, out = agent.run_to_end("python3", "-c", script, max_cpu=20)
    used = float(out.decode().strip())
    # 20% of one core over 2 s of wall time is 0.4 s of CPU; allow scheduler slack
    assert used < 0.8, used
    assert st.status == "COMPLETED"


def test_cpuset_pins_job(agent: Agent) -> None:
    _, out = agent.run_to_end("grep", "Cpus_allowed_list", "/proc/self/status", cpu_cores="0")
    assert out.decode().split()[-1] == "0"


def test_stop_reaches_every_process(agent: Agent) -> None:
    r = agent.run(
        "sh", "-c", "sleep 300 & sleep 300 & (sleep 300; echo never) & echo started; wait"
    )
    agent.wait_output(r.job_uuid, b"started")  # its children exist before the stop
    t = time.monotonic()
    resp = agent.jobs.StopJob(pb.StopJobRequest(uuid=r.job_uuid))
    assert resp.status == "STOPPED"
    assert time.monotonic() - t < 10
    out = agent.output(r.job_uuid)
    assert b"started" in out and b"never" not in out
    # nothing of the job is left on the host
    assert "sleep 300" not in open_proc_cmdlines()


def test_stop_lets_a_job_handle_sigterm(agent: Agent) -> None:
    r = agent.run("sh", "-c", "trap 'echo cleaning up; exit 7' TERM; echo ready; sleep 300 & wait")
    agent.wait_output(r.job_uuid, b"ready")  # the trap is installed before the stop
    resp = agent.jobs.StopJob(pb.StopJobRequest(uuid=r.job_uuid))
    assert (resp.status, resp.exit_code) == ("STOPPED", 7)
    assert b"cleaning up" in agent.output(r.job_uuid)


def open_proc_cmdlines() -> str:
    import os

    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return "\n".join(out)
