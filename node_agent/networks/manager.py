"""The node's networks: definitions and address assignments on disk, reconciled onto the host.

`NetworkManager` is the "networks" attachment of every job launch (an address and a veth
plan on the job's network, its hosts file bound over /etc/hosts) and the engine behind
the NetworkService. All state lives in one JSON file (`STATE/networks/state.json`,
replaced atomically on each change), so definitions and assignments survive an agent
restart; at start the agent releases what ended jobs held and re-creates any bridge or
rule that went missing. Planning is pure (`plan`, `rules`); `host` applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from node_agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from node_agent.isolation.plan import Mount, NetworkPlan, hostname_for
from node_agent.jobs.attachments import Contribution
from node_agent.jobs.model import JobRecord, JobSpec
from node_agent.networks import host, plan
from node_agent.networks.plan import (
    BRIDGE,
    ISOLATED,
    KIND_BRIDGE,
    KIND_ISOLATED,
    KIND_USER,
    NONE,
    NetState,
    Network,
)
from node_agent.sys.files import read_json, write_json

log = logging.getLogger(__name__)
T = TypeVar("T")
AUTO_CANDIDATES = tuple(f"10.{b}.0.0/16" for b in range(88, 128)) + tuple(
    f"172.{b}.0.0/16" for b in range(20, 32)
)


@dataclass(frozen=True)
class NetworkSettings:
    state_dir: str
    node_id: str
    default_network: str = BRIDGE
    bridge_cidr: str = ""  # "" = first free of AUTO_CANDIDATES, kept once chosen
    isolated_cidr: str = ""


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    cidr: str
    bridge: str
    job_count: int


class NetworkManager:
    name = "networks"

    def __init__(self, settings: NetworkSettings, *, apply: bool = True) -> None:
        self.settings = settings
        self.apply = apply  # False: plan and persist only (unit tests)
        self.dir = os.path.join(settings.state_dir, "networks")
        self.hosts_dir = os.path.join(self.dir, "hosts")
        self.path = os.path.join(self.dir, "state.json")
        self.table = plan.table_name(settings.node_id)
        os.makedirs(self.hosts_dir, mode=0o755, exist_ok=True)
        try:
            self.state = plan.state_from_json(read_json(self.path))
        except FileNotFoundError:
            self.state = NetState()
        self._lock = asyncio.Lock()

    # -- persistence ---------------------------------------------------------------------

    def _save(self) -> None:
        write_json(self.path, plan.state_to_json(self.state), 0o600)

    def _hosts_path(self, name: str) -> str:
        return os.path.join(self.hosts_dir, name)

    def _write_hosts(self, name: str) -> None:
        network = self.state.networks[name]
        host.write_in_place(
            self._hosts_path(name), plan.hosts_text(network, self.state.held(name).values())
        )

    # -- built-ins -----------------------------------------------------------------------

    def _host_prefixes(self) -> list[tuple[ipaddress.IPv4Network, str]]:
        if not self.apply:
            return []
        return host.host_prefixes(n.bridge for n in self.state.networks.values())

    def _with_builtins(self, state: NetState) -> NetState:
        wanted = (
            (BRIDGE, KIND_BRIDGE, self.settings.bridge_cidr),
            (ISOLATED, KIND_ISOLATED, self.settings.isolated_cidr),
        )
        prefixes: list[tuple[ipaddress.IPv4Network, str]] | None = None
        for name, kind, flag in wanted:
            current = state.networks.get(name)
            if current is not None and (not flag or flag == current.cidr):
                continue
            if current is not None:
                if state.held(name):
                    log.warning(
                        "network %s keeps %s: jobs still use it (flag asks for %s)",
                        name,
                        current.cidr,
                        flag,
                    )
                    continue
                state = plan.remove_network(state, name)
                if self.apply:
                    host.delete_link(current.bridge)
            if prefixes is None:
                prefixes = (
                    host.host_prefixes(n.bridge for n in state.networks.values())
                    if self.apply
                    else []
                )
            others = list(state.networks.values())
            if flag:
                net = plan.parse_cidr(flag)
                try:
                    plan.check_overlap(net, others, prefixes)
                except InvalidArgument as e:
                    raise InvalidArgument(f"--{name}-cidr: {e.message}") from None
                cidr = net.with_prefixlen
            else:
                cidr = plan.pick_free_cidr(AUTO_CANDIDATES, others, prefixes)
            bridge = plan.bridge_name(self.settings.node_id, name, (n.bridge for n in others))
            state = plan.add_network(state, Network(name, cidr, bridge, kind))
        return state

    # -- reconcile -----------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Bring the host to the planned state: bridges, rules, forwarding, hosts files."""
        networks = list(self.state.networks.values())
        if self.apply:
            for n in networks:
                host.ensure_bridge(n)
            host.apply_rules(self.table, networks)
            if any(n.nat for n in networks):
                host.enable_forwarding()
        for n in networks:
            self._write_hosts(n.name)

    async def _thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    # -- the attachment ------------------------------------------------------------------

    def effective(self, requested: str) -> str:
        return requested or self.settings.default_network

    def check(self, spec: JobSpec) -> None:
        name = self.effective(spec.network)
        if name != NONE and name not in self.state.networks:
            raise NotFound(f"network {name!r} does not exist on this node")

    async def acquire(self, spec: JobSpec) -> Contribution:
        name = self.effective(spec.network)
        if name == NONE:
            return Contribution()
        if name not in self.state.networks:
            raise NotFound(f"network {name!r} does not exist on this node")
        hostname = hostname_for(spec.name, spec.uuid)
        self.state, alloc = plan.allocate(self.state, name, spec.uuid, hostname, spec.name)
        self._save()
        self._write_hosts(name)
        network = self.state.networks[name]
        return Contribution(
            network=NetworkPlan(
                name=name,
                bridge=network.bridge,
                host_veth=alloc.veth,
                address=f"{alloc.address}/{network.net.prefixlen}",
                gateway=network.gateway if network.nat else "",
                peers=network.peers,
            ),
            mounts=(Mount("bind-ro", "/etc/hosts", source=self._hosts_path(name)),),
            env=(("JOBLET_NETWORK", name), ("JOBLET_IP", alloc.address)),
        )

    async def release(self, uuid: str) -> None:
        self.state, name = plan.release(self.state, uuid)
        if name is not None:
            self._save()
            with contextlib.suppress(OSError, KeyError):
                self._write_hosts(name)

    async def recover(self, active: list[JobRecord]) -> None:
        self.state, dropped = plan.release_all_but(self.state, {r.uuid for r in active})
        if dropped:
            log.info("released the addresses of %d jobs that ended", len(dropped))
        await self._thread(self._reconcile_all)

    def _reconcile_all(self) -> None:
        """Define missing built-ins (a free range needs a look at the host), then reconcile."""
        self.state = self._with_builtins(self.state)
        self._save()
        self._reconcile()

    # -- the service ---------------------------------------------------------------------

    def names(self) -> list[str]:
        """Networks of this node (built-ins too), for its JobletNode (the registry's Inventory)."""
        return sorted(self.state.networks)

    def list(self) -> list[NetworkInfo]:
        return [
            NetworkInfo(n.name, n.cidr, n.bridge, len(self.state.held(n.name)))
            for n in sorted(self.state.networks.values(), key=lambda n: (not n.builtin, n.name))
        ]

    async def create(self, name: str, cidr: str) -> Network:
        name = name.strip()
        plan.check_name(name)
        net = plan.parse_cidr(cidr)
        async with self._lock:
            if name in self.state.networks:
                raise AlreadyExists(f"network {name!r} already exists")
            prefixes = await self._thread(self._host_prefixes)
            plan.check_overlap(net, self.state.networks.values(), prefixes)
            bridge = plan.bridge_name(
                self.settings.node_id, name, (n.bridge for n in self.state.networks.values())
            )
            network = Network(name, net.with_prefixlen, bridge, KIND_USER)
            self.state = plan.add_network(self.state, network)
            self._save()
            try:
                self._write_hosts(name)
                if self.apply:
                    await self._thread(lambda: self._apply_added(network))
            except Exception:
                self.state = plan.remove_network(self.state, name)
                self._save()
                with contextlib.suppress(OSError):
                    os.unlink(self._hosts_path(name))
                if self.apply:
                    await self._thread(lambda: self._apply_removed(network))
                raise
            log.info("network %s created: %s on bridge %s", name, network.cidr, bridge)
            return network

    def _apply_added(self, network: Network) -> None:
        host.ensure_bridge(network)
        host.apply_rules(self.table, self.state.networks.values())

    def _apply_removed(self, network: Network) -> None:
        host.apply_rules(self.table, self.state.networks.values())
        host.delete_link(network.bridge)

    async def remove(self, name: str) -> Network:
        name = name.strip()
        if not name:
            raise InvalidArgument("network name is empty")
        async with self._lock:
            network = self.state.networks.get(name)
            if network is None:
                if name == NONE:
                    raise FailedPrecondition("network 'none' is built in and cannot be removed")
                raise NotFound(f"network {name!r} does not exist on this node")
            if network.builtin:
                raise FailedPrecondition(f"network {name!r} is built in and cannot be removed")
            self.state = plan.remove_network(self.state, name)  # refuses while jobs use it
            self._save()
            with contextlib.suppress(OSError):
                os.unlink(self._hosts_path(name))
            if self.apply:
                await self._thread(lambda: self._apply_removed(network))
            log.info("network %s removed (bridge %s)", name, network.bridge)
            return network

    def teardown(self) -> None:
        """Remove every bridge and rule of this agent (for tests and decommissioning)."""
        for n in self.state.networks.values():
            host.delete_link(n.bridge)
        host.delete_rules(self.table)
