"""Parse a RunJobRequest once, at the edge, into a validated `JobSpec`.

Everything a client can get wrong is caught here with a message that says what and why,
before anything is written to disk or launched; the rest of the agent trusts the spec.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid as uuidlib
from dataclasses import dataclass
from datetime import timedelta

from joblet.api import joblet_pb2 as pb
from node_agent import timefmt
from node_agent.errors import InvalidArgument
from node_agent.isolation.cgroups.spec import parse_cpuset
from node_agent.jobs.model import JobSpec, Resources, Upload, volume_ref

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ARG_BYTES = 1 << 20
MAX_SCHEDULE_AHEAD = timedelta(days=366)
SCHEDULE_SLACK = timedelta(seconds=5)  # clock skew between client and agent
MIN_MEMORY_MB = 4


@dataclass(frozen=True)
class Limits:
    """What this node allows; from the agent's configuration and the host."""

    online_cpus: int
    max_upload_bytes: int


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def _check_text(field: str, value: str, *, max_len: int = 4096) -> None:
    if "\x00" in value:
        raise InvalidArgument(f"{field} contains a NUL byte")
    if len(value.encode()) > max_len:
        raise InvalidArgument(f"{field} is longer than {max_len} bytes")


RESOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _check_name(kind: str, name: str) -> None:
    if name and not RESOURCE_NAME.match(name):
        raise InvalidArgument(
            f"{kind} name {name!r} is not valid: 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _env(field: str, items: dict[str, str]) -> tuple[tuple[str, str], ...]:
    out = []
    for key in sorted(items):
        if not ENV_NAME.match(key):
            raise InvalidArgument(
                f"{field}: {key!r} is not a valid variable name "
                "(letters, digits and _, not starting with a digit)"
            )
        _check_text(f"{field}[{key}]", items[key], max_len=MAX_ARG_BYTES)
        out.append((key, items[key]))
    return tuple(out)


def clean_upload_path(raw: str) -> str:
    """A relative path below /work, normalised; refuses absolute paths and '..'."""
    _check_text("upload path", raw)
    if not raw:
        raise InvalidArgument("upload path is empty")
    if raw.startswith("/"):
        raise InvalidArgument(f"upload path {raw!r} is absolute; give a path relative to /work")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidArgument(f"upload path {raw!r} contains '..'; uploads stay inside /work")
    if not parts:
        raise InvalidArgument(f"upload path {raw!r} names /work itself")
    return "/".join(parts)


def _uploads(req: pb.RunJobRequest, limits: Limits) -> tuple[Upload, ...]:
    seen: set[str] = set()
    total = 0
    out = []
    for u in req.uploads:
        path = clean_upload_path(u.path)
        if path in seen:
            raise InvalidArgument(f"upload path {path!r} is given twice")
        seen.add(path)
        if u.mode > 0o7777:
            raise InvalidArgument(f"upload {path!r}: mode {u.mode:#o} is not a file mode")
        if u.is_directory and u.content:
            raise InvalidArgument(f"upload {path!r} is a directory but has content")
        total += len(u.content)
        default_mode = 0o755 if u.is_directory else 0o644
        out.append(Upload(path, bytes(u.content), u.mode or default_mode, u.is_directory))
    if total > limits.max_upload_bytes:
        raise InvalidArgument(
            f"uploads total {total} bytes, more than this agent accepts "
            f"({limits.max_upload_bytes} bytes)"
        )
    # parents before children, so directory modes are applied in order
    return tuple(sorted(out, key=lambda u: u.path.count("/")))


def _schedule(text: str) -> str:
    if not text:
        return ""
    try:
        when = timefmt.parse(text)
    except ValueError as e:
        raise InvalidArgument(f"schedule: {e}") from None
    now = timefmt.now()
    if when < now - SCHEDULE_SLACK:
        raise InvalidArgument(f"schedule {text} is in the past (agent time is {timefmt.fmt(now)})")
    if when > now + MAX_SCHEDULE_AHEAD:
        raise InvalidArgument(f"schedule {text} is more than a year ahead")
    return timefmt.fmt(when)


def _resources(req: pb.RunJobRequest, limits: Limits) -> Resources:
    for field, value in (
        ("max_cpu", req.max_cpu),
        ("max_memory", req.max_memory),
        ("max_iobps", req.max_iobps),
    ):
        if value < 0:
            raise InvalidArgument(f"{field} must not be negative (got {value}); 0 means no limit")
    if req.max_cpu > 100 * limits.online_cpus:
        raise InvalidArgument(
            f"max_cpu {req.max_cpu}% is more than this node's {limits.online_cpus} cores "
            f"({100 * limits.online_cpus}%)"
        )
    if 0 < req.max_memory < MIN_MEMORY_MB:
        raise InvalidArgument(
            f"max_memory {req.max_memory} MB is below the {MIN_MEMORY_MB} MB minimum"
        )
    cores = req.cpu_cores.strip()
    if cores:
        try:
            parse_cpuset(cores, limits.online_cpus)
        except ValueError as e:
            raise InvalidArgument(f"cpu_cores: {e}") from None
    return Resources(req.max_cpu, cores, req.max_memory, req.max_iobps)


def _work_dir(raw: str) -> str:
    if not raw:
        return "/work"
    _check_text("work_dir", raw)
    if not raw.startswith("/"):
        raw = "/work/" + raw
    norm = posixpath.normpath(raw)
    if ".." in raw.split("/"):
        raise InvalidArgument(f"work_dir {raw!r} contains '..'")
    return norm


def parse_run_request(req: pb.RunJobRequest, limits: Limits) -> JobSpec:
    command = req.command.strip()
    if not command:
        raise InvalidArgument("command is empty: say what to run, e.g. command='echo'")
    _check_text("command", command)
    total = len(command)
    for i, a in enumerate(req.args):
        _check_text(f"args[{i}]", a, max_len=MAX_ARG_BYTES)
        total += len(a.encode())
    if total > MAX_ARG_BYTES:
        raise InvalidArgument(f"command and args exceed {MAX_ARG_BYTES} bytes")
    _check_text("name", req.name, max_len=253)
    env = _env("environment", dict(req.environment))
    secrets = _env("secret_environment", dict(req.secret_environment))
    both = {k for k, _ in env} & {k for k, _ in secrets}
    if both:
        raise InvalidArgument(
            f"{', '.join(sorted(both))} given both as environment and secret_environment"
        )
    if req.gpu_count or req.gpu_memory_mb:
        raise InvalidArgument("this node has no GPUs (gpu_count and gpu_memory_mb must be 0)")
    # whether they exist is for the node's attachments to say (JobManager.run)
    _check_name("network", req.network)
    mounts = []
    for v in req.volumes:
        name, mount = volume_ref(v)
        _check_name("volume", name)
        _check_name("volume mount", mount)
        mounts.append(mount)
    if len(set(mounts)) != len(mounts):
        raise InvalidArgument("two volumes would be mounted at the same /volumes path")
    _check_name("runtime", req.runtime)
    job_uuid = req.job_uuid.strip()
    if job_uuid:
        try:
            job_uuid = str(uuidlib.UUID(job_uuid))
        except ValueError:
            raise InvalidArgument(f"job_uuid {req.job_uuid!r} is not a UUID") from None
    else:
        job_uuid = new_uuid()
    return JobSpec(
        uuid=job_uuid,
        name=req.name,
        command=command,
        args=tuple(req.args),
        env=env,
        secret_env=secrets,
        resources=_resources(req, limits),
        work_dir=_work_dir(req.work_dir),
        uploads=_uploads(req, limits),
        schedule=_schedule(req.schedule),
        network=req.network,
        volumes=tuple(req.volumes),
        runtime=req.runtime,
        workflow_uuid=req.workflow_uuid,
    )


def online_cpus() -> int:
    return len(os.sched_getaffinity(0)) or 1
