"""``joblet network|volume|runtime ...``: the node-level resources jobs refer to by name."""

from __future__ import annotations

import os
import sys

from google.protobuf.message import Message

from joblet.api import joblet_pb2 as pb
from joblet.cli.output import (
    human_bytes,
    message_pairs,
    print_json,
    print_pairs,
    print_table,
    write_output,
)
from joblet.cli.session import Session
from joblet.client import ServerStream
from joblet.uploads import collect_uploads


def _show(session: Session, response: Message, always: tuple[str, ...] = ()) -> None:
    if session.json:
        print_json(response)
    else:
        print_pairs(message_pairs(response, always=always))


def _removal(session: Session, success: bool, message: str, response: Message) -> int:
    if session.json:
        print_json(response)
    elif success:
        sys.stdout.write(f"removed {session.args.name}\n" if not message else message + "\n")
    else:
        sys.stderr.write(f"error: {message or 'removal failed'}\n")
    return 0 if success else 1


# Networks ------------------------------------------------------------------------------------


def network_create(session: Session) -> int:
    _show(session, session.client.create_network(session.args.name, session.args.cidr))
    return 0


def network_list(session: Session) -> int:
    networks = session.client.list_networks()
    if session.json:
        print_json(networks)
    else:
        print_table(
            ("NAME", "CIDR", "BRIDGE", "JOBS"),
            ((n.name, n.cidr, n.bridge, n.job_count) for n in networks),
        )
    return 0


def network_remove(session: Session) -> int:
    response = session.client.remove_network(session.args.name)
    return _removal(session, response.success, response.message, response)


# Volumes -------------------------------------------------------------------------------------


def volume_create(session: Session) -> int:
    args = session.args
    _show(session, session.client.create_volume(args.name, args.size, args.type))
    return 0


def volume_list(session: Session) -> int:
    volumes = session.client.list_volumes()
    if session.json:
        print_json(volumes)
    else:
        print_table(
            ("NAME", "TYPE", "SIZE", "USED", "JOBS", "CREATED", "PATH"),
            (
                (v.name, v.type, v.size, _used(v), v.job_count, v.created_time, v.path)
                for v in volumes
            ),
        )
    return 0


def _used(v: pb.Volume) -> str:
    """Used space as the mounted filesystem reports it ("-" from agents that don't say)."""
    if not v.size_bytes:
        return "-"
    return f"{human_bytes(v.used_bytes)} ({100 * v.used_bytes / v.size_bytes:.0f}%)"


def volume_remove(session: Session) -> int:
    response = session.client.remove_volume(session.args.name)
    return _removal(session, response.success, response.message, response)


# Runtimes ------------------------------------------------------------------------------------


def runtime_list(session: Session) -> int:
    runtimes = session.client.list_runtimes()
    if session.json:
        print_json(runtimes)
    else:
        print_table(
            ("NAME", "LANGUAGE", "VERSION", "SIZE", "AVAILABLE", "DESCRIPTION"),
            (
                (
                    r.name,
                    r.language,
                    r.version,
                    human_bytes(r.size_bytes) if r.size_bytes else None,
                    "yes" if r.available else "no",
                    r.description,
                )
                for r in runtimes
            ),
        )
    return 0


def runtime_info(session: Session) -> int:
    response = session.client.runtime_info(session.args.runtime)
    if session.json:
        print_json(response)
    elif response.found:
        print_pairs(message_pairs(response.runtime, always=("name", "available")))
    else:
        sys.stderr.write(f"error: runtime {session.args.runtime!r} not found\n")
    return 0 if response.found else 1


def runtime_test(session: Session) -> int:
    response = session.client.test_runtime(session.args.runtime)
    if session.json:
        print_json(response)
    else:
        if response.output:
            sys.stdout.write(response.output.rstrip("\n") + "\n")
        if response.error:
            sys.stderr.write(response.error.rstrip("\n") + "\n")
        verdict = "passed" if response.success else "failed"
        sys.stderr.write(f"runtime test {verdict} (exit {response.exit_code})\n")
    return 0 if response.success else 1


def runtime_install(session: Session) -> int:
    args = session.args
    stream: ServerStream[pb.RuntimeInstallationChunk]
    spec, from_dir = args.spec, args.from_dir
    if not from_dir and not args.repo and os.path.isdir(spec):
        # `joblet runtime install ./recipe`: the name comes from the recipe's runtime.yaml
        spec, from_dir = "", spec
    if from_dir:
        entries = collect_uploads(dirs=[from_dir])
        files = [
            pb.RuntimeFile(path=e.path, content=e.content, executable=bool(e.mode & 0o111))
            for e in entries
            if not e.is_directory
        ]
        stream = session.client.install_runtime_from_local(
            pb.InstallRuntimeFromLocalRequest(
                runtime_spec=spec, files=files, force_reinstall=args.force
            )
        )
    else:
        stream = session.client.install_runtime_from_github(
            pb.InstallRuntimeRequest(
                runtime_spec=args.spec,
                repository=args.repo,
                branch=args.branch,
                path=args.path,
                force_reinstall=args.force,
            )
        )
    result: pb.RuntimeInstallationResult | None = None
    for chunk in stream:
        kind = chunk.WhichOneof("chunk")
        if kind == "progress":
            p = chunk.progress
            sys.stderr.write(f"[{p.step}/{p.total_steps}] {p.message}\n")
        elif kind == "log" and not session.json:
            write_output(chunk.log.data)
        elif kind == "result":
            result = chunk.result
    if result is None:
        sys.stderr.write("error: the installation ended without a result\n")
        return 1
    if session.json:
        print_json(result)
    else:
        print_pairs(message_pairs(result, always=("success", "runtime_spec")))
    return 0 if result.success else 1


def runtime_validate(session: Session) -> int:
    response = session.client.validate_runtime_spec(session.args.spec)
    _show(session, response, always=("valid",))
    return 0 if response.valid else 1


def runtime_remove(session: Session) -> int:
    response = session.client.remove_runtime(session.args.runtime)
    if session.json:
        print_json(response)
    elif response.success:
        freed = human_bytes(response.freed_space_bytes)
        sys.stdout.write(f"removed {session.args.runtime} (freed {freed})\n")
    else:
        sys.stderr.write(f"error: {response.message or 'removal failed'}\n")
    return 0 if response.success else 1
