"""What a job can see and do: its own PID namespace, hostname, root, user, capabilities."""

from __future__ import annotations

import ipaddress
import os
import socket

from joblet.api import joblet_pb2 as pb
from tests.support.agent import Agent


def sh(agent: Agent, script: str, **kw: object) -> tuple[int, str, str]:
    st, out = agent.run_to_end("sh", "-c", script, **kw)
    return st.exit_code, st.status, out.decode(errors="replace")


def test_job_is_pid_1(agent: Agent) -> None:
    code, status, out = sh(agent, "echo $$")
    assert (code, status, out.strip()) == (0, "COMPLETED", "1")


def test_own_hostname(agent: Agent) -> None:
    _, _, out = sh(agent, "hostname", name="Report Builder")
    assert out.strip() == "report-builder"
    assert out.strip() != socket.gethostname()


def test_host_processes_invisible(agent: Agent) -> None:
    _, _, out = sh(agent, "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '")
    pids = [int(p) for p in out.split()]
    assert pids and max(pids) < 20, pids  # only the job's own few processes
    assert str(os.getpid()) not in out.split() or os.getpid() < 20


def test_cannot_write_host_system_dirs(agent: Agent) -> None:
    _, _, out = sh(agent, "touch /usr/joblet-test 2>&1; echo rc=$?; touch /etc/x 2>&1; echo rc=$?")
    assert "Read-only file system" in out
    assert "rc=0" not in out
    assert not os.path.exists("/usr/joblet-test")


def test_cannot_create_files_in_root(agent: Agent) -> None:
    _, _, out = sh(agent, "mkdir /evil 2>&1; echo rc=$?")
    assert "rc=0" not in out


def test_host_files_outside_mounts_invisible(agent: Agent) -> None:
    _, _, out = sh(agent, "ls / ; ls /root 2>&1; ls /var/lib 2>&1; echo end")
    listing = out.split()
    assert "root" not in listing and "var" not in listing and "home" not in listing
    assert "work" in listing and "tmp" in listing


def test_unprivileged_user_no_capabilities(agent: Agent) -> None:
    _, _, out = sh(
        agent,
        "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
    )
    lines = out.split("\n")
    assert lines[0] != "0" and lines[1] != "0"
    fields = dict(line.split(":\t") for line in lines[2:] if ":\t" in line)
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapPrm"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


def test_seccomp_denies_dangerous_calls(agent: Agent) -> None:
    script = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.unshare(0x10000000)\n"  # CLONE_NEWUSER, allowed to unprivileged users otherwise
        "print('unshare', r, os.strerror(ctypes.get_errno()))\n"
        "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\n"
        "print('mount', r, os.strerror(ctypes.get_errno()))\n"
    )
    _, out = agent.run_to_end("python3", "-c", script)
    text = out.decode()
    assert "unshare -1 Operation not permitted" in text
    assert "mount -1 Operation not permitted" in text


def test_only_loopback_network(agent: Agent) -> None:
    _, _, out = sh(agent, "ls /sys/class/net 2>/dev/null || cat /proc/net/dev", network="none")
    assert "lo" in out and "eth0" not in out
    _, _, out = sh(
        agent,
        "python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        "c=socket.create_connection(s.getsockname()); print('loopback ok')\"",
        network="none",
    )
    assert "loopback ok" in out


def test_default_job_is_on_the_bridge_network(agent: Agent) -> None:
    """No network asked for: the job gets eth0 with an address from the `bridge` pool."""
    nets = {n.name: n for n in pb_networks(agent)}
    pool = ipaddress.ip_network(nets["bridge"].cidr)
    code, _, out = sh(agent, "cat /proc/net/dev; cat /proc/net/fib_trie; echo IP=$JOBLET_IP")
    assert code == 0
    assert "eth0:" in out
    ip = ipaddress.ip_address(out.split("IP=")[1].split()[0])
    assert ip in pool and ip not in (pool.network_address, pool.network_address + 1)
    assert f"|-- {ip}\n" in out  # the kernel holds it as the job's own address


def pb_networks(agent: Agent) -> list[pb.Network]:
    from joblet.api import joblet_pb2_grpc as pbg

    agent.jobs  # noqa: B018 - opens the channel
    assert agent.channel is not None
    return list(pbg.NetworkServiceStub(agent.channel).ListNetworks(pb.EmptyRequest()).networks)


def test_private_tmp_and_writable_work(agent: Agent) -> None:
    code, _, out = sh(agent, "echo hi > /tmp/t && echo hi > /work/w && pwd && cat /tmp/t /work/w")
    assert code == 0 and out.split() == ["/work", "hi", "hi"]


def test_dev_is_minimal(agent: Agent) -> None:
    _, _, out = sh(agent, "ls /dev")
    names = set(out.split())
    assert {"null", "zero", "urandom"} <= names
    assert not any(n.startswith(("sd", "vd", "nvme", "mem", "kmsg")) for n in names), names
