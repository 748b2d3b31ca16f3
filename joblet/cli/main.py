"""Entry point of the ``joblet`` CLI: parse, dispatch to a verb, turn failures into messages.

``main(argv)`` never calls ``sys.exit`` itself and prints only through ``sys.stdout`` and
``sys.stderr``, so tests run it in-process. Exit status: 0 success, 1 the server or the
environment said no (printed as ``error: CODE: details``), 2 the command line was wrong,
130 interrupted; ``job run --follow`` exits with the job's own code.
"""

from __future__ import annotations

import contextlib
import sys

import grpc

from joblet.cli import jobs, monitor, resources, workflows
from joblet.cli.output import print_json, print_table
from joblet.cli.parser import Handler, UsageError, build_parser
from joblet.cli.session import Session
from joblet.client import ClientError
from joblet.config import ConfigError
from joblet.uploads import UploadError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def nodes(session: Session) -> int:
    config = session.config
    if session.json:
        print_json(
            [
                {
                    "name": n.name,
                    "address": n.address,
                    "tls": n.tls is not None,
                    "default": n.name == config.default,
                }
                for n in config.nodes
            ]
        )
        return 0
    print_table(
        ("NAME", "ADDRESS", "SECURITY", "DEFAULT"),
        (
            (
                n.name,
                n.address,
                "mtls" if n.tls is not None else "plaintext",
                "yes" if n.name == config.default else "no",
            )
            for n in config.nodes
        ),
    )
    return 0


HANDLERS: dict[str, Handler] = {
    "job_run": jobs.job_run,
    "job_list": jobs.job_list,
    "job_status": jobs.job_status,
    "job_log": jobs.job_log,
    "job_stop": jobs.job_stop,
    "job_cancel": jobs.job_cancel,
    "job_delete": jobs.job_delete,
    "job_delete_all": jobs.job_delete_all,
    "workflow_run": workflows.workflow_run,
    "workflow_list": workflows.workflow_list,
    "workflow_status": workflows.workflow_status,
    "network_create": resources.network_create,
    "network_list": resources.network_list,
    "network_remove": resources.network_remove,
    "volume_create": resources.volume_create,
    "volume_list": resources.volume_list,
    "volume_remove": resources.volume_remove,
    "runtime_list": resources.runtime_list,
    "runtime_info": resources.runtime_info,
    "runtime_test": resources.runtime_test,
    "runtime_install": resources.runtime_install,
    "runtime_validate": resources.runtime_validate,
    "runtime_remove": resources.runtime_remove,
    "monitor_status": monitor.monitor_status,
    "monitor_watch": monitor.monitor_watch,
    "nodes": nodes,
}


def describe_rpc_error(err: grpc.RpcError, address: str | None = None) -> str:
    """``CODE: details`` for a failed call, with a hint when the agent cannot be reached."""
    if not isinstance(err, grpc.Call):
        return f"UNKNOWN: {err}"
    code = err.code()
    text = f"{code.name}: {err.details() or 'no details'}"
    if code == grpc.StatusCode.UNAVAILABLE and address:
        text += f" (is joblet-agent running at {address}?)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(HANDLERS)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    session = Session(args)
    handler: Handler = args.handler
    try:
        return handler(session)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"joblet: error: {err}\n")
        return EXIT_USAGE
    except grpc.RpcError as err:
        address = None
        with contextlib.suppress(ConfigError):
            address = session.node.address
        sys.stderr.write(f"error: {describe_rpc_error(err, address)}\n")
        return EXIT_ERROR
    except (ConfigError, ClientError, UploadError, workflows.WorkflowFileError) as err:
        sys.stderr.write(f"error: {err}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
