"""RuntimeService: thin translation between the wire and the runtime store/installer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent.config import AgentConfig
from node_agent.errors import FailedPrecondition, InvalidArgument
from node_agent.jobs.model import JobSpec, Resources, Status
from node_agent.runtimes.archive import ArchiveError, RecipeFile, clean_file_path
from node_agent.runtimes.installer import Event, Installer, LogData, Progress, Result
from node_agent.runtimes.spec import SpecError, parse_spec
from node_agent.runtimes.store import Installed, RuntimeStore, parse_name, unsupported
from node_agent.server.rpc import stream, unary

Ctx = grpc.aio.ServicerContext[Any, Any]
TEST_TIMEOUT_S = 300.0
MAX_TEST_OUTPUT = 64 << 10


def info(rt: Installed) -> pb.RuntimeInfo:
    m = rt.manifest
    return pb.RuntimeInfo(
        name=m.name,
        language=m.language,
        version=m.version,
        description=m.description,
        size_bytes=rt.size_bytes,
        packages=list(m.packages),
        available=not unsupported(m),
        requirements=pb.RuntimeRequirements(
            architectures=list(m.requirements.architectures), gpu=m.requirements.gpu
        ),
    )


def chunk(ev: Event) -> pb.RuntimeInstallationChunk:
    if isinstance(ev, Progress):
        return pb.RuntimeInstallationChunk(
            progress=pb.RuntimeInstallationProgress(
                message=ev.message, step=ev.step, total_steps=ev.total
            )
        )
    if isinstance(ev, LogData):
        return pb.RuntimeInstallationChunk(log=pb.RuntimeInstallationLog(data=ev.data))
    return pb.RuntimeInstallationChunk(
        result=pb.RuntimeInstallationResult(
            success=ev.success,
            message=ev.message,
            runtime_spec=ev.name,
            install_path=ev.install_path,
        )
    )


async def final(events: AsyncIterator[Event]) -> pb.InstallRuntimeResponse:
    result: Result | None = None
    async for ev in events:
        if isinstance(ev, Result):
            result = ev
    assert result is not None, "an installation always ends with a result"
    return pb.InstallRuntimeResponse(
        build_job_uuid=result.build_job_uuid,
        runtime_spec=result.name,
        status="completed" if result.success else "failed",
        message=result.message,
        repository=result.repository,
        resolved_path=result.resolved_path,
    )


def recipe_files(request: pb.InstallRuntimeFromLocalRequest) -> list[RecipeFile]:
    try:
        return [
            RecipeFile(clean_file_path(f.path), bytes(f.content), f.executable)
            for f in request.files
        ]
    except ArchiveError as e:
        raise InvalidArgument(str(e)) from None


class RuntimeService(pbg.RuntimeServiceServicer):
    def __init__(self, config: AgentConfig, store: RuntimeStore, installer: Installer) -> None:
        self.config = config
        self.store = store
        self.installer = installer
        self.manager = installer.manager
        self.tls = config.tls

    @unary("viewer")
    async def ListRuntimes(self, request: pb.EmptyRequest, context: Ctx) -> pb.ListRuntimesResponse:
        return pb.ListRuntimesResponse(runtimes=[info(rt) for rt in self.store.all()])

    @unary("viewer")
    async def GetRuntimeInfo(
        self, request: pb.GetRuntimeInfoRequest, context: Ctx
    ) -> pb.GetRuntimeInfoResponse:
        name = parse_name(request.runtime).name
        rt = self.store.installed.get(name)
        if rt is None:
            return pb.GetRuntimeInfoResponse(found=False)
        return pb.GetRuntimeInfoResponse(runtime=info(rt), found=True)

    @unary("viewer")
    async def ValidateRuntimeSpec(
        self, request: pb.ValidateRuntimeSpecRequest, context: Ctx
    ) -> pb.ValidateRuntimeSpecResponse:
        try:
            s = parse_spec(request.runtime_spec)
        except SpecError as e:
            return pb.ValidateRuntimeSpecResponse(valid=False, message=str(e))
        installed = " (installed on this node)" if s.name in self.store.installed else ""
        return pb.ValidateRuntimeSpecResponse(
            valid=True,
            message=f"{s.name}: language {s.language}, version {s.version}{installed}",
            normalized_spec=s.name,
            spec_info=pb.RuntimeSpecInfo(
                language=s.language,
                version=s.version,
                variants=list(s.variants),
                architecture=s.architecture,
            ),
        )

    @unary("admin")
    async def TestRuntime(
        self, request: pb.TestRuntimeRequest, context: Ctx
    ) -> pb.TestRuntimeResponse:
        name = parse_name(request.runtime).name
        rt = self.store.get(name)
        spec = JobSpec(
            uuid=str(uuid.uuid4()),
            name=f"runtime-test-{name}",
            command="/bin/sh",
            args=("-c", rt.manifest.smoke_command()),
            runtime=name,
            resources=Resources(max_memory_mb=self.config.runtime_setup_memory_mb),
        )
        rec = await self.manager.run(spec)
        out = bytearray()
        try:
            async with asyncio.timeout(TEST_TIMEOUT_S):
                async for data in self.manager.logs(rec.uuid):
                    if len(out) < MAX_TEST_OUTPUT:
                        out += data[: MAX_TEST_OUTPUT - len(out)]
                rec = await self.manager.wait_final(rec.uuid)
        except TimeoutError:
            rec = await self.manager.stop(rec.uuid)
            return pb.TestRuntimeResponse(
                success=False,
                output=out.decode(errors="replace"),
                error=f"the test command did not finish in {TEST_TIMEOUT_S:.0f}s; stopped it",
                exit_code=rec.exit_code,
            )
        ok = rec.status == Status.COMPLETED
        return pb.TestRuntimeResponse(
            success=ok,
            output=out.decode(errors="replace"),
            error="" if ok else (rec.message or f"the test command ended {rec.status}"),
            exit_code=rec.exit_code,
        )

    @unary("admin")
    async def InstallRuntimeFromGithub(
        self, request: pb.InstallRuntimeRequest, context: Ctx
    ) -> pb.InstallRuntimeResponse:
        return await final(self._github(request))

    @unary("admin")
    async def InstallRuntimeFromLocal(
        self, request: pb.InstallRuntimeFromLocalRequest, context: Ctx
    ) -> pb.InstallRuntimeResponse:
        return await final(self._local(request))

    @stream("admin")
    async def StreamingInstallRuntimeFromGithub(
        self, request: pb.InstallRuntimeRequest, context: Ctx
    ) -> AsyncIterator[pb.RuntimeInstallationChunk]:
        async for ev in self._github(request):
            yield chunk(ev)

    @stream("admin")
    async def StreamingInstallRuntimeFromLocal(
        self, request: pb.InstallRuntimeFromLocalRequest, context: Ctx
    ) -> AsyncIterator[pb.RuntimeInstallationChunk]:
        async for ev in self._local(request):
            yield chunk(ev)

    def _github(self, request: pb.InstallRuntimeRequest) -> AsyncIterator[Event]:
        return self.installer.from_github(
            request.runtime_spec,
            request.repository,
            request.branch,
            request.path,
            request.force_reinstall,
        )

    def _local(self, request: pb.InstallRuntimeFromLocalRequest) -> AsyncIterator[Event]:
        return self.installer.from_local(
            request.runtime_spec, recipe_files(request), request.force_reinstall
        )

    @unary("admin")
    async def RemoveRuntime(
        self, request: pb.RemoveRuntimeRequest, context: Ctx
    ) -> pb.RemoveRuntimeResponse:
        name = parse_name(request.runtime).name
        if name in self.store.busy:
            raise FailedPrecondition(f"runtime {name!r} is being installed or removed right now")
        self.store.get(name)
        if self.store.in_use(name):
            raise FailedPrecondition(
                f"runtime {name!r} is used by {self.store.in_use(name)} running job(s); "
                "remove it after they end"
            )
        self.store.busy.add(name)
        try:
            freed = await asyncio.to_thread(self.store.remove, name)
        finally:
            self.store.busy.discard(name)
        return pb.RemoveRuntimeResponse(
            success=True, message=f"runtime {name} removed", freed_space_bytes=freed
        )
