"""NetworkService: thin translation between the wire and `NetworkManager`."""

from __future__ import annotations

from typing import Any

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent.networks.manager import NetworkManager
from node_agent.server.rpc import unary

Ctx = grpc.aio.ServicerContext[Any, Any]


class NetworkService(pbg.NetworkServiceServicer):
    def __init__(self, networks: NetworkManager, *, tls: bool) -> None:
        self.networks = networks
        self.tls = tls

    @unary("admin")
    async def CreateNetwork(
        self, request: pb.CreateNetworkRequest, context: Ctx
    ) -> pb.CreateNetworkResponse:
        n = await self.networks.create(request.name, request.cidr)
        return pb.CreateNetworkResponse(name=n.name, cidr=n.cidr, bridge=n.bridge)

    @unary("viewer")
    async def ListNetworks(self, request: pb.EmptyRequest, context: Ctx) -> pb.Networks:
        return pb.Networks(
            networks=[
                pb.Network(name=n.name, cidr=n.cidr, bridge=n.bridge, job_count=n.job_count)
                for n in self.networks.list()
            ]
        )

    @unary("admin")
    async def RemoveNetwork(
        self, request: pb.RemoveNetworkRequest, context: Ctx
    ) -> pb.RemoveNetworkResponse:
        n = await self.networks.remove(request.name)
        return pb.RemoveNetworkResponse(
            success=True, message=f"network {n.name} removed (bridge {n.bridge})"
        )
