"""The ``joblet`` command line grammar: verbs, flags and their validation.

Kept apart from the handlers so tests can check parsing without any agent, and so the verbs
stay close to the existing Joblet CLI (DESIGN.md §3). Global options (``--node``, ``--config``,
``--json``) are accepted before the verb and after it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

Handler = Callable[..., int]

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIZE = re.compile(r"(\d+)\s*([MmGg][Bb]?)?")


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot see (exit status 2)."""


def env_pair(text: str) -> tuple[str, str]:
    """'KEY=VALUE' -> (KEY, VALUE); the value may be empty and may contain '='."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    if not _ENV_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(
            f"{key!r}: environment variable names are letters, digits and _, not starting "
            "with a digit"
        )
    return key, value


def memory_mb(text: str) -> int:
    """'512', '512M', '512MB', '2G' -> megabytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected megabytes, e.g. 512, 512M or 2G")
    value = int(match.group(1))
    unit = (match.group(2) or "M")[0].upper()
    return value * 1024 if unit == "G" else value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 0 or value > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 0 and 2147483647")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Add the global options; on sub-parsers they default to SUPPRESS so that a value given
    before the verb is not overwritten by the sub-parser's default."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--node", default=default(None), help="configured node to talk to")
    parser.add_argument(
        "--config",
        default=default(None),
        help="config file (default: $JOBLET_CONFIG or ~/.config/joblet/config.yaml)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON")


