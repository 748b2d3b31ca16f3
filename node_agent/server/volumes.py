"""VolumeService: thin translation between the wire and `VolumeManager`."""

from __future__ import annotations

from typing import Any

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent.server.rpc import unary
from node_agent.volumes.manager import VolumeInfo, VolumeManager

Ctx = grpc.aio.ServicerContext[Any, Any]


def volume(v: VolumeInfo) -> pb.Volume:
    return pb.Volume(
        name=v.vol.name,
        size=v.vol.size,
        type=v.vol.kind,
        path=v.path,
        created_time=v.vol.created_time,
        job_count=v.job_count,
        size_bytes=v.total_bytes,
        used_bytes=v.used_bytes,
    )


class VolumeService(pbg.VolumeServiceServicer):
    def __init__(self, volumes: VolumeManager, *, tls: bool) -> None:
        self.volumes = volumes
        self.tls = tls

    @unary("admin")
    async def CreateVolume(
        self, request: pb.CreateVolumeRequest, context: Ctx
    ) -> pb.CreateVolumeResponse:
        v = await self.volumes.create(request.name, request.size, request.type)
        return pb.CreateVolumeResponse(
            name=v.vol.name, size=v.vol.size, type=v.vol.kind, path=v.path
        )

    @unary("viewer")
    async def ListVolumes(self, request: pb.EmptyRequest, context: Ctx) -> pb.Volumes:
        return pb.Volumes(volumes=[volume(v) for v in self.volumes.all()])

    @unary("admin")
    async def RemoveVolume(
        self, request: pb.RemoveVolumeRequest, context: Ctx
    ) -> pb.RemoveVolumeResponse:
        await self.volumes.remove(request.name)
        return pb.RemoveVolumeResponse(success=True, message=f"volume {request.name} removed")
