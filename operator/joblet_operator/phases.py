"""Pure rules for a Job's phase: what an agent status means for the custom resource, when to
retry, and how conditions change. No I/O here; `handlers/jobs.py` applies the results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FINAL_PHASES = frozenset({"Succeeded", "Failed", "Stopped"})
AGENT_FINAL = frozenset({"COMPLETED", "FAILED", "STOPPED", "CANCELED"})


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> list[dict[str, Any]]:
    """Standard condition update: lastTransitionTime moves only when the status flips."""
    out: list[dict[str, Any]] = []
    found = False
    want = "True" if status else "False"
    for c in conditions:
        if c.get("type") != ctype:
            out.append(dict(c))
            continue
        found = True
        changed = c.get("status") != want
        out.append(
            {
                "type": ctype,
                "status": want,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if changed else c.get("lastTransitionTime", now),
            }
        )
    if not found:
        out.append(
            {
                "type": ctype,
                "status": want,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        )
    return out


@dataclass(frozen=True)
class Outcome:
    """What an attempt's end means for the Job."""

    phase: str  # next phase: a final one, or "Pending" to retry
    reason: str
    message: str
    exit_code: int | None


def attempt_outcome(
    agent_status: str,
    exit_code: int,
    agent_message: str,
    *,
    attempts: int,
    backoff_limit: int,
    deadline_exceeded: bool = False,
    node_lost: bool = False,
) -> Outcome:
    if deadline_exceeded:
        return Outcome(
            "Failed",
            "DeadlineExceeded",
            "activeDeadlineSeconds exceeded; the job was stopped",
            exit_code,
        )
    if agent_status == "COMPLETED":
        return Outcome("Succeeded", "Completed", "exited with code 0", 0)
    if agent_status in ("STOPPED", "CANCELED"):
        return Outcome("Stopped", "Stopped", agent_message or "stopped on its node", exit_code)
    reason = "NodeLost" if node_lost else "Error"
    message = agent_message or (
        f"exited with code {exit_code}" if not node_lost else "its node was lost"
    )
    if node_lost:
        message = "its node stopped sending heartbeats"
    if attempts <= backoff_limit:
        return Outcome(
            "Pending", reason, f"attempt {attempts} failed: {message}; retrying", exit_code
        )
    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
    return Outcome(
        "Failed", "BackoffLimitExceeded" if attempts > 1 else reason, message + suffix, exit_code
    )
