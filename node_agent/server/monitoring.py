"""MonitoringService: host status once, or as a stream at the interval the client asks for.

Rates need two samples: a status call reuses the previous call's counters when they are
fresh, else it samples twice a short moment apart; a stream keeps its own counters, so
every message's rates cover exactly the interval since the one before. All sampling runs
in threads. A client going away cancels the stream's task at its next await, which ends
it without an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent.config import AgentConfig
from node_agent.monitoring import collect
from node_agent.monitoring.model import (
    METRIC_TYPES,
    Counters,
    Snapshot,
    StreamRequest,
    parse_stream_request,
)
from node_agent.server.rpc import stream, unary

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]
WARMUP_S = 0.25  # the gap between the two samples of a first message
FRESH_S = 30.0  # a status call reuses counters this young
ALL = StreamRequest(5, frozenset(METRIC_TYPES))


def _fields(snap: Snapshot) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": snap.timestamp}
    out["host"] = pb.HostInfo(**asdict(snap.host))
    out["cloud"] = pb.CloudInfo(**asdict(snap.cloud))
    if snap.cpu is not None:
        out["cpu"] = pb.CPUMetrics(**asdict(snap.cpu))
    if snap.memory is not None:
        out["memory"] = pb.MemoryMetrics(**asdict(snap.memory))
    out["disks"] = [pb.DiskMetrics(**asdict(d)) for d in snap.disks]
    out["networks"] = [pb.NetworkMetrics(**asdict(n)) for n in snap.networks]
    if snap.io is not None:
        io = asdict(snap.io)
        io["disk_io"] = [pb.DiskIOMetrics(**d) for d in io["disk_io"]]
        out["io"] = pb.IOMetrics(**io)
    if snap.processes is not None:
        pm = asdict(snap.processes)
        pm["top_by_cpu"] = [pb.ProcessInfo(**p) for p in pm["top_by_cpu"]]
        pm["top_by_memory"] = [pb.ProcessInfo(**p) for p in pm["top_by_memory"]]
        out["processes"] = pb.ProcessMetrics(**pm)
    return out


class MonitoringService(pbg.MonitoringServiceServicer):
    def __init__(self, config: AgentConfig, *, tls: bool) -> None:
        self.node_id = config.node_id
        self.tls = tls
        self._last: Counters | None = None

    @unary("viewer")
    async def GetSystemStatus(
        self, request: pb.EmptyRequest, context: Ctx
    ) -> pb.SystemStatusResponse:
        before = self._last
        if before is None or time.monotonic() - before.at > FRESH_S:
            before = await asyncio.to_thread(collect.baseline, METRIC_TYPES)
            await asyncio.sleep(WARMUP_S)
        snap, self._last = await asyncio.to_thread(collect.snapshot, self.node_id, before, ALL)
        version = await asyncio.to_thread(collect.server_version)
        return pb.SystemStatusResponse(
            available=True,
            server_version=pb.ServerVersionInfo(**asdict(version)),
            **_fields(snap),
        )

    @stream("viewer")
    async def StreamSystemMetrics(
        self, request: pb.StreamMetricsRequest, context: Ctx
    ) -> AsyncIterator[pb.SystemMetricsResponse]:
        req = parse_stream_request(request.interval_seconds, list(request.metric_types))
        # Read now: once the client has gone, the call behind `context` may be freed, and
        # touching it then (e.g. context.peer() in the finally below) crashes grpc's C core.
        peer = context.peer()
        before = await asyncio.to_thread(collect.baseline, req.metric_types)
        await asyncio.sleep(WARMUP_S)
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        try:
            while True:
                snap, before = await asyncio.to_thread(collect.snapshot, self.node_id, before, req)
                yield pb.SystemMetricsResponse(**_fields(snap))
                sent += 1
                delay = start + sent * req.interval_seconds - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            log.info("metrics stream to %s ended after %d message(s)", peer, sent)
