"""Node health: whether each JobletNode's agent is alive, written as its Ready condition.

Agents renew the Lease ``joblet-system/joblet-node-<node>`` every 10 s; a node whose Lease has
not moved for longer than the grace (``--node-grace``, default 40 s) is marked Ready=False with
reason HeartbeatLapsed, and Ready=True (AgentReady) again as soon as it renews. Only Ready
nodes get jobs, so this is what stops the scheduler sending work to a dead host.

Clock skew: a renewTime is written by the agent's clock. The operator trusts it only the first
time it sees a Lease (after its own start, clamped to "now" if it lies in the future); after
that it credits a heartbeat at the moment it sees renewTime *change*, on its own clock — the
way kube-controller-manager treats node Leases. An agent whose clock is off by minutes is
therefore neither kept alive nor declared dead by its clock.

Leases reach the timer through a Kopf index (a watch, no polling of the API server; Kopf fills
indexes before handlers run). The timer patches status only when Ready or its reason changes.
The Lease watch needs joblet-system in the operator's namespaces (or cluster-wide).

Used by the operator's main module by import (handlers register on import); its startup sets
``memo.node_grace_s`` from ``--node-grace`` (or call ``configure(grace=...)``). Standalone:
``JOBLET_NODE_GRACE=3 kopf run -A --standalone operator/joblet_operator/nodes.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import kopf

GROUP = "joblet.io"
VERSION = "v1alpha1"
NODES = "jobletnodes"
LEASE_NAMESPACE = "joblet-system"
LEASE_PREFIX = "joblet-node-"
READY = "Ready"
AGENT_READY = "AgentReady"
HEARTBEAT_LAPSED = "HeartbeatLapsed"
DEFAULT_GRACE_S = 40.0


@dataclass(frozen=True)
class NodeHealthSettings:
    grace: float = DEFAULT_GRACE_S

    @property
    def check_interval(self) -> float:
        """How often each node is checked: every second (an in-memory comparison, no API
        request), or a quarter of a grace shorter than 4 s."""
        return min(1.0, max(0.25, self.grace / 4))


def settings_from_env(env: Mapping[str, str] = os.environ) -> NodeHealthSettings:
    text = env.get("JOBLET_NODE_GRACE", "")
    grace = float(text) if text else DEFAULT_GRACE_S
    if grace <= 0:
        raise ValueError("JOBLET_NODE_GRACE must be positive")
    return NodeHealthSettings(grace=grace)


SETTINGS = settings_from_env()


def configure(grace: float) -> None:
    """Sets the grace (``--node-grace``); ``memo.node_grace_s`` set at operator startup
    overrides it. The check interval is fixed when this module is imported (from
    JOBLET_NODE_GRACE); it only matters for graces below 4 s."""
    global SETTINGS
    if grace <= 0:
        raise ValueError("node grace must be positive")
    SETTINGS = NodeHealthSettings(grace=grace)


# --- pure decisions -------------------------------------------------------------------------


class Readiness(NamedTuple):
    ready: bool
    reason: str
    message: str


def node_readiness(lease_renew_time: datetime | None, now: datetime, grace: float) -> Readiness:
    """Ready while the last heartbeat is at most ``grace`` seconds old (exactly at the grace
    still counts as alive, as a Lease is held until renewTime + duration has passed)."""
    if lease_renew_time is None:
        return Readiness(False, HEARTBEAT_LAPSED, "no heartbeat Lease renewal seen")
    age = (now - lease_renew_time).total_seconds()
    if age < 0:
        return Readiness(
            True, AGENT_READY, f"heartbeat renewed {-age:.0f}s in the future (clock skew)"
        )
    if age <= grace:
        return Readiness(True, AGENT_READY, f"heartbeat renewed {age:.0f}s ago")
    return Readiness(False, HEARTBEAT_LAPSED, f"no heartbeat for {age:.1f}s (grace {grace:g}s)")


def parse_time(text: object) -> datetime | None:
    """A Kubernetes (Micro)Time string, or None if absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Sighting:
    """What the operator knows of one Lease: its renewTime as written, and the time (operator
    clock) at which that renewal is credited."""

    renew_time: str
    credited: datetime | None


