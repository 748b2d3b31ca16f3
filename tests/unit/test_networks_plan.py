"""Network planning without a host: names, CIDR rules, address pools, hosts files, rules text,
and the manager's persistence (with `apply=False`, nothing touches the host)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path

import pytest

from node_agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from node_agent.jobs.model import JobRecord, JobSpec, Status
from node_agent.networks import plan, rules
from node_agent.networks.manager import NetworkManager, NetworkSettings
from node_agent.networks.plan import KIND_BRIDGE, KIND_ISOLATED, KIND_USER, NetState, Network


def net(name: str, cidr: str, kind: str = KIND_USER) -> Network:
    return Network(name, cidr, plan.bridge_name("node", name), kind)


def state_with(*networks: Network) -> NetState:
    s = NetState()
    for n in networks:
        s = plan.add_network(s, n)
    return s


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "x" * 31, "net-1", "0abc", "a-very-long-network-name-of-31c"]
)
def test_bridge_names_fit_ifnamsiz_whatever_the_network_name(name: str) -> None:
    b = plan.bridge_name("node-id", name)
    assert len(b) <= plan.IFNAMSIZ and b.startswith("jb-")
    assert plan.bridge_name("node-id", name) == b  # stable
    assert plan.bridge_name("other-node", name) != b  # salted per agent


def test_bridge_and_veth_names_avoid_taken_ones() -> None:
    b = plan.bridge_name("n", "x")
    assert plan.bridge_name("n", "x", {b}) != b
    v = plan.veth_name("uuid-1")
    assert len(v) <= plan.IFNAMSIZ and v.startswith("jv")
    assert plan.veth_name("uuid-1", {v}) != v
    assert len({plan.veth_name(f"u{i}") for i in range(2000)}) == 2000


@pytest.mark.parametrize("name", ["ok", "a1-b2", "9", "x" * 31])
def test_good_names(name: str) -> None:
    plan.check_name(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("Upper", "not valid"),
        ("under_score", "not valid"),
        ("-x", "not valid"),
        ("x" * 32, "not valid"),
        ("a b", "not valid"),
        ("bridge", "reserved"),
        ("isolated", "reserved"),
        ("none", "reserved"),
        ("host", "reserved"),
    ],
)
def test_bad_names(name: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        plan.check_name(name)


# -- CIDRs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "fragment"),
    [
        ("", "empty"),
        ("10.1.0.0", "no prefix length"),
        ("nonsense/24", "not a valid network"),
        ("10.1.0.1/24", "host bits set: the network is 10.1.0.0/24"),
        ("fd00::/64", "only IPv4"),
        ("10.1.0.0/30", "between /8 and /29"),
        ("10.0.0.0/7", "between /8 and /29"),
        ("127.0.0.0/8", "special-purpose"),
        ("224.0.0.0/8", "special-purpose"),
        ("169.254.0.0/16", "special-purpose"),
        ("240.0.0.0/8", "special-purpose"),
        ("0.0.0.0/8", "special-purpose|not routable"),
    ],
)
def test_bad_cidrs(cidr: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        plan.parse_cidr(cidr)


def test_good_cidrs() -> None:
    assert plan.parse_cidr(" 10.20.0.0/24 ").with_prefixlen == "10.20.0.0/24"
    assert plan.parse_cidr("172.16.0.0/12").prefixlen == 12
    assert plan.parse_cidr("192.168.5.0/29").prefixlen == 29


def test_overlaps_with_networks_and_host() -> None:
    nets = [net("a", "10.1.0.0/16")]
    host = [
        (ipaddress.IPv4Network("0.0.0.0/0"), "route via eth0"),
        (ipaddress.IPv4Network("192.168.1.0/24"), "address on eth0"),
    ]
    with pytest.raises(InvalidArgument, match="overlaps network 'a'"):
        plan.check_overlap(ipaddress.IPv4Network("10.1.2.0/24"), nets, host)
    with pytest.raises(InvalidArgument, match="overlaps network 'a'"):
        plan.check_overlap(ipaddress.IPv4Network("10.0.0.0/8"), nets, host)
    with pytest.raises(InvalidArgument, match=r"192.168.1.0/24 of the host \(address on eth0\)"):
        plan.check_overlap(ipaddress.IPv4Network("192.168.0.0/16"), nets, host)
    plan.check_overlap(ipaddress.IPv4Network("10.2.0.0/16"), nets, host)  # default route ignored


def test_pick_free_cidr_skips_taken_ranges() -> None:
    nets = [net("bridge", "10.88.0.0/16", KIND_BRIDGE)]
    host = [(ipaddress.IPv4Network("10.89.0.0/24"), "address on x")]
    got = plan.pick_free_cidr(["10.88.0.0/16", "10.89.0.0/16", "10.90.0.0/16"], nets, host)
    assert got == "10.90.0.0/16"
    with pytest.raises(FailedPrecondition):
        plan.pick_free_cidr(["10.88.0.0/16"], nets, host)


# -- address pools ---------------------------------------------------------------------------


def test_allocation_skips_network_gateway_and_broadcast_and_never_repeats() -> None:
    s = state_with(net("t", "10.5.0.0/29"))  # .0 net, .1 gateway, .2-.6 jobs, .7 broadcast
    got = []
    for i in range(5):
        s, a = plan.allocate(s, "t", f"job-{i}", f"h{i}")
        got.append(a.address)
    assert got == [f"10.5.0.{i}" for i in range(2, 7)]
    with pytest.raises(FailedPrecondition, match="no free address"):
        plan.allocate(s, "t", "job-x", "hx")
    s, freed = plan.release(s, "job-2")
    assert freed == "t"
    s, a = plan.allocate(s, "t", "job-y", "hy")
    assert a.address == "10.5.0.4"  # the one freed: returned to the pool


def test_allocation_rotates_before_reusing_and_is_idempotent() -> None:
    s = state_with(net("t", "10.5.0.0/24"))
    s, a1 = plan.allocate(s, "t", "j1", "h")
    s, _ = plan.release(s, "j1")
    s, a2 = plan.allocate(s, "t", "j2", "h")
    assert a1.address == "10.5.0.2" and a2.address == "10.5.0.3"  # not the just-freed one
    s2, again = plan.allocate(s, "t", "j2", "h")
    assert again == a2 and s2 == s


def test_many_jobs_get_distinct_addresses_and_veths() -> None:
    s = state_with(net("t", "10.6.0.0/22"))
    allocs = []
    for i in range(1000):
        s, a = plan.allocate(s, "t", f"job-{i}", f"h{i}")
        allocs.append(a)
    assert len({a.address for a in allocs}) == 1000
    assert len({a.veth for a in allocs}) == 1000
    assert all(len(a.veth) <= plan.IFNAMSIZ for a in allocs)
    s, dropped = plan.release_all_but(s, {f"job-{i}" for i in range(10)})
    assert len(dropped) == 990 and len(s.held("t")) == 10


def test_allocate_on_unknown_network() -> None:
    with pytest.raises(FailedPrecondition, match="does not exist"):
        plan.allocate(NetState(), "nope", "j", "h")


def test_remove_refused_while_held() -> None:
    s = state_with(net("t", "10.5.0.0/24"))
    s, _ = plan.allocate(s, "t", "j1", "h")
    with pytest.raises(FailedPrecondition, match="used by 1 job"):
        plan.remove_network(s, "t")
    s, _ = plan.release(s, "j1")
    s = plan.remove_network(s, "t")
    assert "t" not in s.networks and "t" not in s.allocations
    with pytest.raises(AlreadyExists):
        plan.add_network(state_with(net("t", "10.5.0.0/24")), net("t", "10.7.0.0/24"))


def test_state_round_trips_through_json() -> None:
    s = state_with(net("t", "10.5.0.0/24"), net("bridge", "10.88.0.0/16", KIND_BRIDGE))
    s, _ = plan.allocate(s, "t", "j1", "server", "Server_1")
    s, _ = plan.allocate(s, "bridge", "j2", "other", "other")
    back = plan.state_from_json(json.loads(json.dumps(plan.state_to_json(s))))
    assert back == s


# -- hosts file ------------------------------------------------------------------------------


def test_hosts_file_lists_peers_by_name() -> None:
    n = net("t", "10.5.0.0/24")
    s = state_with(n)
    s, _ = plan.allocate(s, "t", "j1", "web", "web")
    s, _ = plan.allocate(s, "t", "j2", "db-main", "DB.main")  # not a host name: label only
    s, _ = plan.allocate(s, "t", "j3", "cache", "Cache")
    text = plan.hosts_text(n, s.held("t").values())
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.5.0.2\tweb" in lines
    assert "10.5.0.3\tdb-main" in lines
    assert "10.5.0.4\tcache Cache" in lines


def test_isolated_hosts_file_names_no_peers() -> None:
    n = net("isolated", "10.89.0.0/16", KIND_ISOLATED)
    s = state_with(n)
    s, _ = plan.allocate(s, "isolated", "j1", "web")
    assert "web" not in plan.hosts_text(n, s.held("isolated").values())


# -- rules -----------------------------------------------------------------------------------


def test_ruleset_follows_the_set_of_networks() -> None:
    b = net("bridge", "10.88.0.0/16", KIND_BRIDGE)
    i = net("isolated", "10.89.0.0/16", KIND_ISOLATED)
    u = net("talk", "10.210.1.0/24")
    text = rules.ruleset("joblet_x", [b, i, u])
    assert text.startswith("table inet joblet_x\ndelete table inet joblet_x\n")
    assert f'iifname "{b.bridge}" oifname "{b.bridge}" accept' in text
    assert f'iifname "{u.bridge}" oifname "{u.bridge}" accept' in text
    assert f'iifname "{i.bridge}" oifname "{i.bridge}" drop' in text
    assert f'ip saddr 10.88.0.0/16 oifname != "{b.bridge}" masquerade' in text
    assert f'ip saddr 10.89.0.0/16 oifname != "{i.bridge}" masquerade' in text
    assert "10.210.1.0/24" not in text  # user networks are never NAT'd out
    nat_out = [line for line in text.splitlines() if "oifname !=" in line and "accept" in line]
    assert len(nat_out) == 1 and u.bridge not in nat_out[0].split("oifname")[0]
    assert "hook input" in text and "policy accept" in text
    # removing a network removes every mention of it
    assert u.bridge not in rules.ruleset("joblet_x", [b, i])
    assert rules.ruleset("joblet_x", []) == rules.delete_script("joblet_x")


def test_ruleset_is_deterministic() -> None:
    nets = [net(f"n{i}", f"10.{100 + i}.0.0/24") for i in range(5)]
    assert rules.ruleset("t", nets) == rules.ruleset("t", list(reversed(nets)))


# -- the manager, on disk only ---------------------------------------------------------------


def manager(tmp_path: Path, **kw: str) -> NetworkManager:
    settings = NetworkSettings(state_dir=str(tmp_path), node_id="node-1", **kw)
    return NetworkManager(settings, apply=False)


def spec(uuid: str, network: str = "", name: str = "") -> JobSpec:
    return JobSpec(uuid=uuid, name=name, command="true", args=(), network=network)


def test_manager_persists_definitions_and_allocations(tmp_path: Path) -> None:
    async def go() -> None:
        m = manager(tmp_path)
        await m.recover([])
        assert {n.name for n in m.list()} == {"bridge", "isolated"}
        await m.create("talk", "10.210.1.0/24")
        c = await m.acquire(spec("j1", "talk", "server"))
        assert c.network is not None and c.network.address == "10.210.1.2/24"
        assert c.network.gateway == ""  # user networks have no way out
        assert c.mounts[0].target == "/etc/hosts"
        with open(c.mounts[0].source) as f:
            assert "10.210.1.2\tserver" in f.read()
        d = await m.acquire(spec("j2"))  # "" = the default network
        assert d.network is not None and d.network.name == "bridge" and d.network.gateway
        assert (await m.acquire(spec("j3", "none"))).network is None

        again = manager(tmp_path)  # a restarted agent
        assert {i.name: i.job_count for i in again.list()} == {
            "bridge": 1,
            "isolated": 0,
            "talk": 1,
        }
        running = JobRecord(spec("j1", "talk"), Status.RUNNING, created_at="")
        await again.recover([running])  # j2 ended while the agent was away
        assert {i.name: i.job_count for i in again.list()}["bridge"] == 0
        with pytest.raises(FailedPrecondition, match="used by 1 job"):
            await again.remove("talk")
        await again.release("j1")
        await again.release("j1")  # idempotent
        await again.remove("talk")
        assert "talk" not in {i.name for i in again.list()}

    asyncio.run(go())


def test_manager_checks(tmp_path: Path) -> None:
    async def go() -> None:
        m = manager(tmp_path, bridge_cidr="10.50.0.0/16")
        await m.recover([])
        assert {i.name: i.cidr for i in m.list()}["bridge"] == "10.50.0.0/16"
        m.check(spec("a"))
        m.check(spec("a", "none"))
        with pytest.raises(NotFound, match="network 'nope' does not exist"):
            m.check(spec("a", "nope"))
        with pytest.raises(InvalidArgument, match="overlaps network 'bridge'"):
            await m.create("x", "10.50.1.0/24")
        with pytest.raises(FailedPrecondition, match="built in"):
            await m.remove("bridge")
        with pytest.raises(NotFound):
            await m.remove("nope")

    asyncio.run(go())


def test_default_network_flag(tmp_path: Path) -> None:
    async def go() -> None:
        m = manager(tmp_path, default_network="none")
        await m.recover([])
        assert (await m.acquire(spec("a"))).network is None

    asyncio.run(go())
