"""The local demo: one agent on loopback, jobs run through the `joblet` CLI as a user types
them, showing isolation, limits, logs, secrets and a stop. Everything lives in a temp dir
and is removed at the end (or kept with --keep)."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import textwrap

from joblet.api import joblet_pb2 as pb
from joblet.cli.main import main as joblet
from tests.support.agent import Agent


def step(title: str, *argv: str) -> int:
    print(f"\n\033[1m== {title}\033[0m\n$ joblet {shlex.join(argv)}", flush=True)
    code = joblet(list(argv))
    sys.stdout.flush()
    print(f"(exit {code})", flush=True)
    return code


def run(keep: bool = False) -> int:
    if os.geteuid() != 0:
        print("the demo starts a real agent, which needs root (namespaces, cgroups, mounts)")
        return 1
    tmp = tempfile.mkdtemp(prefix="joblet-demo-")
    agent = Agent(os.path.join(tmp, "state"), ("--stop-grace", "2")).start()
    cfg = os.path.join(tmp, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"version: 1\ndefault: local\nnodes:\n  local:\n    address: {agent.target}\n")
    c = ["--config", cfg]
    print(f"agent listening on {agent.target}, state in {tmp}/state")
    failures = 0
    try:
        script = textwrap.dedent(
            """
            echo "I am PID $$ on host $(hostname), uid $(id -u)"
            echo "processes I can see: $(ls /proc | grep -c '^[0-9]')"
            grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
            touch /usr/x 2>&1 | sed 's/^/writing \\/usr: /'
            """
        )
        failures += (
            step(
                "an isolated job",
                *c,
                "job",
                "run",
                "--follow",
                "--name",
                "demo",
                "--",
                "sh",
                "-c",
                script,
            )
            != 0
        )
        hog = "b = bytearray(300 * 1024 * 1024); print('allocated')"
        step(
            "a job over its 64 MB memory limit",
            *c,
            "job",
            "run",
            "--follow",
            "--max-memory",
            "64",
            "--",
            "python3",
            "-c",
            hog,
        )
        step(
            "a secret is masked in the output",
            *c,
            "job",
            "run",
            "--follow",
            "-s",
            "API_TOKEN=s3cr3t-t0ken",
            "--",
            "sh",
            "-c",
            "echo token is $API_TOKEN",
        )
        loop = (
            "import time, os\n"
            "t = time.monotonic()\n"
            "while time.monotonic() - t < 2: pass\n"
            "c = os.times(); print(f'cpu used in 2 s wall: {c.user + c.system:.2f} s')"
        )
        step(
            "a job limited to 25% of one core",
            *c,
            "job",
            "run",
            "--follow",
            "--max-cpu",
            "25",
            "--",
            "python3",
            "-c",
            loop,
        )
        step("a long job, stopped", *c, "job", "run", "--name", "sleeper", "--", "sleep", "300")
        uuid = next(j.uuid for j in _jobs(agent) if j.name == "sleeper")
        failures += step("stop it", *c, "job", "stop", uuid) != 0
        failures += step("what happened", *c, "job", "list") != 0
    finally:
        if keep:
            print(
                f"\nagent left running (pid {agent.proc.pid if agent.proc else '?'}): "
                f"joblet --config {cfg} job list"
            )
        else:
            agent.destroy()
    return 1 if failures else 0


def _jobs(agent: Agent) -> list[pb.Job]:
    return list(agent.jobs.ListJobs(pb.EmptyRequest()).jobs)
