"""Custom resources parsed once into frozen dataclasses, so planning never touches raw dicts.

The CRD schemas (crds/) already reject malformed objects at the API server; parsing here
only turns what the server accepted into typed values with defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP = "joblet.io"
VERSION = "v1alpha1"
SYSTEM_NAMESPACE = "joblet-system"
UUID_NAMESPACE = uuid.NAMESPACE_URL


@dataclass(frozen=True)
class SecretRef:
    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class UploadRef:
    config_map: str
    key: str = ""
    path: str = ""


@dataclass(frozen=True)
class JobSpec:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[SecretRef, ...] = ()
    uploads: tuple[UploadRef, ...] = ()
    max_cpu: int = 0
    cpu_cores: str = ""
    max_memory: int = 0
    max_iobps: int = 0
    network: str = ""
    volumes: tuple[str, ...] = ()
    runtime: str = ""
    work_dir: str = ""
    schedule: str = ""
    node_selector: tuple[tuple[str, str], ...] = ()
    node_name: str = ""
    backoff_limit: int = 0
    active_deadline_seconds: int = 0
    ttl_seconds_after_finished: int | None = None

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> JobSpec:
        res = spec.get("resources") or {}
        ttl = spec.get("ttlSecondsAfterFinished")
        return cls(
            command=str(spec["command"]),
            args=tuple(str(a) for a in spec.get("args") or ()),
            env=tuple((str(e["name"]), str(e.get("value", ""))) for e in spec.get("env") or ()),
            secret_env=tuple(
                SecretRef(
                    str(e["name"]), str(e["secretKeyRef"]["name"]), str(e["secretKeyRef"]["key"])
                )
                for e in spec.get("secretEnv") or ()
            ),
            uploads=tuple(
                UploadRef(str(u["configMap"]), str(u.get("key", "")), str(u.get("path", "")))
                for u in spec.get("uploads") or ()
            ),
            max_cpu=int(res.get("maxCPU", 0)),
            cpu_cores=str(res.get("cpuCores", "")),
            max_memory=int(res.get("maxMemory", 0)),
            max_iobps=int(res.get("maxIOBPS", 0)),
            network=str(spec.get("network", "")),
            volumes=tuple(str(v) for v in spec.get("volumes") or ()),
            runtime=str(spec.get("runtime", "")),
            work_dir=str(spec.get("workDir", "")),
            schedule=str(spec.get("schedule", "")),
            node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
            node_name=str(spec.get("nodeName", "")),
            backoff_limit=int(spec.get("backoffLimit", 0)),
            active_deadline_seconds=int(spec.get("activeDeadlineSeconds", 0)),
            ttl_seconds_after_finished=int(ttl) if ttl is not None else None,
        )


@dataclass(frozen=True)
class JobStatus:
    phase: str = ""
    node: str = ""
    job_uuid: str = ""
    attempts: int = 0
    exit_code: int | None = None
    start_time: str = ""
    completion_time: str = ""
    message: str = ""
    conditions: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def parse(cls, status: Mapping[str, Any] | None) -> JobStatus:
        s = status or {}
        return cls(
            phase=str(s.get("phase", "")),
            node=str(s.get("node", "")),
            job_uuid=str(s.get("jobUUID", "")),
            attempts=int(s.get("attempts", 0)),
            exit_code=s.get("exitCode"),
            start_time=str(s.get("startTime", "")),
            completion_time=str(s.get("completionTime", "")),
            message=str(s.get("message", "")),
            conditions=tuple(s.get("conditions") or ()),
        )


@dataclass(frozen=True)
class NodeView:
    name: str
    address: str
    labels: tuple[tuple[str, str], ...]
    ready: bool
    cpu_cores: int
    memory_mb: int
    networks: frozenset[str] = field(default_factory=frozenset)
    volumes: frozenset[str] = field(default_factory=frozenset)
    runtimes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> NodeView:
        spec = body.get("spec") or {}
        alloc = spec.get("allocatable") or spec.get("capacity") or {}
        conditions = (body.get("status") or {}).get("conditions") or ()
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            address=str(spec.get("address", "")),
            labels=tuple(sorted((meta.get("labels") or {}).items())),
            ready=ready,
            cpu_cores=int(alloc.get("cpu", 0)),
            memory_mb=int(alloc.get("memoryMB", 0)),
            networks=frozenset(spec.get("networks") or ()),
            volumes=frozenset(spec.get("volumes") or ()),
            runtimes=frozenset(spec.get("runtimes") or ()),
        )


def agent_job_uuid(cr_uid: str, attempt: int) -> str:
    """The agent job of attempt N of a Job: the same on every retry of the same dispatch, so a
    RunJob repeated after an operator crash finds the job instead of starting a second one."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"joblet.io/job/{cr_uid}/{attempt}"))


def agent_volume_name(namespace: str, name: str) -> str:
    """Volumes are namespaced in Kubernetes and flat on a node."""
    return f"{namespace}-{name}"