def sight(previous: Sighting | None, renew_time: object, now: datetime) -> Sighting:
    """Credits a heartbeat: at first sight by the Lease's own timestamp (no later than now);
    afterwards at ``now`` whenever the renewTime changed, otherwise as before."""
    text = renew_time if isinstance(renew_time, str) else ""
    if previous is None:
        stamp = parse_time(text)
        return Sighting(text, None if stamp is None else min(stamp, now))
    if text and text != previous.renew_time:
        return Sighting(text, now)
    return previous


def latest(times: Iterable[datetime | None]) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def ready_status_patch(
    status: Mapping[str, Any],
    readiness: Readiness,
    now: datetime,
    generation: int,
    heartbeat: datetime | None,
) -> dict[str, Any] | None:
    """The status merge patch that records ``readiness``, or None when the Ready condition
    already has that status and reason (a message that only updates the age is not worth a
    write per node per check)."""
    conditions = [dict(c) for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    current = next((c for c in conditions if c.get("type") == READY), None)
    want = "True" if readiness.ready else "False"
    if current is not None and (current.get("status"), current.get("reason")) == (
        want,
        readiness.reason,
    ):
        return None
    since = format_time(now)
    if current is not None and current.get("status") == want and current.get("lastTransitionTime"):
        since = str(current["lastTransitionTime"])
    ready = {
        "type": READY,
        "status": want,
        "reason": readiness.reason,
        "message": readiness.message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    patch: dict[str, Any] = {
        "conditions": [*(c for c in conditions if c.get("type") != READY), ready]
    }
    if heartbeat is not None:
        patch["lastHeartbeatTime"] = format_time(heartbeat)
    return patch


# --- Kopf handlers --------------------------------------------------------------------------

TIMER_ID = "node-health"


class _QuietChecks(logging.Filter):
    """Kopf logs every successful timer run at INFO: a line per node per second. The checks
    that change something log their own line; the others are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != f"Timer {TIMER_ID!r} succeeded."


logging.getLogger("kopf.objects").addFilter(_QuietChecks())

_SIGHTINGS: dict[str, Sighting] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def is_node_lease(name: str, namespace: str | None, **_: Any) -> bool:
    return namespace == LEASE_NAMESPACE and name.startswith(LEASE_PREFIX)


@kopf.index("coordination.k8s.io", "v1", "leases", when=is_node_lease)
def node_heartbeats(name: str, spec: kopf.Spec, **_: Any) -> dict[str, Sighting]:
    """Node name → its Lease sighting, updated on every watch event of the Lease."""
    node = name[len(LEASE_PREFIX) :]
    seen = sight(_SIGHTINGS.get(node), spec.get("renewTime"), _now())
    _SIGHTINGS[node] = seen
    return {node: seen}


@kopf.timer(GROUP, VERSION, NODES, id=TIMER_ID, interval=SETTINGS.check_interval)
def check_node_health(
    *,
    name: str,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    logger: kopf.Logger,
    body: kopf.Body,
    memo: kopf.Memo,
    node_heartbeats: kopf.Index[str, Sighting] | None = None,
    **_: Any,
) -> None:
    """Every check interval, per JobletNode: is its Lease fresh? Writes Ready on a change.
    The grace is the operator's ``memo.node_grace_s`` (its --node-grace) when set."""
    grace = float(getattr(memo, "node_grace_s", None) or SETTINGS.grace)
    now = _now()
    sightings: Iterable[Sighting] = node_heartbeats.get(name, []) if node_heartbeats else []
    heartbeat = latest(s.credited for s in sightings)
    readiness = node_readiness(heartbeat, now, grace)
    change = ready_status_patch(status, readiness, now, int(meta.get("generation") or 0), heartbeat)
    if change is None:
        return
    patch.status.update(change)
    logger.info("JobletNode %s Ready=%s: %s", name, readiness.ready, readiness.message)
    if readiness.ready:
        kopf.info(body, reason=readiness.reason, message=readiness.message)
    else:
        kopf.warn(body, reason=readiness.reason, message=readiness.message)
