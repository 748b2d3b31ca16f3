"""``python -m joblet.devcluster up|down|status``: a control plane that outlives the command, for
people who want to poke at it with kubectl (``make cluster-up`` / ``make cluster-down``)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from joblet.devcluster.binaries import locate_binaries
from joblet.devcluster.controlplane import (
    STATE_FILE,
    ControlPlane,
    ControlPlaneConfig,
    ControlPlaneState,
    stop_state,
)


def state_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("JOBLET_DEVCLUSTER_DIR", Path(xdg) / "joblet" / "devcluster"))


def _load() -> ControlPlaneState | None:
    path = state_dir() / STATE_FILE
    if not path.exists():
        return None
    return ControlPlaneState.from_json(path.read_text())


def up() -> int:
    state = _load()
    if state is not None and all(d.alive() for d in state.daemons):
        print(f"# already running: {state.api_url}", file=sys.stderr)
    else:
        if state is not None:
            stop_state(state)
        base = state_dir()
        shutil.rmtree(base, ignore_errors=True)
        cp = ControlPlane(
            ControlPlaneConfig(detach=True, base_dir=base), locate_binaries(build=True)
        )
        state = cp.start()
        print(f"# control plane up: {state.api_url} (logs in {base / 'logs'})", file=sys.stderr)
    bin_dir = locate_binaries().bin_dir
    print(f"export KUBECONFIG={state.kubeconfig}")
    print(f"export PATH={bin_dir}:$PATH")
    return 0


def down() -> int:
    state = _load()
    if state is None:
        print("# no control plane running", file=sys.stderr)
        shutil.rmtree(state_dir(), ignore_errors=True)
        return 0
    stop_state(state)
    print(f"# stopped {state.api_url}", file=sys.stderr)
    return 0


def status() -> int:
    state = _load()
    if state is None:
        print("not running")
        return 1
    for d in state.daemons:
        print(f"{d.name:<24} pid {d.pid:<8} {'running' if d.alive() else 'DEAD'}")
    print(f"KUBECONFIG={state.kubeconfig}")
    return 0 if all(d.alive() for d in state.daemons) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m joblet.devcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    handlers = {"up": up, "down": down, "status": status}
    return handlers[args.command]()


if __name__ == "__main__":
    sys.exit(main())
