"""`joblet-agent`: the node agent's entry point.

Stopping the agent (SIGTERM, or SIGKILL) never stops jobs: their supervisors live on and
the next agent re-attaches to them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import uuid
from importlib.metadata import PackageNotFoundError, version

import psutil

from node_agent.config import AgentConfig
from node_agent.errors import JobletError
from node_agent.isolation.user import parse_user
from node_agent.jobs.manager import JobManager
from node_agent.networks.manager import NetworkManager, NetworkSettings
from node_agent.registry.heartbeat import Heartbeat, inventory_sources
from node_agent.registry.kube import KubeError, NodeApi, load_config
from node_agent.registry.node import (
    NodeFacts,
    advertise_address,
    allocatable_of,
    capacity_of,
    parse_label,
)
from node_agent.runtimes.store import RuntimeStore
from node_agent.server.app import build_server
from node_agent.sys.files import write_atomic
from node_agent.volumes.manager import VolumeManager

log = logging.getLogger("joblet-agent")


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    p = argparse.ArgumentParser(prog="joblet-agent", description="Joblet node agent")
    d = AgentConfig()
    p.add_argument(
        "--listen", default=d.listen, help="host:port or unix:PATH (default %(default)s)"
    )
    p.add_argument(
        "--state-dir", default=d.state_dir, help="jobs, logs, keys (default %(default)s)"
    )
    p.add_argument("--tls-cert", default="", help="server certificate (PEM)")
    p.add_argument("--tls-key", default="", help="server private key (PEM)")
    p.add_argument("--tls-ca", default="", help="CA that signs client certificates (PEM)")
    p.add_argument("--job-user", default=f"{d.job_uid}:{d.job_gid}", help="UID[:GID] jobs run as")
    p.add_argument(
        "--stop-grace",
        type=float,
        default=d.stop_grace_s,
        help="seconds between SIGTERM and SIGKILL",
    )
    p.add_argument("--log-max-bytes", type=int, default=d.log_max_bytes, help="output kept per job")
    p.add_argument(
        "--log-segment-bytes", type=int, default=d.log_segment_bytes, help="rotation unit"
    )
    p.add_argument("--max-upload-bytes", type=int, default=d.max_upload_bytes)
    p.add_argument("--pids-max", type=int, default=d.pids_max, help="processes per job")
    p.add_argument("--cgroup-root", default=d.cgroup_root)
    p.add_argument("--cgroup-version", choices=["", "v1", "v2"], default="", help="default: detect")
    p.add_argument("--node-id", default="", help="default: a UUID kept in the state dir")
    p.add_argument(
        "--runtime-archive-base",
        default=d.runtime_archive_base,
        help="base URL of repository branch archives (BASE/OWNER/REPO/archive/refs/heads/"
        "BRANCH.tar.gz) for runtime installs; point it at a mirror (default %(default)s)",
    )
    p.add_argument(
        "--runtime-repository", default="", help="owner/repo used when an install names none"
    )
    p.add_argument(
        "--runtime-setup-timeout",
        type=float,
        default=d.runtime_setup_timeout_s,
        help="seconds a runtime's setup script may run",
    )
    p.add_argument(
        "--default-network",
        default=d.default_network,
        help="network of jobs that ask for none (default %(default)s; 'none' = loopback only)",
    )
    p.add_argument("--bridge-cidr", default="", help="pool of 'bridge' (default: a free /16)")
    p.add_argument("--isolated-cidr", default="", help="pool of 'isolated' (default: a free /16)")
    p.add_argument("-v", "--verbose", action="store_true")
    k = p.add_argument_group("node registry (publish a JobletNode and a heartbeat Lease)")
    creds = k.add_mutually_exclusive_group()
    creds.add_argument("--kubeconfig", default="", help="register with this cluster")
    creds.add_argument(
        "--in-cluster", action="store_true", help="register using the pod's service account"
    )
    k.add_argument("--node-name", default="", help="JobletNode name (default: hostname)")
    k.add_argument(
        "--node-label",
        action="append",
        default=[],
        metavar="K=V",
        help="label of the JobletNode (repeatable)",
    )
    k.add_argument(
        "--advertise-address",
        default="",
        metavar="HOST:PORT",
        help="address the operator dials (default: from --listen)",
    )
    k.add_argument(
        "--heartbeat-interval",
        type=float,
        default=d.heartbeat_interval_s,
        help="seconds between Lease renewals (default %(default)s)",
    )
    k.add_argument("--reserve-cpu", type=int, default=0, help="cores kept out of allocatable")
    k.add_argument("--reserve-memory-mb", type=int, default=0, help="MB kept out of allocatable")
    a = p.parse_args(argv)
    try:
        user = parse_user(a.job_user)
    except Exception as e:
        p.error(f"--job-user: {e}")
    try:
        labels = tuple(parse_label(t) for t in a.node_label)
    except ValueError as e:
        p.error(f"--node-label: {e}")
    if a.heartbeat_interval <= 0:
        p.error("--heartbeat-interval must be positive")
    if a.reserve_cpu < 0 or a.reserve_memory_mb < 0:
        p.error("--reserve-cpu/--reserve-memory-mb cannot be negative")
    if (a.kubeconfig or a.in_cluster) and a.listen.startswith("unix") and not a.advertise_address:
        p.error("--advertise-address is required when listening on a unix socket")
    return AgentConfig(
        listen=a.listen,
        state_dir=os.path.abspath(a.state_dir),
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        tls_ca=a.tls_ca,
        job_uid=user.uid,
        job_gid=user.gid,
        stop_grace_s=a.stop_grace,
        log_segment_bytes=a.log_segment_bytes,
        log_max_bytes=a.log_max_bytes,
        max_upload_bytes=a.max_upload_bytes,
        pids_max=a.pids_max,
        cgroup_root=a.cgroup_root,
        cgroup_version=a.cgroup_version,
        node_id=a.node_id,
        kubeconfig=os.path.abspath(a.kubeconfig) if a.kubeconfig else "",
        in_cluster=a.in_cluster,
        node_name=a.node_name,
        node_labels=labels,
        advertise_address=a.advertise_address,
        heartbeat_interval_s=a.heartbeat_interval,
        reserve_cpu=a.reserve_cpu,
        reserve_memory_mb=a.reserve_memory_mb,
        runtime_archive_base=a.runtime_archive_base,
        runtime_repository=a.runtime_repository,
        runtime_setup_timeout_s=a.runtime_setup_timeout,
        default_network=a.default_network,
        bridge_cidr=a.bridge_cidr,
        isolated_cidr=a.isolated_cidr,
    )


def node_id(state_dir: str, given: str) -> str:
    if given:
        return given
    path = os.path.join(state_dir, "node_id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        nid = str(uuid.uuid4())
        write_atomic(path, nid.encode(), 0o644)
        return nid


def _agent_version() -> str:
    try:
        return version("joblet-k8s")
    except PackageNotFoundError:
        return "unknown"


def _host_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return socket.gethostname()


def start_registry(config: AgentConfig, port: int, manager: JobManager) -> Heartbeat:
    """Publishes this agent as a JobletNode and keeps its Lease; raises KubeError only when
    the credentials cannot be loaded at all (a configuration error worth failing fast)."""
    api = NodeApi(load_config(config.kubeconfig, config.in_cluster))
    hostname = socket.gethostname()
    capacity = capacity_of(os.cpu_count(), psutil.virtual_memory().total)
    host = config.listen.rsplit(":", 1)[0]
    facts = NodeFacts(
        name=config.node_name or hostname.lower(),
        node_id=config.node_id,
        address=config.advertise_address or advertise_address(host, port, _host_address()),
        hostname=hostname,
        capacity=capacity,
        allocatable=allocatable_of(capacity, config.reserve_cpu, config.reserve_memory_mb),
        labels=config.node_labels,
        agent_version=_agent_version(),
    )
    heartbeat = Heartbeat(
        api,
        facts,
        inventory_sources(manager.attachments),
        interval=config.heartbeat_interval_s,
    )
    heartbeat.start()
    return heartbeat


async def serve(config: AgentConfig) -> None:
    os.makedirs(config.state_dir, mode=0o711, exist_ok=True)
    config = AgentConfig(
        **{**config.__dict__, "node_id": node_id(config.state_dir, config.node_id)}
    )
    runtimes = RuntimeStore(config.state_dir)
    networks = NetworkManager(
        NetworkSettings(
            state_dir=config.state_dir,
            node_id=config.node_id,
            default_network=config.default_network,
            bridge_cidr=config.bridge_cidr,
            isolated_cidr=config.isolated_cidr,
        )
    )
    volumes = VolumeManager(config)
    manager = JobManager(config, attachments=[networks, runtimes, volumes])
    server, port = build_server(
        config, manager, networks=networks, volumes=volumes, runtimes=runtimes
    )
    await manager.start()
    await server.start()
    where = (
        config.listen
        if config.listen.startswith("unix")
        else f"{config.listen.rsplit(':', 1)[0]}:{port}"
    )
    log.info(
        "joblet-agent %s listening on %s (%s)",
        config.node_id,
        where,
        "mTLS" if config.tls else "plaintext",
    )
    heartbeat = None
    if config.registry:
        try:
            heartbeat = start_registry(config, port, manager)
        except KubeError as e:
            await server.stop(0)
            await manager.close()
            raise SystemExit(f"joblet-agent: node registry: {e.message}") from e
    print(f"joblet-agent listening on {where}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    log.info("shutting down; running jobs keep running under their supervisors")
    if heartbeat is not None:
        await heartbeat.stop()
    await server.stop(2)
    await manager.close()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if "-v" in (argv or sys.argv) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if os.geteuid() != 0:
        sys.exit("joblet-agent must run as root: it creates namespaces, cgroups and mounts")
    try:
        asyncio.run(serve(config))
    except JobletError as e:
        sys.exit(f"joblet-agent: {e.message}")


if __name__ == "__main__":
    main()