class _Builder:
    """Adds verbs with the global options attached and a handler to call."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers

    def verb(
        self, group: argparse._SubParsersAction[Any], name: str, handler: str, help_text: str
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = group.add_parser(name, help=help_text)
        _globals(parser, suppress=True)
        parser.set_defaults(handler=self.handlers[handler])
        return parser


def build_parser(handlers: dict[str, Handler]) -> argparse.ArgumentParser:
    """The full grammar; ``handlers`` maps handler names to the functions verbs call."""
    root = argparse.ArgumentParser(
        prog="joblet", description="Run and manage isolated jobs on Joblet agents."
    )
    _globals(root, suppress=False)
    nouns = root.add_subparsers(dest="noun", metavar="COMMAND", required=True)
    b = _Builder(handlers)

    job = nouns.add_parser("job", help="run and manage jobs")
    jobs = job.add_subparsers(dest="verb", metavar="VERB", required=True)
    _add_run(b.verb(jobs, "run", "job_run", "run a command as an isolated job"))
    for name, help_text in (
        ("status", "show one job"),
        ("stop", "stop a running job"),
        ("cancel", "cancel a scheduled job"),
        ("delete", "delete an ended job and its logs"),
    ):
        b.verb(jobs, name, f"job_{name}", help_text).add_argument("uuid", help="job UUID or prefix")
    log = b.verb(jobs, "log", "job_log", "print a job's output")
    log.add_argument("uuid", help="job UUID or prefix")
    log.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
    b.verb(jobs, "list", "job_list", "list jobs")
    b.verb(jobs, "delete-all", "job_delete_all", "delete every ended job")

    workflow = nouns.add_parser("workflow", help="run and inspect workflows")
    workflows = workflow.add_subparsers(dest="verb", metavar="VERB", required=True)
    wf_run = b.verb(workflows, "run", "workflow_run", "run a workflow from YAML")
    wf_run.add_argument("workflow", help="FILE.yaml or FILE.yaml:NAME")
    wf_list = b.verb(workflows, "list", "workflow_list", "list workflows")
    wf_list.add_argument("-a", "--all", action="store_true", help="include completed ones")
    b.verb(workflows, "status", "workflow_status", "show one workflow").add_argument("uuid")

    network = nouns.add_parser("network", help="manage job networks")
    networks = network.add_subparsers(dest="verb", metavar="VERB", required=True)
    net_create = b.verb(networks, "create", "network_create", "create a network")
    net_create.add_argument("name")
    net_create.add_argument("--cidr", required=True, help="e.g. 10.10.0.0/24")
    b.verb(networks, "list", "network_list", "list networks")
    b.verb(networks, "remove", "network_remove", "remove a network").add_argument("name")

    volume = nouns.add_parser("volume", help="manage volumes")
    volumes = volume.add_subparsers(dest="verb", metavar="VERB", required=True)
    vol_create = b.verb(volumes, "create", "volume_create", "create a volume")
    vol_create.add_argument("name")
    vol_create.add_argument(
        "--size", required=True, help='e.g. "1GB", "500MB", "64M" (binary units: 1GB = 1024 MB)'
    )
    vol_create.add_argument(
        "--type",
        choices=("filesystem", "memory"),
        default="filesystem",
        help="filesystem: an ext4 image kept on disk (default); memory: tmpfs in RAM, "
        "empty again after a host reboot",
    )
    b.verb(volumes, "list", "volume_list", "list volumes")
    b.verb(volumes, "remove", "volume_remove", "remove a volume").add_argument("name")

    runtime = nouns.add_parser("runtime", help="manage language runtimes")
    runtimes = runtime.add_subparsers(dest="verb", metavar="VERB", required=True)
    b.verb(runtimes, "list", "runtime_list", "list runtimes")
    b.verb(runtimes, "info", "runtime_info", "show one runtime").add_argument("runtime")
    b.verb(runtimes, "test", "runtime_test", "run a runtime's self-test").add_argument("runtime")
    install = b.verb(runtimes, "install", "runtime_install", "install a runtime")
    install.add_argument(
        "spec", help="runtime spec, e.g. python-3.11-ml, or a local recipe directory"
    )
    source = install.add_mutually_exclusive_group()
    source.add_argument("--repo", default="", help="GitHub owner/repo (agent default if unset)")
    source.add_argument("--from-dir", help="install from the files of a local directory")
    install.add_argument("--branch", default="", help="branch of --repo")
    install.add_argument("--path", default="", help="folder inside --repo")
    install.add_argument("--force", action="store_true", help="reinstall if present")
    b.verb(runtimes, "validate", "runtime_validate", "check a runtime spec").add_argument("spec")
    b.verb(runtimes, "remove", "runtime_remove", "remove a runtime").add_argument("runtime")

    monitor = nouns.add_parser("monitor", help="host metrics of a node")
    monitors = monitor.add_subparsers(dest="verb", metavar="VERB", required=True)
    b.verb(monitors, "status", "monitor_status", "one snapshot of the host")
    watch = b.verb(monitors, "watch", "monitor_watch", "stream host metrics")
    watch.add_argument("--interval", type=positive_int, default=5, help="seconds (default 5)")
    watch.add_argument("--metrics", default="", help="comma-separated metric types (default: all)")

    nodes = nouns.add_parser("nodes", help="list configured nodes")
    _globals(nodes, suppress=True)
    nodes.set_defaults(handler=handlers["nodes"], verb=None)
    return root


def _add_run(run: argparse.ArgumentParser) -> None:
    run.usage = "joblet job run [options] [--] COMMAND [ARG ...]"
    run.add_argument("--name", default="", help="job name")
    run.add_argument("--max-cpu", type=non_negative_int, default=0, help="percent of one core")
    run.add_argument("--max-memory", type=memory_mb, default=0, help="MB (or 512M, 2G)")
    run.add_argument("--max-iobps", type=non_negative_int, default=0, help="bytes per second")
    run.add_argument("--cpu-cores", default="", help='cpuset, e.g. "0-3" or "1,3"')
    run.add_argument("--network", default="", help="bridge, isolated, none or a network name")
    run.add_argument("--volume", action="append", default=[], dest="volumes", help="repeatable")
    run.add_argument("--upload", action="append", default=[], dest="uploads", help="repeatable")
    run.add_argument(
        "--upload-dir", action="append", default=[], dest="upload_dirs", help="repeatable"
    )
    run.add_argument("--runtime", default="", help="e.g. python-3.11-ml")
    run.add_argument("-e", "--env", action="append", type=env_pair, default=[], metavar="KEY=VAL")
    run.add_argument(
        "-s", "--secret-env", action="append", type=env_pair, default=[], metavar="KEY=VAL"
    )
    run.add_argument("--schedule", default="", help="RFC3339 time or delay: 30s, 5m, 1h30m, 1d")
    run.add_argument("--workdir", default="", help="working directory inside the job")
    run.add_argument(
        "-f", "--follow", action="store_true", help="stream output, exit with the job's code"
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="command and its arguments")


def command_of(args: argparse.Namespace) -> list[str]:
    """The job's command line from ``job run``: everything after the options, minus a
    leading ``--`` separator."""
    command: list[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("job run: missing the command to run")
    return command
