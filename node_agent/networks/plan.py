"""Pure planning for job networks: names, address pools, hosts files, decided without side effects.

Everything here is a function of its arguments, so unit tests cover the rules exactly:
which names and CIDRs are accepted, which interface names a network and a job get (always
within the kernel's 15-character limit, whatever the network is called), which address a
job receives (never the network, gateway or broadcast address, never one already held),
and what a network's hosts file says. `node_agent.networks.host` applies the results.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from node_agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument

IFNAMSIZ = 15  # usable characters of a Linux interface name
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
BRIDGE = "bridge"
ISOLATED = "isolated"
NONE = "none"
BUILTIN_NAMES = frozenset({BRIDGE, ISOLATED, NONE})
RESERVED_NAMES = BUILTIN_NAMES | {"host", "default"}
MIN_PREFIX, MAX_PREFIX = 8, 29
HOSTNAME_OK = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

# kinds of network: how jobs on it may talk
KIND_BRIDGE = "bridge"  # peers reach each other, outbound through NAT
KIND_ISOLATED = "isolated"  # outbound through NAT only, no peer traffic
KIND_USER = "user"  # peers reach each other, nothing else


@dataclass(frozen=True)
class Network:
    name: str
    cidr: str
    bridge: str
    kind: str  # KIND_*

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        """The host's address on the bridge: the first usable address."""
        return str(self.net.network_address + 1)

    @property
    def builtin(self) -> bool:
        return self.kind != KIND_USER

    @property
    def nat(self) -> bool:
        return self.kind in (KIND_BRIDGE, KIND_ISOLATED)

    @property
    def peers(self) -> bool:
        return self.kind != KIND_ISOLATED


@dataclass(frozen=True)
class Allocation:
    """What one job holds on one network."""

    uuid: str
    address: str  # without prefix
    veth: str  # host end of its veth pair
    hostname: str  # the job's host name (its name, made a DNS label)
    name: str = ""  # the job's name as given, if it is a usable host name too


@dataclass(frozen=True)
class NetState:
    """Everything persisted: definitions, assignments, and each pool's next-try cursor."""

    networks: Mapping[str, Network] = field(default_factory=dict)
    allocations: Mapping[str, Mapping[str, Allocation]] = field(default_factory=dict)
    cursors: Mapping[str, int] = field(default_factory=dict)

    def held(self, name: str) -> Mapping[str, Allocation]:
        return self.allocations.get(name, {})

    def find(self, uuid: str) -> tuple[str, Allocation] | None:
        for name, allocs in self.allocations.items():
            if uuid in allocs:
                return name, allocs[uuid]
        return None


# -- names ---------------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def bridge_name(node_id: str, network: str, taken: Iterable[str] = ()) -> str:
    """`jb-` + 10 hex digits (13 characters), unique among `taken`; salted with the node id so
    two agents on one host (tests, several nodes in one kernel) never share a bridge."""
    used = set(taken)
    for attempt in range(1000):
        name = "jb-" + _digest(node_id, network, str(attempt))[:10]
        if name not in used:
            return name
    raise FailedPrecondition("no free bridge name")  # pragma: no cover - 2^40 names


def veth_name(uuid: str, taken: Iterable[str] = ()) -> str:
    """`jv` + 12 hex digits of the job's UUID hash (14 characters), unique among `taken`."""
    used = set(taken)
    for attempt in range(1000):
        name = "jv" + _digest(uuid, str(attempt))[:12]
        if name not in used:
            return name
    raise FailedPrecondition("no free interface name")  # pragma: no cover


def table_name(node_id: str) -> str:
    """This agent's nftables table (one per agent, so agents on one host don't collide)."""
    return "joblet_" + _digest(node_id)[:10]


def check_name(name: str) -> None:
    if not name:
        raise InvalidArgument("network name is empty")
    if name in RESERVED_NAMES:
        raise InvalidArgument(
            f"network name {name!r} is reserved (built-in networks: bridge, isolated, none)"
        )
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"network name {name!r} is not valid: use 1-31 lowercase letters, digits and "
            "'-', starting with a letter or digit"
        )


