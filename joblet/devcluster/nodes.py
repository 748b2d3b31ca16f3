"""Simulated "nodes" on one machine: each is a network namespace joined by a veth pair to a bridge
on the host, with its own address in a private /24, so that several agents run as separate hosts
(the operator's e2e tests need that). Only namespaces and links created here are touched; the
subnet is picked so it overlaps nothing already routed. ``destroy()`` removes all of it, killing
whatever still runs inside the namespaces."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class NodeSetupError(RuntimeError):
    """An ``ip`` command failed; carries its stderr."""


@dataclass(frozen=True)
class SimNode:
    """One simulated host: its namespace, its address, the host end of its veth."""

    name: str
    netns: str
    address: str
    host_veth: str

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside this node's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass(frozen=True)
class SimNetwork:
    """The bridge, its /24 and the host's address on it (``gateway``), and the nodes."""

    bridge: str
    subnet: str
    gateway: str
    nodes: tuple[SimNode, ...]


def _ip(*args: str, check: bool = True) -> str:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise NodeSetupError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets: list[ipaddress.IPv4Network] = []
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if isinstance(net, ipaddress.IPv4Network):
                nets.append(net)
    for link in json.loads(_ip("-j", "-4", "addr") or "[]"):
        for a in link.get("addr_info", []):
            net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            if isinstance(net, ipaddress.IPv4Network):
                nets.append(net)
    return nets


def pick_subnet(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A free /24 inside 10.200.0.0/13 (private range) that overlaps no local route or address."""
    rng = rng or random.Random()
    used = [n for n in _used_networks() if n.prefixlen > 0]
    for _ in range(200):
        cand = ipaddress.IPv4Network(f"10.{rng.randint(200, 207)}.{rng.randint(0, 255)}.0/24")
        if not any(cand.overlaps(u) for u in used):
            return cand
    raise NodeSetupError("no free /24 found in 10.200.0.0/13")


class SimNodes:
    """Creates and destroys one bridge with N namespaced nodes."""

    def __init__(self, count: int, prefix: str = "jn") -> None:
        if not 1 <= count <= 200:
            raise ValueError("count must be between 1 and 200")
        self.count = count
        self.short = secrets.token_hex(3)
        self.prefix = prefix
        self.network: SimNetwork | None = None
        self._created_ns: list[str] = []
        self._created_links: list[str] = []
        self._mounted_netns_dir = False

    def create(self) -> SimNetwork:
        had_netns_mount = _is_mountpoint(NETNS_DIR)
        try:
            return self._create()
        finally:
            self._mounted_netns_dir = not had_netns_mount and _is_mountpoint(NETNS_DIR)

    def _create(self) -> SimNetwork:
        subnet = pick_subnet()
        hosts = list(subnet.hosts())
        gateway = str(hosts[0])
        bridge = f"{self.prefix}br-{self.short}"
        _ip("link", "add", bridge, "type", "bridge")
        self._created_links.append(bridge)
        _ip("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        nodes: list[SimNode] = []
        for i in range(self.count):
            ns = f"{self.prefix}-{self.short}-{i}"
            veth = f"{self.prefix}v-{self.short}-{i}"
            address = str(hosts[10 + i])
            _ip("netns", "add", ns)
            self._created_ns.append(ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._created_links.append(veth)
            _ip("link", "set", veth, "master", bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            nodes.append(SimNode(name=f"node-{i}", netns=ns, address=address, host_veth=veth))
        self.network = SimNetwork(
            bridge=bridge, subnet=str(subnet), gateway=gateway, nodes=tuple(nodes)
        )
        return self.network

    def destroy(self) -> None:
        """Kills processes left in the namespaces, deletes namespaces and links; idempotent."""
        for ns in self._created_ns:
            _kill_netns_pids(ns)
            _ip("netns", "del", ns, check=False)
        for link in reversed(self._created_links):
            if _ip("link", "show", link, check=False):
                _ip("link", "del", link, check=False)
        self._created_ns.clear()
        self._created_links.clear()
        self.network = None
        if self._mounted_netns_dir and NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
            subprocess.run(["umount", str(NETNS_DIR)], capture_output=True, check=False)
            self._mounted_netns_dir = False

    def __enter__(self) -> SimNetwork:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def _kill_netns_pids(ns: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and _ip("netns", "pids", ns, check=False).split():
            time.sleep(0.05)


def _is_mountpoint(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(path) for line in f)
    except OSError:
        return False


def list_netns() -> list[str]:
    """Names of the named network namespaces on this machine."""
    return [line.split()[0] for line in _ip("netns", "list", check=False).splitlines() if line]
