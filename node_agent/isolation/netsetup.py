"""Joining a job's network namespace to a host bridge (the network plan of a launch).

Two halves, run around one synchronisation point: `host_side` runs in the supervisor (in
the host's network namespace) once the job's namespace exists, creating the veth pair with
its job end (`eth0`) made directly inside the job's namespace and its host end attached to
the network's bridge and up; `job_side` runs in the job's process, still root, and
configures that end (address, link up, default route).

The messages are pyroute2's own rtnetlink message classes, sent over one plain netlink
socket with one request each. pyroute2's `IPRoute` would do the same through an asyncio
event loop set up per socket, which costs ~15 ms per side in a freshly forked process;
this path costs about one millisecond, and launch latency is what jobs wait for.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from node_agent.isolation.errors import IsolationError
from node_agent.isolation.plan import NetworkPlan

JOB_IFNAME = "eth0"
NLMSG_HEADER = struct.Struct("=IHHII")
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1


class NetworkSetupError(IsolationError):
    """The job's network could not be joined."""


class _Rtnl:
    """One rtnetlink socket: each request is sent with an ACK asked for and checked."""

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        self.sock.bind((0, 0))
        self.seq = 0

    def request(self, msg: Any, kind: int, flags: int = 0) -> None:
        self.seq += 1
        msg["header"]["type"] = kind
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, typ, _flags, seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
                if typ == NLMSG_ERROR and seq == self.seq:
                    (err,) = struct.unpack_from("=i", data, offset + NLMSG_HEADER.size)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                offset += max(length, NLMSG_HEADER.size)

    def close(self) -> None:
        self.sock.close()


def _veth(name: str, master: int, peer: str, pid: int) -> Any:
    msg = ifinfmsg()
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    peer_attrs = {"attrs": [("IFLA_IFNAME", peer), ("IFLA_NET_NS_PID", pid)]}
    msg["attrs"] = [
        ("IFLA_IFNAME", name),
        ("IFLA_MASTER", master),
        (
            "IFLA_LINKINFO",
            {
                "attrs": [
                    ("IFLA_INFO_KIND", "veth"),
                    ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer_attrs)]}),
                ]
            },
        ),
    ]
    return msg


def _isolate_port(index: int) -> Any:
    """IFLA_BRPORT_ISOLATED: the bridge forwards nothing between two isolated ports."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [
        (
            "IFLA_LINKINFO",
            {
                "attrs": [
                    ("IFLA_INFO_SLAVE_KIND", "bridge"),
                    ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_ISOLATED", 1)]}),
                ]
            },
        )
    ]
    return msg


def _link_up(index: int) -> Any:
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    return msg


def _address(index: int, iface: ipaddress.IPv4Interface) -> Any:
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    msg["prefixlen"] = iface.network.prefixlen
    msg["index"] = index
    ip = str(iface.ip)
    msg["attrs"] = [
        ("IFA_LOCAL", ip),
        ("IFA_ADDRESS", ip),
        ("IFA_BROADCAST", str(iface.network.broadcast_address)),
    ]
    return msg


def _default_route(index: int, gateway: str) -> Any:
    msg = rtmsg()
    msg["family"] = socket.AF_INET
    msg["dst_len"] = 0
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = RTPROT_BOOT
    msg["scope"] = RT_SCOPE_UNIVERSE
    msg["type"] = RTN_UNICAST
    msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
    return msg


def host_side(plan: NetworkPlan, pid: int) -> None:
    try:
        bridge = socket.if_nametoindex(plan.bridge)
    except OSError:
        raise NetworkSetupError(
            "network", f"network {plan.name!r}: bridge {plan.bridge} is missing"
        ) from None
    nl = _Rtnl()
    try:
        nl.request(
            _veth(plan.host_veth, bridge, JOB_IFNAME, pid),
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
        )
        if not plan.peers:
            nl.request(_isolate_port(socket.if_nametoindex(plan.host_veth)), RTM_NEWLINK)
    except OSError as e:
        raise NetworkSetupError(
            "network", f"network {plan.name!r}: veth {plan.host_veth}: {e.strerror or e}"
        ) from None
    finally:
        nl.close()


def job_side(plan: NetworkPlan) -> None:
    nl = _Rtnl()
    try:
        iface = ipaddress.IPv4Interface(plan.address)
        idx = socket.if_nametoindex(JOB_IFNAME)
        nl.request(_address(idx, iface), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)
        nl.request(_link_up(idx), RTM_NEWLINK)
        if plan.gateway:
            nl.request(_default_route(idx, plan.gateway), RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
    except (OSError, ValueError) as e:
        raise NetworkSetupError(
            "network", f"network {plan.name!r}: configuring {JOB_IFNAME}: {e}"
        ) from None
    finally:
        nl.close()


def warm() -> None:
    """Encode each message once in the fork server, so the per-class tables pyroute2 builds
    on first use are inherited by every supervisor and job instead of built in each."""
    iface = ipaddress.IPv4Interface("10.0.0.2/24")
    for msg in (
        _veth("x", 1, "y", 1),
        _isolate_port(1),
        _link_up(1),
        _address(1, iface),
        _default_route(1, "10.0.0.1"),
    ):
        msg.encode()
