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
import sys
import uuid

from node_agent.config import AgentConfig
from node_agent.errors import JobletError
from node_agent.isolation.user import parse_user
from node_agent.jobs.manager import JobManager
from node_agent.networks.manager import NetworkManager, NetworkSettings
from node_agent.server.app import build_server
from node_agent.sys.files import write_atomic

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
        "--default-network",
        default=d.default_network,
        help="network of jobs that ask for none (default %(default)s; 'none' = loopback only)",
    )
    p.add_argument("--bridge-cidr", default="", help="pool of 'bridge' (default: a free /16)")
    p.add_argument("--isolated-cidr", default="", help="pool of 'isolated' (default: a free /16)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    try:
        user = parse_user(a.job_user)
    except Exception as e:
        p.error(f"--job-user: {e}")
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


async def serve(config: AgentConfig) -> None:
    os.makedirs(config.state_dir, mode=0o711, exist_ok=True)
    config = AgentConfig(
        **{**config.__dict__, "node_id": node_id(config.state_dir, config.node_id)}
    )
    networks = NetworkManager(
        NetworkSettings(
            state_dir=config.state_dir,
            node_id=config.node_id,
            default_network=config.default_network,
            bridge_cidr=config.bridge_cidr,
            isolated_cidr=config.isolated_cidr,
        )
    )
    manager = JobManager(config, attachments=[networks])
    server, port = build_server(config, manager, networks=networks)
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
    print(f"joblet-agent listening on {where}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    log.info("shutting down; running jobs keep running under their supervisors")
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
