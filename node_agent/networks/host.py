"""The one module that changes the host's network: bridges through pyroute2, the packet
filter through `nft -f -`, IPv4 forwarding, and the per-network hosts files.

Every function here is idempotent (create if missing, delete if present), so the agent
can reconcile towards its planned state at any time, a restart included.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from node_agent.errors import FailedPrecondition
from node_agent.networks import rules
from node_agent.networks.plan import Network
from node_agent.sys.run import CommandError, run

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


@contextlib.contextmanager
def _ipr() -> Iterator[IPRoute]:
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def ensure_bridge(network: Network) -> None:
    """The network's bridge exists, holds the gateway address and is up."""
    net = network.net
    try:
        with _ipr() as ipr:
            idx = _index(ipr, network.bridge)
            if idx is None:
                with contextlib.suppress(NetlinkError):  # created concurrently: fine
                    ipr.link("add", ifname=network.bridge, kind="bridge", br_stp_state=0)
                idx = _index(ipr, network.bridge)
                if idx is None:
                    raise FailedPrecondition(f"bridge {network.bridge} could not be created")
            have = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=idx, family=socket.AF_INET)
            }
            _no_ipv6(network.bridge)  # jobs get IPv4 only; no link-local path to the host
            if (network.gateway, net.prefixlen) not in have:
                ipr.addr("add", index=idx, address=network.gateway, prefixlen=net.prefixlen)
            ipr.link("set", index=idx, state="up")
    except NetlinkError as e:
        raise FailedPrecondition(
            f"network {network.name!r}: bridge {network.bridge}: {e.args[-1]}"
        ) from None


def _no_ipv6(ifname: str) -> None:
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f,
    ):
        f.write("1\n")


def delete_link(name: str) -> None:
    with _ipr() as ipr:
        idx = _index(ipr, name)
        if idx is not None:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=idx)


def link_exists(name: str) -> bool:
    with _ipr() as ipr:
        return _index(ipr, name) is not None


def apply_rules(table: str, networks: Iterable[Network]) -> None:
    script = rules.ruleset(table, networks)
    try:
        run(["nft", "-f", "-"], input=script.encode())
    except CommandError as e:
        raise FailedPrecondition(f"packet filter could not be applied: {e}") from None


def delete_rules(table: str) -> None:
    with contextlib.suppress(CommandError):
        run(["nft", "-f", "-"], input=rules.delete_script(table).encode())


def enable_forwarding() -> None:
    with open(IP_FORWARD) as f:
        if f.read().strip() == "1":
            return
    with open(IP_FORWARD, "w") as f:
        f.write("1\n")


def host_prefixes(exclude: Iterable[str]) -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 prefixes the host routes or holds, outside the interfaces in `exclude`."""
    skip = set(exclude)
    out: list[tuple[ipaddress.IPv4Network, str]] = []
    with _ipr() as ipr:
        names = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}
        for addr in ipr.get_addr(family=socket.AF_INET):
            dev = names.get(int(addr["index"]), "?")
            if dev in skip:
                continue
            net = ipaddress.IPv4Network(
                f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False
            )
            out.append((net, f"address on {dev}"))
        for route in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = route.get_attr("RTA_DST")
            if dst is None:
                continue
            dev = names.get(int(route.get_attr("RTA_OIF") or 0), "?")
            if dev in skip:
                continue
            out.append(
                (
                    ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False),
                    f"route via {dev}",
                )
            )
    return out


def write_in_place(path: str, text: str) -> None:
    """Rewrite a hosts file keeping its inode: jobs have it bind-mounted, and a bind mount
    pins the inode, so replacing the file by rename would leave them the old one."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
