"""Job networks for real: bridges, veths, namespaces, nftables, on this machine only.

All traffic stays on the host: between jobs, and to an "outside" network namespace the
tests create themselves (a veth pair with addresses of our choosing) standing in for the
world beyond the host. Everything created here is removed again, also on failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from joblet.cli.main import main as cli_main
from tests.support.agent import Agent

PORT = 7070
# user networks of these tests (the built-ins pick free /16s among 10.88-127 and 172.20-31)
TALK, OTHER, POOL, GONE, SAVED = (
    "10.210.1.0/24",
    "10.210.2.0/24",
    "10.210.3.0/27",
    "10.210.4.0/24",
    "10.210.5.0/24",
)
OUTSIDE_HOST, OUTSIDE_NS = "10.211.0.1", "10.211.0.2"

SERVER = r"""
import os, socket, sys
n = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", PORT))
s.listen(16)
print("IP", os.environ.get("JOBLET_IP", "?"), flush=True)
s.settimeout(60)
for _ in range(n):
    c, addr = s.accept()
    data = c.recv(200)
    c.sendall(b"pong:" + data)
    print("from", addr[0], data.decode(), flush=True)
    c.close()
""".replace("PORT", str(PORT))

CLIENT = r"""
import socket, sys, time
host, msg, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
err = None
for _ in range(tries):
    try:
        c = socket.create_connection((host, PORT), timeout=1.5)
        c.sendall(msg.encode())
        print("reply", c.recv(200).decode(), flush=True)
        sys.exit(0)
    except OSError as e:
        err = e
        time.sleep(0.2)
print("FAIL", type(err).__name__, err, flush=True)
sys.exit(3)
""".replace("PORT", str(PORT))


def nets(agent: Agent) -> pbg.NetworkServiceStub:
    agent.jobs  # noqa: B018 - opens the channel
    assert agent.channel is not None
    return pbg.NetworkServiceStub(agent.channel)


def listing(agent: Agent) -> dict[str, pb.Network]:
    return {n.name: n for n in nets(agent).ListNetworks(pb.EmptyRequest()).networks}


def create(agent: Agent, name: str, cidr: str) -> pb.CreateNetworkResponse:
    return nets(agent).CreateNetwork(pb.CreateNetworkRequest(name=name, cidr=cidr))


def remove(agent: Agent, name: str) -> pb.RemoveNetworkResponse:
    return nets(agent).RemoveNetwork(pb.RemoveNetworkRequest(name=name))


def first_line(agent: Agent, uuid_: str, prefix: bytes, timeout: float = 15.0) -> str:
    """Follow a job's log until a whole line starting with `prefix` appears."""
    buf = b""
    stream = agent.jobs.GetJobLogs(pb.GetJobLogsRequest(uuid=uuid_), timeout=timeout)
    try:
        for chunk in stream:
            buf += chunk.payload
            for line in buf.split(b"\n")[:-1]:
                if line.startswith(prefix):
                    return line.decode()
    finally:
        stream.cancel()
    raise AssertionError(f"no {prefix!r} line in {buf!r}")


def server_job(agent: Agent, network: str, name: str, n: int = 1) -> tuple[str, str]:
    r = agent.run("python3", "-c", SERVER, str(n), network=network, name=name)
    line = first_line(agent, r.job_uuid, b"IP ")
    return r.job_uuid, line.split()[1]


def client(agent: Agent, network: str, host: str, msg: str, tries: int = 1) -> tuple[int, str]:
    st, out = agent.run_to_end("python3", "-c", CLIENT, host, msg, str(tries), network=network)
    return st.exit_code, out.decode(errors="replace")


def ip_link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


@pytest.fixture
def cleanup_nets(agent: Agent) -> Iterator[list[str]]:
    """Networks a test creates; removed afterwards (after stopping the jobs that use them)."""
    names: list[str] = []
    yield names
    for job in agent.jobs.ListJobs(pb.EmptyRequest()).jobs:
        if job.status in ("RUNNING", "SCHEDULED", "INITIALIZING"):
            with contextlib.suppress(grpc.RpcError):
                agent.jobs.StopJob(pb.StopJobRequest(uuid=job.uuid))
    for name in names:
        with contextlib.suppress(grpc.RpcError):
            remove(agent, name)


