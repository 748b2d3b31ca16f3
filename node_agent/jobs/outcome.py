"""Pure mapping from what the supervisor recorded (`exit.json`) to the job's final state."""

from __future__ import annotations

import signal
from typing import Any

from node_agent.jobs.model import Status


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def interpret(exit_info: dict[str, Any]) -> tuple[Status, int, str]:
    """(status, exit_code, message). Signals map to 128+N as shells report them."""
    if exit_info.get("launch_error"):
        return Status.FAILED, -1, f"could not start: {exit_info['launch_error']}"
    sig = exit_info.get("signal")
    code = exit_info.get("exit_code")
    exit_code = int(code) if code is not None else 128 + int(sig or 0)
    if exit_info.get("stopped"):
        return Status.STOPPED, exit_code, "stopped on request"
    if exit_info.get("oom_killed") and exit_code != 0:
        mb = exit_info.get("memory_limit_mb") or 0
        limit = f" of {mb} MB" if mb else ""
        return Status.FAILED, exit_code, f"killed: memory limit{limit} exceeded (OOM)"
    if code is not None:
        if exit_code == 0:
            return Status.COMPLETED, 0, ""
        return Status.FAILED, exit_code, f"exited with code {exit_code}"
    return Status.FAILED, exit_code, f"killed by {signal_name(int(sig or 0))}"
