"""``joblet workflow ...``: send a workflow YAML (and the files its jobs upload) to an agent.

The agent owns workflow semantics; the CLI reads the file only as far as it must to fill
RunWorkflowRequest: the job names (total_jobs, job_order) and the local files named under
``uploads: {files: [...]}``, which only the client can read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from joblet.api import joblet_pb2 as pb
from joblet.cli.output import format_timestamp, print_json, print_pairs, print_table
from joblet.cli.session import Session
from joblet.uploads import collect_uploads


class WorkflowFileError(ValueError):
    """The workflow file cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class WorkflowSource:
    path: Path
    name: str | None  # the NAME of FILE.yaml:NAME
    text: str
    job_names: tuple[str, ...]
    upload_paths: tuple[str, ...]  # relative to the file's directory


def load_workflow(reference: str) -> WorkflowSource:
    """Read ``FILE.yaml`` or ``FILE.yaml:NAME`` and pick out job names and uploaded files."""
    path, name = Path(reference), None
    if not path.exists() and ":" in reference:
        file_part, _, name = reference.rpartition(":")
        path = Path(file_part)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise WorkflowFileError(f"{path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise WorkflowFileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise WorkflowFileError(f"{path}: expected a mapping with jobs or workflows")
    spec = _select(data, name, path)
    jobs = spec.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        raise WorkflowFileError(f"{path}: the workflow has no jobs")
    uploads: list[str] = []
    for job_name, job in jobs.items():
        for file in _upload_files(job, f"{path}: job {job_name!r}"):
            if file not in uploads:
                uploads.append(file)
    return WorkflowSource(
        path=path,
        name=name,
        text=text,
        job_names=tuple(str(n) for n in jobs),
        upload_paths=tuple(uploads),
    )


def _select(data: dict[Any, Any], name: str | None, path: Path) -> dict[Any, Any]:
    workflows = data.get("workflows")
    if workflows is None:
        if name is not None:
            raise WorkflowFileError(f"{path}: no 'workflows' map to choose {name!r} from")
        return data
    if not isinstance(workflows, dict) or not workflows:
        raise WorkflowFileError(f"{path}: 'workflows' must map names to workflows")
    if name is None:
        if len(workflows) != 1:
            raise WorkflowFileError(
                f"{path}: holds several workflows, choose one as {path}:NAME "
                f"({', '.join(map(str, workflows))})"
            )
        name = str(next(iter(workflows)))
    chosen = workflows.get(name)
    if not isinstance(chosen, dict):
        raise WorkflowFileError(f"{path}: no workflow named {name!r}")
    return chosen


def _upload_files(job: object, where: str) -> list[str]:
    if not isinstance(job, dict):
        raise WorkflowFileError(f"{where}: expected a mapping")
    uploads = job.get("uploads")
    if uploads is None:
        return []
    files = uploads.get("files") if isinstance(uploads, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise WorkflowFileError(f"{where}: uploads must be {{files: [PATH, ...]}}")
    for file in files:
        pure = PurePosixPath(file)
        if pure.is_absolute() or ".." in pure.parts:
            raise WorkflowFileError(f"{where}: upload {file!r} must be a relative path")
    return list(files)


def build_workflow_request(source: WorkflowSource) -> pb.RunWorkflowRequest:
    base = source.path.parent
    files: list[pb.FileUpload] = []
    for relative in source.upload_paths:
        entry = collect_uploads([base / relative])[0]
        files.append(pb.FileUpload(path=relative, content=entry.content, mode=entry.mode))
    workflow = source.path.name + (f":{source.name}" if source.name else "")
    return pb.RunWorkflowRequest(
        workflow=workflow,
        total_jobs=len(source.job_names),
        job_order=list(source.job_names),
        yaml_content=source.text,
        workflow_files=files,
    )


def workflow_run(session: Session) -> int:
    request = build_workflow_request(load_workflow(session.args.workflow))
    response = session.client.run_workflow(request)
    if session.json:
        print_json(response)
    else:
        print_pairs([("workflow_uuid", response.workflow_uuid), ("status", response.status)])
    return 0


def workflow_list(session: Session) -> int:
    workflows = session.client.list_workflows(include_completed=session.args.all)
    if session.json:
        print_json(workflows)
        return 0
    print_table(
        ("UUID", "WORKFLOW", "STATUS", "DONE/TOTAL", "FAILED", "CREATED"),
        (
            (
                w.uuid,
                w.workflow,
                w.status,
                f"{w.completed_jobs}/{w.total_jobs}",
                w.failed_jobs,
                format_timestamp(w.created_at),
            )
            for w in workflows
        ),
    )
    return 0


def workflow_status(session: Session) -> int:
    response = session.client.workflow_status(session.args.uuid)
    if session.json:
        print_json(response)
        return 0
    info = response.workflow
    print_pairs(
        [
            ("uuid", info.uuid),
            ("workflow", info.workflow),
            ("status", info.status),
            ("jobs", f"{info.completed_jobs}/{info.total_jobs} completed"),
            ("failed", info.failed_jobs),
            ("canceled", info.canceled_jobs),
            ("created", format_timestamp(info.created_at)),
            ("started", format_timestamp(info.started_at)),
            ("completed", format_timestamp(info.completed_at)),
        ]
    )
    sys.stdout.write("\n")
    print_table(
        ("JOB", "UUID", "STATUS", "EXIT", "REQUIRES"),
        (
            (j.job_name, j.job_uuid, j.status, j.exit_code, ", ".join(j.dependencies))
            for j in response.jobs
        ),
    )
    return 0
