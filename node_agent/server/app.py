"""Assemble the gRPC server: services, limits, transport security, listen address rules."""

from __future__ import annotations

import ipaddress

import grpc

from joblet.api import joblet_pb2_grpc as pbg
from node_agent.config import AgentConfig
from node_agent.errors import InvalidArgument
from node_agent.isolation.cgroups import host_online_cpus
from node_agent.jobs.manager import JobManager
from node_agent.jobs.validate import Limits
from node_agent.networks.manager import NetworkManager
from node_agent.runtimes.installer import Installer
from node_agent.runtimes.store import RuntimeStore
from node_agent.server.jobs import JobService
from node_agent.server.monitoring import MonitoringService
from node_agent.server.networks import NetworkService
from node_agent.server.runtimes import RuntimeService
from node_agent.server.volumes import VolumeService
from node_agent.volumes.manager import VolumeManager


def is_local(listen: str) -> bool:
    """unix sockets and loopback addresses may go without TLS; nothing else may."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(config: AgentConfig) -> None:
    if config.tls and not (config.tls_cert and config.tls_key and config.tls_ca):
        raise InvalidArgument("mTLS needs all three of --tls-cert, --tls-key and --tls-ca")
    if not config.tls and not is_local(config.listen):
        raise InvalidArgument(
            f"refusing to listen on {config.listen} without mTLS: give --tls-cert, --tls-key "
            "and --tls-ca, or listen on a loopback address or unix:PATH"
        )


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build_server(
    config: AgentConfig,
    manager: JobManager,
    *,
    networks: NetworkManager,
    volumes: VolumeManager,
    runtimes: RuntimeStore,
) -> tuple[grpc.aio.Server, int]:
    check_listen(config)
    opts = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # a port another process holds is an error, not a silently shared listener
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=opts)
    limits = Limits(online_cpus=host_online_cpus(), max_upload_bytes=config.max_upload_bytes)
    tls = config.tls
    pbg.add_JobServiceServicer_to_server(JobService(manager, limits, tls=tls), server)
    pbg.add_NetworkServiceServicer_to_server(NetworkService(networks, tls=tls), server)
    pbg.add_VolumeServiceServicer_to_server(VolumeService(volumes, tls=tls), server)
    installer = Installer(config, runtimes, manager)
    pbg.add_RuntimeServiceServicer_to_server(RuntimeService(config, runtimes, installer), server)
    pbg.add_MonitoringServiceServicer_to_server(MonitoringService(config, tls=tls), server)
    if config.tls:
        creds = grpc.ssl_server_credentials(
            [(_read(config.tls_key), _read(config.tls_cert))],
            root_certificates=_read(config.tls_ca),
            require_client_auth=True,
        )
        port = server.add_secure_port(config.listen, creds)
    else:
        port = server.add_insecure_port(config.listen)
    return server, port
