"""Starting and stopping the control plane leaves nothing behind: no daemon, no directory, no
mount, whether it is stopped normally, interrupted (Ctrl-C) or its owner is killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from joblet.devcluster import ControlPlane, ControlPlaneState
from joblet.devcluster.binaries import locate_binaries
from joblet.devcluster.controlplane import sweep_stale
from joblet.devcluster.process import pid_alive

pytestmark = pytest.mark.cluster

_OWNER = """
import time
from joblet.devcluster import ControlPlane
state = ControlPlane().start()
print(state.to_json().replace("\\n", " "), flush=True)
time.sleep(600)
"""


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def _wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if pid_alive(p)]


def test_stop_leaves_no_process_dir_or_mount() -> None:
    cp = ControlPlane(binaries=locate_binaries())
    state = cp.start()
    pids = [d.pid for d in state.daemons]
    assert [d.name for d in state.daemons] == ["etcd", "kube-apiserver", "kube-controller-manager"]
    assert all(pid_alive(p) for p in pids)
    assert cp.kubectl("get", "--raw=/readyz").stdout.strip() == "ok"
    cp.stop()
    assert _wait_gone(pids, 1.0) == []
    assert not state.base_dir.exists()
    assert _mounts_under(state.base_dir) == []
    cp.stop()  # idempotent


def _start_owner() -> tuple[subprocess.Popen[str], ControlPlaneState]:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert owner.stdout is not None
    line = owner.stdout.readline()
    if not line:
        owner.wait(5)
        pytest.fail(f"owner process failed: {owner.stderr.read() if owner.stderr else ''}")
    raw = json.loads(line)
    return owner, ControlPlaneState.from_json(json.dumps(raw))


def test_interrupted_owner_stops_the_control_plane() -> None:
    owner, state = _start_owner()
    pids = [d.pid for d in state.daemons]
    assert all(pid_alive(p) for p in pids)
    owner.send_signal(signal.SIGINT)  # KeyboardInterrupt, as Ctrl-C on a pytest run
    owner.wait(timeout=60)
    assert _wait_gone(pids) == []
    assert not state.base_dir.exists()


def test_killed_owner_takes_daemons_along_and_dir_is_swept() -> None:
    owner, state = _start_owner()
    pids = [d.pid for d in state.daemons]
    owner.kill()  # SIGKILL: no Python cleanup can run
    owner.wait(timeout=30)
    assert _wait_gone(pids) == [], "daemons must die with their owner (parent-death signal)"
    assert state.base_dir.exists()
    assert state.base_dir in sweep_stale()
    assert not state.base_dir.exists()
