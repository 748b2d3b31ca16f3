"""The job as the agent knows it: an immutable spec and an immutable record of its state.

A `JobSpec` is what RunJob asked for, parsed and validated once at the edge. A `JobRecord`
is the spec plus everything that happened to it; each transition makes a new record
(`dataclasses.replace`), and the store persists records whole. Secret values live only
in `JobSpec.secret_env` in memory: `to_disk()` keeps their names, never their values.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    PENDING = "PENDING"
    INITIALIZING = "INITIALIZING"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Running or about to: the job holds resources or a timer."""
        return self in (
            Status.PENDING,
            Status.INITIALIZING,
            Status.SCHEDULED,
            Status.RUNNING,
            Status.STOPPING,
        )


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED, Status.CANCELED})


def volume_ref(entry: str) -> tuple[str, str]:
    """A job's volume entry: `NAME` (seen at /volumes/NAME) or `NAME:MOUNT` (volume NAME seen
    at /volumes/MOUNT). Volume names hold no ':', so plain names mean what they always meant;
    the operator uses the second form to show a namespaced volume under its own name."""
    name, _, mount = entry.partition(":")
    return name, mount or name


@dataclass(frozen=True)
class Upload:
    """One file or directory to place under /work before the job starts."""

    path: str  # relative, normalised, no '..'
    content: bytes
    mode: int
    is_directory: bool


@dataclass(frozen=True)
class Resources:
    max_cpu: int = 0  # percent of one core
    cpu_cores: str = ""
    max_memory_mb: int = 0
    max_iobps: int = 0


@dataclass(frozen=True)
class JobSpec:
    uuid: str
    name: str
    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[tuple[str, str], ...] = ()  # values: memory only
    resources: Resources = field(default_factory=Resources)
    work_dir: str = "/work"
    uploads: tuple[Upload, ...] = ()
    schedule: str = ""  # RFC3339, empty = now
    network: str = ""
    volumes: tuple[str, ...] = ()
    runtime: str = ""
    workflow_uuid: str = ""

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.secret_env)


@dataclass(frozen=True)
class JobRecord:
    spec: JobSpec
    status: Status
    created_at: str
    scheduled_time: str = ""
    start_time: str = ""
    end_time: str = ""
    exit_code: int = 0
    message: str = ""
    node_id: str = ""

    def evolve(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    @property
    def uuid(self) -> str:
        return self.spec.uuid

    # -- persistence (no secret values, no upload contents) -------------------------------

    def to_disk(self) -> dict[str, Any]:
        s = self.spec
        return {
            "version": 1,
            "spec": {
                "uuid": s.uuid,
                "name": s.name,
                "command": s.command,
                "args": list(s.args),
                "env": [list(kv) for kv in s.env],
                "secret_names": list(s.secret_names),
                "resources": dataclasses.asdict(s.resources),
                "work_dir": s.work_dir,
                "uploads": [u.path for u in s.uploads],
                "schedule": s.schedule,
                "network": s.network,
                "volumes": list(s.volumes),
                "runtime": s.runtime,
                "workflow_uuid": s.workflow_uuid,
            },
            "status": self.status.value,
            "created_at": self.created_at,
            "scheduled_time": self.scheduled_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "exit_code": self.exit_code,
            "message": self.message,
            "node_id": self.node_id,
        }

    @classmethod
    def from_disk(cls, data: dict[str, Any]) -> JobRecord:
        sd = data["spec"]
        spec = JobSpec(
            uuid=sd["uuid"],
            name=sd["name"],
            command=sd["command"],
            args=tuple(sd["args"]),
            env=tuple((k, v) for k, v in sd["env"]),
            # values are not on disk; the names keep the status output truthful
            secret_env=tuple((k, "") for k in sd["secret_names"]),
            resources=Resources(**sd["resources"]),
            work_dir=sd["work_dir"],
            uploads=tuple(Upload(p, b"", 0, False) for p in sd["uploads"]),
            schedule=sd["schedule"],
            network=sd["network"],
            volumes=tuple(sd["volumes"]),
            runtime=sd["runtime"],
            workflow_uuid=sd["workflow_uuid"],
        )
        return cls(
            spec=spec,
            status=Status(data["status"]),
            created_at=data["created_at"],
            scheduled_time=data["scheduled_time"],
            start_time=data["start_time"],
            end_time=data["end_time"],
            exit_code=data["exit_code"],
            message=data["message"],
            node_id=data.get("node_id", ""),
        )
