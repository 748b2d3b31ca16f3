"""``joblet job ...``: run, inspect, follow and clean up jobs on one agent."""

from __future__ import annotations

import json
import queue
import shlex
import sys
import threading
import time
from datetime import UTC, datetime

import grpc
from google.protobuf.message import Message

from joblet.api import joblet_pb2 as pb
from joblet.cli.output import (
    message_pairs,
    print_json,
    print_pairs,
    print_table,
    to_dict,
    write_output,
)
from joblet.cli.parser import UsageError, command_of
from joblet.cli.session import Session
from joblet.client import ServerStream
from joblet.schedule import parse_schedule
from joblet.uploads import collect_uploads

ENDED = frozenset({"COMPLETED", "FAILED", "STOPPED", "CANCELED"})
# Without --follow, `job log` of a live job stops once output has paused this long.
LOG_IDLE_SECONDS = 0.5
# After the log stream ends the job has ended; allow the status a moment to catch up.
FINAL_STATUS_WAIT_SECONDS = 5.0


COMMAND_WIDTH = 60


def one_line(text: str, width: int = COMMAND_WIDTH) -> str:
    """A command as one table cell: whitespace runs folded, long ones shortened with '…'."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def build_run_request(session: Session, now: datetime | None = None) -> pb.RunJobRequest:
    """Translate ``job run`` arguments into the RunJobRequest (no network involved)."""
    args = session.args
    command = command_of(args)
    schedule = ""
    if args.schedule:
        try:
            schedule = parse_schedule(args.schedule, now or datetime.now(UTC))
        except ValueError as err:
            raise UsageError(str(err)) from None
    uploads = collect_uploads(args.uploads, args.upload_dirs)
    return pb.RunJobRequest(
        name=args.name,
        command=command[0],
        args=command[1:],
        max_cpu=args.max_cpu,
        cpu_cores=args.cpu_cores,
        max_memory=args.max_memory,
        max_iobps=args.max_iobps,
        uploads=[u.to_proto() for u in uploads],
        schedule=schedule,
        network=args.network,
        volumes=args.volumes,
        runtime=args.runtime,
        work_dir=args.workdir,
        environment=dict(args.env),
        secret_environment=dict(args.secret_env),
    )


def job_run(session: Session) -> int:
    request = build_run_request(session)
    response = session.client.run_job(request)
    if not session.args.follow:
        if session.json:
            print_json(response)
        else:
            pairs = message_pairs(response, always=("job_uuid", "status"))
            print_pairs(_joined_command(pairs, response.command, list(response.args)))
        return 0
    if not session.json:
        sys.stderr.write(f"job {response.job_uuid} {response.status}\n")
    _pump(session.client.job_logs(response.job_uuid), idle_seconds=None)
    return _exit_status(_final_status(session, response.job_uuid))


def job_log(session: Session) -> int:
    uuid: str = session.args.uuid
    idle: float | None = None
    if not session.args.follow:
        status = session.client.job_status(uuid)
        uuid = status.uuid or uuid
        if status.status not in ENDED:
            idle = LOG_IDLE_SECONDS
    _pump(session.client.job_logs(uuid), idle_seconds=idle)
    return 0


def _pump(stream: ServerStream[pb.DataChunk], idle_seconds: float | None) -> None:
    """Copy the stream's payloads to stdout. With ``idle_seconds``, stop (cancelling the call)
    once no data has arrived for that long; otherwise run until the server ends the stream."""
    if idle_seconds is None:
        try:
            for chunk in stream:
                write_output(chunk.payload)
        except KeyboardInterrupt:
            stream.cancel()
            raise
        return
    chunks: queue.Queue[bytes | grpc.RpcError | None] = queue.Queue()

    def reader() -> None:
        try:
            for chunk in stream:
                chunks.put(chunk.payload)
        except grpc.RpcError as err:
            chunks.put(err)
        finally:
            chunks.put(None)

    thread = threading.Thread(target=reader, name="joblet-log-reader", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = chunks.get(timeout=idle_seconds)
            except queue.Empty:
                break
            if item is None:
                break
            if isinstance(item, grpc.RpcError):
                raise item
            write_output(item)
    finally:
        stream.cancel()
        thread.join(timeout=2)


def _final_status(session: Session, uuid: str) -> pb.GetJobStatusResponse:
    deadline = time.monotonic() + FINAL_STATUS_WAIT_SECONDS
    status = session.client.job_status(uuid)
    while status.status not in ENDED and time.monotonic() < deadline:
        time.sleep(0.1)
        status = session.client.job_status(uuid)
    # stdout carries only the job's own output; the verdict goes to stderr.
    if session.json:
        sys.stderr.write(json.dumps(to_dict(status), separators=(",", ":")) + "\n")
    else:
        detail = f" ({status.message})" if status.message else ""
        sys.stderr.write(f"job {status.uuid} {status.status} exit {status.exit_code}{detail}\n")
    return status


def _exit_status(status: pb.GetJobStatusResponse) -> int:
    """The CLI's exit status for a finished job: its own exit code where that fits in 1-255,
    0 for COMPLETED, 1 for every other outcome (stopped, canceled, failed to start, ...)."""
    if 0 < status.exit_code < 256:
        return status.exit_code
    return 0 if status.status == "COMPLETED" else 1


def job_list(session: Session) -> int:
    jobs = session.client.list_jobs()
    if session.json:
        print_json(jobs)
        return 0
    print_table(
        ("UUID", "NAME", "STATUS", "EXIT", "START", "COMMAND"),
        (
            (
                job.uuid,
                job.name,
                job.status,
                job.exit_code if job.status in ENDED else None,
                job.start_time or job.scheduled_time,
                one_line(shlex.join([job.command, *job.args])),
            )
            for job in jobs
        ),
    )
    return 0


def job_status(session: Session) -> int:
    status = session.client.job_status(session.args.uuid)
    if session.json:
        print_json(status)
        return 0
    always = ["uuid", "status"] + (["exit_code"] if status.status in ENDED else [])
    pairs = message_pairs(status, always=always)
    print_pairs(_joined_command(pairs, status.command, list(status.args)))
    return 0


def _joined_command(
    pairs: list[tuple[str, object]], command: str, args: list[str]
) -> list[tuple[str, object]]:
    """Show command and args as one shell-quoted line, where the command was."""
    line = shlex.join([command, *args])
    return [("command", line) if k == "command" else (k, v) for k, v in pairs if k != "args"]


def job_stop(session: Session) -> int:
    response = session.client.stop_job(session.args.uuid)
    _show(session, response, ("uuid", "status"))
    return 0


def job_cancel(session: Session) -> int:
    response = session.client.cancel_job(session.args.uuid)
    _show(session, response, ("uuid", "status"))
    return 0


def job_delete(session: Session) -> int:
    response = session.client.delete_job(session.args.uuid)
    _show(session, response, ("uuid", "success"))
    return 0 if response.success else 1


def job_delete_all(session: Session) -> int:
    response = session.client.delete_all_jobs()
    if session.json:
        print_json(response)
    else:
        sys.stdout.write(
            f"deleted {response.deleted_count} job(s), skipped {response.skipped_count} "
            "running or scheduled\n"
        )
        if response.message:
            sys.stdout.write(response.message + "\n")
    return 0 if response.success else 1


def _show(session: Session, response: Message, always: tuple[str, ...]) -> None:
    if session.json:
        print_json(response)
    else:
        print_pairs(message_pairs(response, always=always))
