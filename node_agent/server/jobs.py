"""JobService: thin translation between the wire and `JobManager`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent.errors import Unimplemented
from node_agent.jobs.manager import JobManager
from node_agent.jobs.validate import Limits, parse_run_request
from node_agent.server import convert
from node_agent.server.rpc import stream, unary

Ctx = grpc.aio.ServicerContext[Any, Any]
LOG_CHUNK = 1 << 20
WORKFLOWS = "workflows are not available on this agent yet"


class JobService(pbg.JobServiceServicer):
    def __init__(self, manager: JobManager, limits: Limits, *, tls: bool) -> None:
        self.manager = manager
        self.limits = limits
        self.tls = tls

    @unary("admin")
    async def RunJob(self, request: pb.RunJobRequest, context: Ctx) -> pb.RunJobResponse:
        spec = parse_run_request(request, self.limits)
        return convert.run_response(await self.manager.run(spec))

    @unary("viewer")
    async def GetJobStatus(
        self, request: pb.GetJobStatusRequest, context: Ctx
    ) -> pb.GetJobStatusResponse:
        return convert.status(self.manager.resolve(request.uuid))

    @unary("viewer")
    async def ListJobs(self, request: pb.EmptyRequest, context: Ctx) -> pb.Jobs:
        return pb.Jobs(jobs=[convert.job(r) for r in self.manager.list()])

    @unary("admin")
    async def StopJob(self, request: pb.StopJobRequest, context: Ctx) -> pb.StopJobResponse:
        rec = await self.manager.stop(request.uuid)
        return pb.StopJobResponse(
            uuid=rec.uuid, status=rec.status.value, end_time=rec.end_time, exit_code=rec.exit_code
        )

    @unary("admin")
    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.CancelJobResponse:
        rec = self.manager.cancel(request.uuid)
        return pb.CancelJobResponse(uuid=rec.uuid, status=rec.status.value)

    @unary("admin")
    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Ctx) -> pb.DeleteJobResponse:
        rec = await self.manager.delete(request.uuid)
        return pb.DeleteJobResponse(uuid=rec.uuid, success=True, message=f"job {rec.uuid} deleted")

    @unary("admin")
    async def DeleteAllJobs(
        self, request: pb.DeleteAllJobsRequest, context: Ctx
    ) -> pb.DeleteAllJobsResponse:
        deleted, skipped = await self.manager.delete_all()
        return pb.DeleteAllJobsResponse(
            success=True,
            message=f"deleted {deleted} jobs, skipped {skipped} running or scheduled",
            deleted_count=deleted,
            skipped_count=skipped,
        )

    @stream("viewer")
    async def GetJobLogs(
        self, request: pb.GetJobLogsRequest, context: Ctx
    ) -> AsyncIterator[pb.DataChunk]:
        async for data in self.manager.logs(request.uuid):
            for i in range(0, len(data), LOG_CHUNK):
                yield pb.DataChunk(payload=data[i : i + LOG_CHUNK])

    @unary("admin")
    async def RunWorkflow(
        self, request: pb.RunWorkflowRequest, context: Ctx
    ) -> pb.RunWorkflowResponse:
        raise Unimplemented(WORKFLOWS)

    @unary("viewer")
    async def GetWorkflowStatus(
        self, request: pb.GetWorkflowStatusRequest, context: Ctx
    ) -> pb.GetWorkflowStatusResponse:
        raise Unimplemented(WORKFLOWS)

    @unary("viewer")
    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: Ctx
    ) -> pb.ListWorkflowsResponse:
        raise Unimplemented(WORKFLOWS)

    @unary("viewer")
    async def GetWorkflowJobs(
        self, request: pb.GetWorkflowJobsRequest, context: Ctx
    ) -> pb.GetWorkflowJobsResponse:
        raise Unimplemented(WORKFLOWS)
