"""Keeps this agent visible to the operator: its JobletNode and its heartbeat Lease.

One asyncio task per agent. Each beat it renews the Lease (creating it if someone deleted it),
then reads the JobletNode and patches it only if it no longer says what the agent would write
(creating it if deleted) — which also republishes networks/volumes/runtimes when the agent's
attachments report new names. The Lease goes first so the operator never sees a Ready node
without a heartbeat. The API server may be down for minutes: the task then backs off, says so
in the log once per attempt with the next retry time, and keeps going; the agent serves jobs
regardless, and nothing here can raise into the agent. ``stop()`` ends it promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from node_agent.registry.kube import KubeConflict, KubeError, KubeRejected, NodeApi
from node_agent.registry.node import (
    Backoff,
    NodeFacts,
    NodeInventory,
    lease_body,
    lease_name,
    lease_renewal,
    node_body,
    node_patch,
    ready_status,
)

log = logging.getLogger("joblet-agent.registry")

INVENTORY_KINDS = ("networks", "volumes", "runtimes")


@runtime_checkable
class Inventory(Protocol):
    """What an attachment implements to be listed on the JobletNode: the names of the
    networks, volumes or runtimes it currently has (polled every heartbeat)."""

    def names(self) -> list[str]: ...


def inventory_sources(attachments: Iterable[object]) -> dict[str, Inventory]:
    """The attachments named networks/volumes/runtimes that can list their names; the others
    contribute nothing (their list on the JobletNode stays empty)."""
    found: dict[str, Inventory] = {}
    for a in attachments:
        kind = getattr(a, "name", "")
        if kind in INVENTORY_KINDS and isinstance(a, Inventory):
            found[kind] = a
    return found


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Heartbeat:
    """``start()`` once the agent serves; ``await stop()`` on shutdown."""

    def __init__(
        self,
        api: NodeApi,
        facts: NodeFacts,
        sources: Mapping[str, Inventory] | None = None,
        interval: float = 10.0,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._api = api
        self._facts = facts
        self._sources = dict(sources or {})
        self._interval = interval
        self._backoff = backoff or Backoff(first=min(interval, 1.0), limit=max(interval * 6, 30.0))
        self._clock = clock
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._status_written = False
        self._names: dict[str, list[str]] = {}
        self.beats = 0

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="joblet-heartbeat")
        return self._task

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("heartbeat did not stop within %.0fs; cancelled", timeout)
        await self._api.close()

    async def _run(self) -> None:
        failures = 0
        lease = lease_name(self._facts.name)
        log.info(
            "registering JobletNode %s (address %s, Lease joblet-system/%s, every %.1fs)",
            self._facts.name,
            self._facts.address,
            lease,
            self._interval,
        )
        while not self._stopping.is_set():
            try:
                await self.beat()
            except KubeError as e:
                failures += 1
                delay = self._backoff.after(failures)
                hint = " (check the agent's RBAC)" if e.code in (401, 403) else ""
                log.warning(
                    "heartbeat of %s failed (%d in a row): %s%s; retrying in %.1fs",
                    self._facts.name,
                    failures,
                    e.message,
                    hint,
                    delay,
                )
            except Exception:
                failures += 1
                delay = self._backoff.after(failures)
                log.exception(
                    "heartbeat of %s failed unexpectedly; retrying in %.1fs", lease, delay
                )
            else:
                if failures:
                    log.info("heartbeat of %s restored after %d failures", lease, failures)
                failures = 0
                delay = self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        log.info("heartbeat of %s stopped", self._facts.name)

    async def beat(self) -> None:
        """One heartbeat: renew the Lease, then make the JobletNode current."""
        now = self._clock()
        await self._renew(now)
        facts = replace(self._facts, inventory=self._inventory())
        existing = await self._api.get_node(facts.name)
        if existing is None:
            try:
                existing = await self._api.create_node(node_body(facts))
                log.info("created JobletNode %s", facts.name)
            except KubeConflict:
                existing = await self._api.get_node(facts.name)
                if existing is None:
                    raise KubeRejected("JobletNode vanished while being created") from None
            self._status_written = False
        patch = node_patch(existing, facts)
        if patch is not None:
            existing = await self._api.patch_node(facts.name, patch)
            log.info("updated JobletNode %s: %s", facts.name, ", ".join(sorted(patch)))
            self._status_written = False
        if not self._status_written:
            await self._api.patch_node_status(facts.name, ready_status(existing, now))
            self._status_written = True
        self.beats += 1

    async def _renew(self, now: datetime) -> None:
        name = lease_name(self._facts.name)
        try:
            await self._api.patch_lease(name, lease_renewal(self._facts.name, now))
        except KubeRejected as e:
            if e.code != 404:
                raise
            try:
                await self._api.create_lease(lease_body(self._facts.name, now))
                log.info("created Lease joblet-system/%s", name)
            except KubeConflict:
                await self._api.patch_lease(name, lease_renewal(self._facts.name, now))

    def _inventory(self) -> NodeInventory:
        for kind, source in self._sources.items():
            try:
                self._names[kind] = [str(n) for n in source.names()]
            except Exception:
                log.exception("listing %s for the JobletNode failed; keeping the last list", kind)
        return NodeInventory.of(
            self._names.get("networks", ()),
            self._names.get("volumes", ()),
            self._names.get("runtimes", ()),
        )
