"""Job records to wire messages. Secret values never leave: they are shown masked."""

from __future__ import annotations

from typing import Any

from joblet.api import joblet_pb2 as pb
from node_agent.jobs.model import JobRecord

SECRET_MASK = "***"


def _secret_map(rec: JobRecord) -> dict[str, str]:
    return {name: SECRET_MASK for name in rec.spec.secret_names}


def _common(rec: JobRecord) -> dict[str, Any]:
    """Fields 1-13 (and the environment maps) that Job and GetJobStatusResponse share."""
    s, r = rec.spec, rec.spec.resources
    return {
        "uuid": s.uuid,
        "name": s.name,
        "command": s.command,
        "args": list(s.args),
        "max_cpu": r.max_cpu,
        "cpu_cores": r.cpu_cores,
        "max_memory": r.max_memory_mb,
        "max_iobps": r.max_iobps,
        "status": rec.status.value,
        "start_time": rec.start_time,
        "end_time": rec.end_time,
        "exit_code": rec.exit_code,
        "scheduled_time": rec.scheduled_time,
        "environment": dict(s.env),
        "secret_environment": _secret_map(rec),
        "node_id": rec.node_id,
        "message": rec.message,
    }


def job(rec: JobRecord) -> pb.Job:
    return pb.Job(runtime=rec.spec.runtime, **_common(rec))


def status(rec: JobRecord) -> pb.GetJobStatusResponse:
    s = rec.spec
    return pb.GetJobStatusResponse(
        network=s.network,
        volumes=list(s.volumes),
        runtime=s.runtime,
        work_dir=s.work_dir,
        uploads=[u.path for u in s.uploads],
        workflow_uuid=s.workflow_uuid,
        **_common(rec),
    )


def run_response(rec: JobRecord) -> pb.RunJobResponse:
    s, r = rec.spec, rec.spec.resources
    return pb.RunJobResponse(
        job_uuid=s.uuid,
        status=rec.status.value,
        command=s.command,
        args=list(s.args),
        max_cpu=r.max_cpu,
        cpu_cores=r.cpu_cores,
        max_memory=r.max_memory_mb,
        max_iobps=r.max_iobps,
        start_time=rec.start_time,
        end_time=rec.end_time,
        exit_code=rec.exit_code,
        scheduled_time=rec.scheduled_time,
    )
