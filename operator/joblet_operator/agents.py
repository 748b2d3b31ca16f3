"""gRPC to the node agents: one mTLS channel per agent, and one poller per agent that watches
every job the operator waits on with a single ListJobs, however many Jobs are running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class AgentCredentials:
    cert: bytes
    key: bytes
    ca: bytes

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


@dataclass
class _Waiter:
    known: str | None
    future: asyncio.Future[pb.Job | None]


@dataclass
class _Poller:
    stub: pbg.JobServiceAsyncStub
    waiters: dict[str, list[_Waiter]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class Agents:
    def __init__(self, credentials: AgentCredentials | None) -> None:
        self.credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._pollers: dict[str, _Poller] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            opts = [
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ]
            if self.credentials is None:
                ch = grpc.aio.insecure_channel(address, options=opts)
            else:
                ch = grpc.aio.secure_channel(
                    address, self.credentials.channel_credentials(), options=opts
                )
            self._channels[address] = ch
        return ch

    def jobs(self, address: str) -> pbg.JobServiceAsyncStub:
        return pbg.JobServiceStub(self.channel(address))

    def stub(self, address: str, service: str) -> object:
        return getattr(pbg, f"{service}Stub")(self.channel(address))

    async def close(self) -> None:
        for p in self._pollers.values():
            if p.task:
                p.task.cancel()
        for ch in self._channels.values():
            await ch.close()

    async def observe(
        self, address: str, uuid: str, known: str | None, timeout: float
    ) -> pb.Job | None:
        """The agent's record of `uuid` once its status differs from `known` (None: nothing is
        known yet, so the first answer counts, including a job missing on the agent, reported
        as `Job(uuid=..., status="")`); None when nothing changed in `timeout` seconds or the
        agent could not be reached."""
        poller = self._pollers.get(address)
        if poller is None:
            poller = self._pollers[address] = _Poller(self.jobs(address))
        fut: asyncio.Future[pb.Job | None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(known, fut)
        poller.waiters.setdefault(uuid, []).append(waiter)
        if poller.task is None or poller.task.done():
            poller.task = asyncio.create_task(self._poll(address, poller))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return None
        finally:
            ws = poller.waiters.get(uuid, [])
            with contextlib.suppress(ValueError):
                ws.remove(waiter)
            if not ws:
                poller.waiters.pop(uuid, None)

    async def _poll(self, address: str, poller: _Poller) -> None:
        while poller.waiters:
            try:
                listed = await poller.stub.ListJobs(pb.EmptyRequest(), timeout=10)
            except grpc.aio.AioRpcError as e:
                log.debug("agent %s unreachable: %s", address, e.code().name)
                await asyncio.sleep(1.0)
                continue
            by_uuid = {j.uuid: j for j in listed.jobs}
            for uuid, waiters in list(poller.waiters.items()):
                job = by_uuid.get(uuid) or pb.Job(uuid=uuid, status="")
                for w in waiters:
                    if (w.known is None or job.status != w.known) and not w.future.done():
                        w.future.set_result(job)
            await asyncio.sleep(POLL_INTERVAL_S)