@pytest.fixture
def outside() -> Iterator[str]:
    """A network namespace standing in for the world outside the host, joined to the host by a
    veth pair (host end OUTSIDE_HOST, namespace end OUTSIDE_NS); yields the namespace name."""
    tag = f"{os.getpid() % 100000}"
    ns, host_end, ns_end = f"jt-out-{tag}", f"jto-h{tag}", f"jto-n{tag}"

    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        sh("ip", "link", "set", ns_end, "netns", ns)
        sh("ip", "addr", "add", f"{OUTSIDE_HOST}/30", "dev", host_end)
        sh("ip", "link", "set", host_end, "up")
        sh("ip", "-n", ns, "addr", "add", f"{OUTSIDE_NS}/30", "dev", ns_end)
        sh("ip", "-n", ns, "link", "set", ns_end, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def outside_server(ns: str, n: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"IP")
    return proc


# -- peers on one user network -----------------------------------------------------------


def test_two_jobs_on_a_user_network_talk_tcp_by_address_and_by_name(
    agent: Agent, cleanup_nets: list[str]
) -> None:
    create(agent, "talk", TALK)
    cleanup_nets.append("talk")
    srv, srv_ip = server_job(agent, "talk", "talk-server", n=2)
    assert ipaddress.ip_address(srv_ip) in ipaddress.ip_network(TALK)
    code, out = client(agent, "talk", srv_ip, "by-address", tries=10)
    assert code == 0 and "reply pong:by-address" in out, out
    code, out = client(agent, "talk", "talk-server", "by-name", tries=10)
    assert code == 0 and "reply pong:by-name" in out, out
    st = agent.wait(srv)
    log = agent.output(srv).decode()
    assert st.status == "COMPLETED", log
    peers = [line.split()[1] for line in log.splitlines() if line.startswith("from")]
    assert len(peers) == 2 and all(
        ipaddress.ip_address(p) in ipaddress.ip_network(TALK) for p in peers
    )  # peers talk directly, no NAT between them


def test_jobs_on_other_networks_cannot_reach_a_user_network(
    agent: Agent, cleanup_nets: list[str]
) -> None:
    create(agent, "talk", TALK)
    create(agent, "other", OTHER)
    cleanup_nets += ["talk", "other"]
    srv, srv_ip = server_job(agent, "talk", "lonely-server", n=1)
    for network in ("other", "bridge", "isolated", "none"):
        code, out = client(agent, network, srv_ip, f"from-{network}")
        assert code == 3 and "FAIL" in out, (network, out)
    # nor by name: a job on another network does not even know the name
    code, out = client(agent, "other", "lonely-server", "by-name")
    assert code == 3 and "FAIL" in out
    # the server is still there and reachable from its own network
    code, out = client(agent, "talk", srv_ip, "peer", tries=5)
    assert code == 0, out
    agent.wait(srv)


def test_user_network_has_no_way_out_and_host_is_not_exposed(
    agent: Agent, cleanup_nets: list[str], outside: str
) -> None:
    create(agent, "talk", TALK)
    cleanup_nets.append("talk")
    # the host listens on every address; jobs must not reach any of them, gateway included
    host_srv = subprocess.Popen(
        [sys.executable, "-c", SERVER, "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert host_srv.stdout is not None and host_srv.stdout.readline().startswith(b"IP")
        bridge = listing(agent)["bridge"]
        gateway = str(ipaddress.ip_network(bridge.cidr).network_address + 1)
        talk_gw = str(ipaddress.ip_network(TALK).network_address + 1)
        for network, target in (
            ("bridge", gateway),
            ("bridge", OUTSIDE_HOST),  # another host interface's address
            ("isolated", OUTSIDE_HOST),
            ("talk", talk_gw),
            ("talk", OUTSIDE_NS),  # user networks reach nothing outside
        ):
            code, out = client(agent, network, target, "x")
            assert code == 3 and "FAIL" in out, (network, target, out)
        assert host_srv.poll() is None  # nobody got through to it
    finally:
        host_srv.kill()
        host_srv.wait()


# -- bridge and isolated: outbound NAT -----------------------------------------------------


def test_bridge_and_isolated_jobs_reach_outside_through_nat(agent: Agent, outside: str) -> None:
    srv = outside_server(outside, 2)
    try:
        code, out = client(agent, "bridge", OUTSIDE_NS, "from-bridge", tries=5)
        assert code == 0 and "reply pong:from-bridge" in out, out
        code, out = client(agent, "isolated", OUTSIDE_NS, "from-isolated", tries=5)
        assert code == 0 and "reply pong:from-isolated" in out, out
        assert srv.stdout is not None
        seen = [srv.stdout.readline().decode().split() for _ in range(2)]
    finally:
        srv.kill()
        srv.wait()
    # the outside sees the host's address on its link, never a job's own address
    assert [s[1] for s in seen] == [OUTSIDE_HOST, OUTSIDE_HOST], seen
    assert [s[2] for s in seen] == ["from-bridge", "from-isolated"]


def test_isolated_jobs_do_not_reach_each_other(agent: Agent) -> None:
    srv, srv_ip = server_job(agent, "isolated", "iso-server", n=1)
    code, out = client(agent, "isolated", srv_ip, "peer", tries=2)
    assert code == 3 and "FAIL" in out, out
    # while a `bridge` peer reaches a `bridge` server (decided: bridge jobs see each other)
    bsrv, bsrv_ip = server_job(agent, "bridge", "bridge-server", n=1)
    code, out = client(agent, "bridge", bsrv_ip, "peer", tries=10)
    assert code == 0, out
    agent.wait(bsrv)
    agent.jobs.StopJob(pb.StopJobRequest(uuid=srv))


# -- addresses ---------------------------------------------------------------------------------


def test_addresses_unique_across_concurrent_jobs_and_reused_after(
    agent: Agent, cleanup_nets: list[str]
) -> None:
    create(agent, "pool", POOL)  # /27: 29 job addresses
    cleanup_nets.append("pool")
    net = ipaddress.ip_network(POOL)

    def batch(n: int) -> list[str]:
        started = [
            agent.run("sh", "-c", "echo IP=$JOBLET_IP; sleep 1.5", network="pool").job_uuid
            for _ in range(n)
        ]
        assert listing(agent)["pool"].job_count == n
        ips = []
        for u in started:
            st = agent.wait(u)
            assert st.status == "COMPLETED", st
            ips.append(agent.output(u).decode().split("IP=")[1].split()[0])
        return ips

    first = batch(20)
    assert len(set(first)) == 20
    for ip in first:
        a = ipaddress.ip_address(ip)
        assert a in net and a not in (net.network_address, net.network_address + 1)
        assert a != net.broadcast_address
    deadline = time.monotonic() + 10
    while listing(agent)["pool"].job_count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listing(agent)["pool"].job_count == 0  # all returned to the pool
    second = batch(20)
    assert len(set(second)) == 20
    assert set(first) & set(second)  # 40 jobs on 29 addresses: freed ones came back


def test_full_pool_fails_the_job_clearly(agent: Agent, cleanup_nets: list[str]) -> None:
    create(agent, "tiny", "10.210.6.0/29")  # 5 job addresses
    cleanup_nets.append("tiny")
    held = [agent.run("sleep", "30", network="tiny").job_uuid for _ in range(5)]
    assert all(agent.status(u).status == "RUNNING" for u in held)
    st, _ = agent.run_to_end("true", network="tiny")
    assert st.status == "FAILED" and "has no free address" in st.message, st
    for u in held:
        agent.jobs.StopJob(pb.StopJobRequest(uuid=u))
    st, _ = agent.run_to_end("true", network="tiny")
    assert st.status == "COMPLETED"


# -- the service ------------------------------------------------------------------------------


def test_remove_refused_while_used_then_leaves_no_trace(
    agent: Agent, cleanup_nets: list[str]
) -> None:
    created = create(agent, "gone", GONE)
    cleanup_nets.append("gone")
    assert len(created.bridge) <= 15 and ip_link_exists(created.bridge)
    assert (
        created.bridge
        in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    )
    job = agent.run("sleep", "30", network="gone").job_uuid
    assert listing(agent)["gone"].job_count == 1
    with pytest.raises(grpc.RpcError) as e:
        remove(agent, "gone")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "used by 1 job" in (e.value.details() or "")
    assert ip_link_exists(created.bridge)
    agent.jobs.StopJob(pb.StopJobRequest(uuid=job))
    r = remove(agent, "gone")
    assert r.success
    assert "gone" not in listing(agent)
    assert not ip_link_exists(created.bridge)
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert created.bridge not in ruleset and GONE not in ruleset
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert created.bridge not in links
    with pytest.raises(grpc.RpcError) as e:
        agent.run("true", network="gone")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_long_names_still_give_short_bridge_names(agent: Agent, cleanup_nets: list[str]) -> None:
    name = "a-very-long-network-name-of-31c"
    assert len(name) == 31
    r = create(agent, name, "10.210.7.0/24")
    cleanup_nets.append(name)
    assert len(r.bridge) <= 15 and ip_link_exists(r.bridge)
    st, out = agent.run_to_end("sh", "-c", "echo $JOBLET_NETWORK", network=name)
    assert st.status == "COMPLETED" and out.decode().strip() == name


@pytest.mark.parametrize(
    ("name", "cidr", "code", "fragment"),
    [
        ("", "10.212.0.0/24", "INVALID_ARGUMENT", "network name is empty"),
        ("Bad_Name", "10.212.0.0/24", "INVALID_ARGUMENT", "is not valid"),
        ("x" * 32, "10.212.0.0/24", "INVALID_ARGUMENT", "is not valid"),
        ("-lead", "10.212.0.0/24", "INVALID_ARGUMENT", "is not valid"),
        ("bridge", "10.212.0.0/24", "INVALID_ARGUMENT", "reserved"),
        ("none", "10.212.0.0/24", "INVALID_ARGUMENT", "reserved"),
        ("n1", "", "INVALID_ARGUMENT", "CIDR is empty"),
        ("n1", "10.212.0.0", "INVALID_ARGUMENT", "no prefix length"),
        ("n1", "10.212.0.300/24", "INVALID_ARGUMENT", "not a valid network"),
        ("n1", "10.212.0.1/24", "INVALID_ARGUMENT", "host bits set"),
        ("n1", "fd00:1::/64", "INVALID_ARGUMENT", "only IPv4"),
        ("n1", "10.212.0.0/30", "INVALID_ARGUMENT", "between /8 and /29"),
        ("n1", "10.0.0.0/7", "INVALID_ARGUMENT", "between /8 and /29"),
        ("n1", "127.0.0.0/8", "INVALID_ARGUMENT", "special-purpose"),
        ("n1", "224.1.0.0/16", "INVALID_ARGUMENT", "special-purpose"),
        ("n1", "169.254.0.0/16", "INVALID_ARGUMENT", "special-purpose"),
    ],
)
def test_bad_names_and_cidrs_are_refused(
    agent: Agent, name: str, cidr: str, code: str, fragment: str
) -> None:
    before = listing(agent)
    with pytest.raises(grpc.RpcError) as e:
        create(agent, name, cidr)
    assert e.value.code().name == code
    assert fragment in (e.value.details() or ""), e.value.details()
    assert listing(agent).keys() == before.keys()


def test_overlaps_and_duplicates_are_refused(agent: Agent, cleanup_nets: list[str]) -> None:
    create(agent, "base", "10.213.0.0/16")
    cleanup_nets.append("base")
    bridge_cidr = listing(agent)["bridge"].cidr
    host_addr = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True
    ).stdout
    assert "127.0.0.1" in host_addr
    cases = [
        ("dup", "10.213.4.0/24", "overlaps network 'base'"),
        ("dup", "10.0.0.0/8", "overlaps network"),
        ("dup", bridge_cidr, "overlaps network 'bridge'"),
    ]
    for name, cidr, fragment in cases:
        with pytest.raises(grpc.RpcError) as e:
            create(agent, name, cidr)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fragment in (e.value.details() or ""), e.value.details()
    # the host's own routes: a veth pair we create stands for them
    try:
        subprocess.run(
            ["ip", "link", "add", "jt-dummy0", "type", "veth", "peer", "name", "jt-dummy1"],
            check=True,
        )
        subprocess.run(["ip", "addr", "add", "10.214.9.1/24", "dev", "jt-dummy0"], check=True)
        subprocess.run(["ip", "link", "set", "jt-dummy0", "up"], check=True)
        with pytest.raises(grpc.RpcError) as e:
            create(agent, "dup", "10.214.0.0/16")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "of the host" in (e.value.details() or "") and "jt-dummy0" in (
            e.value.details() or ""
        )
    finally:
        subprocess.run(["ip", "link", "del", "jt-dummy0"], capture_output=True)
    with pytest.raises(grpc.RpcError) as e:
        create(agent, "base", "10.215.0.0/24")
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for name, code in (
        ("bridge", "FAILED_PRECONDITION"),
        ("isolated", "FAILED_PRECONDITION"),
        ("none", "FAILED_PRECONDITION"),
        ("never-made", "NOT_FOUND"),
        ("", "INVALID_ARGUMENT"),
    ):
        with pytest.raises(grpc.RpcError) as e:
            remove(agent, name)
        assert e.value.code().name == code, name


def test_unknown_network_refused_before_anything_is_stored(agent: Agent) -> None:
    n = len(agent.jobs.ListJobs(pb.EmptyRequest()).jobs)
    with pytest.raises(grpc.RpcError) as e:
        agent.run("true", network="no-such-net")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(agent.jobs.ListJobs(pb.EmptyRequest()).jobs) == n


def test_cli_network_verbs(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"version: 1\ndefault: local\nnodes:\n  local:\n    address: {agent.target}\n")
    cli = ["--config", str(cfg)]
    assert cli_main([*cli, "network", "create", "cli-net", "--cidr", "10.216.0.0/24"]) == 0
    out = capsys.readouterr().out
    assert "cli-net" in out and "10.216.0.0/24" in out
    assert cli_main([*cli, "--json", "network", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = listed if isinstance(listed, list) else listed.get("networks", [])
    assert any(r["name"] == "cli-net" for r in rows), listed
    assert cli_main([*cli, "network", "create", "cli-net", "--cidr", "10.216.1.0/24"]) != 0
    assert "ALREADY_EXISTS" in capsys.readouterr().err
    assert cli_main([*cli, "network", "remove", "cli-net"]) == 0
    capsys.readouterr()
    assert cli_main([*cli, "network", "list"]) == 0
    assert "cli-net" not in capsys.readouterr().out


# -- restart ---------------------------------------------------------------------------------


def test_networks_and_addresses_survive_an_agent_restart(fresh_state: str) -> None:
    a = Agent(fresh_state, ("--stop-grace", "2")).start()
    try:
        create(a, "saved", SAVED)
        srv, srv_ip = server_job(a, "saved", "kept-server", n=2)
        bridge = listing(a)["saved"].bridge
        a.kill9()
        # while the agent is away its rules vanish: the restarted agent puts them back
        from node_agent.networks.plan import table_name

        with open(os.path.join(fresh_state, "node_id")) as f:
            table = table_name(f.read().strip())
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
        a.start()
        after = listing(a)
        assert after["saved"].cidr == SAVED and after["saved"].bridge == bridge
        assert after["saved"].job_count == 1
        assert (
            table
            in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        )
        assert a.status(srv).status == "RUNNING"
        # the running job kept its address and its name: a new peer reaches it both ways
        code, out = client(a, "saved", srv_ip, "after-restart", tries=10)
        assert code == 0 and "reply pong:after-restart" in out, out
        r = a.run("sh", "-c", "echo IP=$JOBLET_IP; sleep 20", network="saved")
        new_ip = first_line(a, r.job_uuid, b"IP=").split("=")[1]
        assert new_ip != srv_ip and ipaddress.ip_address(new_ip) in ipaddress.ip_network(SAVED)
        code, out = client(a, "saved", "kept-server", "by-name", tries=10)
        assert code == 0, out
        assert a.wait(srv).status == "COMPLETED"
        a.jobs.StopJob(pb.StopJobRequest(uuid=r.job_uuid))
        # removal after a restart still removes everything
        assert listing(a)["saved"].job_count == 0
        remove(a, "saved")
        assert not ip_link_exists(bridge)
        a.kill9()  # and the removal too survives a restart
        a.start()
        assert "saved" not in listing(a) and not ip_link_exists(bridge)
    finally:
        a.stop()


def test_ended_jobs_release_addresses_across_a_restart(fresh_state: str) -> None:
    """A job that ends while the agent is down gives its address back when the agent returns."""
    a = Agent(fresh_state).start()
    try:
        create(a, "saved", SAVED)
        r = a.run("sleep", "1", network="saved")
        assert listing(a)["saved"].job_count == 1
        a.kill9()
        time.sleep(1.5)
        a.start()
        a.wait(r.job_uuid)
        assert listing(a)["saved"].job_count == 0
        with open(os.path.join(fresh_state, "networks", "state.json")) as f:
            state = json.load(f)
        assert state["allocations"]["saved"] == {}
        assert state["networks"]["saved"]["cidr"] == SAVED
    finally:
        a.stop()


def test_agents_on_one_host_keep_apart(fresh_state: str, agent: Agent) -> None:
    """A second agent on the same host picks its own bridges, pools and table."""
    b = Agent(fresh_state).start()
    try:
        mine, theirs = listing(agent), listing(b)
        for name in ("bridge", "isolated"):
            assert mine[name].bridge != theirs[name].bridge
            assert not ipaddress.ip_network(mine[name].cidr).overlaps(
                ipaddress.ip_network(theirs[name].cidr)
            )
        st, out = b.run_to_end("sh", "-c", "echo $JOBLET_IP")
        assert st.status == "COMPLETED"
        assert ipaddress.ip_address(out.decode().strip()) in ipaddress.ip_network(
            theirs["bridge"].cidr
        )
    finally:
        b.stop()


def test_hosts_file_follows_peers_that_come_and_go(agent: Agent, cleanup_nets: list[str]) -> None:
    """A running job sees a peer started after it, by name (its /etc/hosts is updated in
    place), and stops seeing it once that peer has ended."""
    create(agent, "names", "10.210.8.0/24")
    cleanup_nets.append("names")
    watcher = agent.run(
        "sh",
        "-c",
        "for i in $(seq 100); do getent hosts late-peer && break; sleep 0.1; done; "
        "echo SEEN; for i in $(seq 100); do getent hosts late-peer >/dev/null || break; "
        "sleep 0.1; done; echo GONE $i",
        network="names",
        name="watcher",
    ).job_uuid
    peer = agent.run("sleep", "1", network="names", name="late-peer").job_uuid
    assert agent.wait(peer).status == "COMPLETED"
    st = agent.wait(watcher)
    out = agent.output(watcher).decode()
    assert st.status == "COMPLETED", out
    lines = out.split()
    seen_ip = lines[0]
    assert ipaddress.ip_address(seen_ip) in ipaddress.ip_network("10.210.8.0/24")
    assert lines[1] == "late-peer" and lines[2] == "SEEN" and lines[3] == "GONE"
    assert int(lines[4]) < 100  # the name went away, the loop did not just run out