# -- CIDRs ---------------------------------------------------------------------------------


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    text = cidr.strip()
    if not text:
        raise InvalidArgument("network CIDR is empty (e.g. 10.20.0.0/24)")
    if "/" not in text:
        raise InvalidArgument(f"CIDR {cidr!r} has no prefix length (e.g. 10.20.0.0/24)")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise InvalidArgument(f"CIDR {cidr!r} is not a valid network: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidArgument(f"CIDR {cidr!r}: only IPv4 networks are supported")
    if str(net.network_address) != text.split("/")[0]:
        raise InvalidArgument(
            f"CIDR {cidr!r} has host bits set: the network is {net.with_prefixlen}"
        )
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise InvalidArgument(
            f"CIDR {cidr!r}: the prefix length must be between /{MIN_PREFIX} and /{MAX_PREFIX}"
        )
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_reserved:
        raise InvalidArgument(f"CIDR {cidr!r} is a special-purpose range, not usable for jobs")
    if net.overlaps(ipaddress.IPv4Network("0.0.0.0/8")):
        raise InvalidArgument(f"CIDR {cidr!r} overlaps 0.0.0.0/8, which is not routable")
    return net


def check_overlap(
    net: ipaddress.IPv4Network,
    networks: Iterable[Network],
    host_prefixes: Iterable[tuple[ipaddress.IPv4Network, str]],
) -> None:
    """Refuse a CIDR that overlaps another network of ours or anything the host routes
    (`host_prefixes`: (prefix, where) pairs, our own bridges left out by the caller)."""
    for other in networks:
        if net.overlaps(other.net):
            raise InvalidArgument(
                f"CIDR {net.with_prefixlen} overlaps network {other.name!r} ({other.cidr})"
            )
    for prefix, where in host_prefixes:
        if prefix.prefixlen == 0:
            continue  # the default route overlaps everything
        if net.overlaps(prefix):
            raise InvalidArgument(
                f"CIDR {net.with_prefixlen} overlaps {prefix.with_prefixlen} of the host ({where})"
            )


def pick_free_cidr(
    candidates: Iterable[str],
    networks: Iterable[Network],
    host_prefixes: Iterable[tuple[ipaddress.IPv4Network, str]],
) -> str:
    nets, prefixes = list(networks), list(host_prefixes)
    for c in candidates:
        try:
            check_overlap(ipaddress.IPv4Network(c), nets, prefixes)
        except InvalidArgument:
            continue
        return c
    raise FailedPrecondition("no free address range for a built-in network; give one by flag")


# -- state transitions ---------------------------------------------------------------------


def add_network(state: NetState, network: Network) -> NetState:
    if network.name in state.networks:
        raise AlreadyExists(f"network {network.name!r} already exists")
    return replace(
        state,
        networks={**state.networks, network.name: network},
        allocations={**state.allocations, network.name: {}},
        cursors={**state.cursors, network.name: 0},
    )


def remove_network(state: NetState, name: str) -> NetState:
    held = state.held(name)
    if held:
        raise FailedPrecondition(
            f"network {name!r} is used by {len(held)} job(s): stop them first "
            f"({', '.join(sorted(held)[:5])})"
        )
    return NetState(
        networks={k: v for k, v in state.networks.items() if k != name},
        allocations={k: v for k, v in state.allocations.items() if k != name},
        cursors={k: v for k, v in state.cursors.items() if k != name},
    )


def allocate(
    state: NetState, name: str, uuid: str, hostname: str, job_name: str = ""
) -> tuple[NetState, Allocation]:
    """The next free address after the pool's cursor (so a just-freed address is not handed
    out again at once, while peers may still cache it), skipping the network, gateway and
    broadcast addresses. Idempotent per job: a job that already holds one keeps it."""
    if name not in state.networks:
        raise FailedPrecondition(f"network {name!r} does not exist on this node")
    found = state.find(uuid)
    if found is not None:
        return state, found[1]
    network = state.networks[name]
    net = network.net
    held = state.held(name)
    used = {int(ipaddress.IPv4Address(a.address)) for a in held.values()}
    first = int(net.network_address) + 2  # .0 network, .1 gateway
    last = int(net.broadcast_address) - 1
    size = last - first + 1
    start = state.cursors.get(name, 0) % size if size > 0 else 0
    for i in range(size):
        offset = (start + i) % size
        candidate = first + offset
        if candidate not in used:
            break
    else:
        raise FailedPrecondition(
            f"network {name!r} ({network.cidr}) has no free address: {len(held)} jobs use it"
        )
    veths = {a.veth for allocs in state.allocations.values() for a in allocs.values()}
    alloc = Allocation(
        uuid=uuid,
        address=str(ipaddress.IPv4Address(candidate)),
        veth=veth_name(uuid, veths),
        hostname=hostname,
        name=job_name if job_name != hostname and HOSTNAME_OK.match(job_name) else "",
    )
    new = replace(
        state,
        allocations={**state.allocations, name: {**held, uuid: alloc}},
        cursors={**state.cursors, name: offset + 1},
    )
    return new, alloc


def release(state: NetState, uuid: str) -> tuple[NetState, str | None]:
    """Free what the job holds; returns the network it was on (None if it held nothing)."""
    found = state.find(uuid)
    if found is None:
        return state, None
    name, _ = found
    held = {k: v for k, v in state.held(name).items() if k != uuid}
    return replace(state, allocations={**state.allocations, name: held}), name


def release_all_but(state: NetState, keep: set[str]) -> tuple[NetState, list[str]]:
    """Release every job not in `keep` (at agent start); returns the released UUIDs."""
    dropped: list[str] = []
    allocations: dict[str, Mapping[str, Allocation]] = {}
    for name, allocs in state.allocations.items():
        allocations[name] = {k: v for k, v in allocs.items() if k in keep}
        dropped += [k for k in allocs if k not in keep]
    return replace(state, allocations=allocations), dropped


# -- hosts file ----------------------------------------------------------------------------


def hosts_text(network: Network, allocations: Iterable[Allocation]) -> str:
    """The hosts file every job on the network sees as /etc/hosts: itself and its peers."""
    lines = [
        "# managed by joblet-agent: jobs on network " + network.name,
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    if network.peers:
        for a in sorted(allocations, key=lambda a: ipaddress.IPv4Address(a.address)):
            names = [a.hostname] + ([a.name] if a.name else [])
            lines.append(f"{a.address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


# -- serialisation -------------------------------------------------------------------------


def state_to_json(state: NetState) -> dict[str, object]:
    return {
        "version": 1,
        "networks": {
            n.name: {"cidr": n.cidr, "bridge": n.bridge, "kind": n.kind}
            for n in state.networks.values()
        },
        "allocations": {
            name: {
                a.uuid: {
                    "address": a.address,
                    "veth": a.veth,
                    "hostname": a.hostname,
                    "name": a.name,
                }
                for a in allocs.values()
            }
            for name, allocs in state.allocations.items()
        },
        "cursors": dict(state.cursors),
    }


def state_from_json(d: Mapping[str, object]) -> NetState:
    nets_raw = d.get("networks") or {}
    allocs_raw = d.get("allocations") or {}
    cursors_raw = d.get("cursors") or {}
    assert isinstance(nets_raw, dict) and isinstance(allocs_raw, dict)
    assert isinstance(cursors_raw, dict)
    networks = {
        name: Network(name, str(v["cidr"]), str(v["bridge"]), str(v["kind"]))
        for name, v in nets_raw.items()
    }
    allocations: dict[str, Mapping[str, Allocation]] = {name: {} for name in networks}
    for name, allocs in allocs_raw.items():
        if name in networks:
            allocations[name] = {
                uuid: Allocation(
                    uuid,
                    str(a["address"]),
                    str(a["veth"]),
                    str(a["hostname"]),
                    str(a.get("name", "")),
                )
                for uuid, a in allocs.items()
            }
    cursors = {k: int(v) for k, v in cursors_raw.items() if k in networks}
    return NetState(networks, allocations, cursors)
