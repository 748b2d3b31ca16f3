"""The ``joblet`` command line: how arguments reach RunJobRequest, and how bad ones are refused
(exit status 2) before any connection is made."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from joblet.api import joblet_pb2 as pb
from joblet.cli.jobs import build_run_request
from joblet.cli.main import HANDLERS, main
from joblet.cli.parser import UsageError, build_parser, env_pair, memory_mb
from joblet.cli.session import Session

# A node nothing listens on: any accidental connection attempt fails loudly.
CONFIG = "version: 1\nnodes:\n  dead:\n    address: 127.0.0.1:9\n"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(HANDLERS).parse_args(list(argv))


def run_request(*argv: str) -> tuple[argparse.Namespace, pb.RunJobRequest]:
    args = parse("job", "run", *argv)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return args, build_run_request(Session(args), now=now)


@pytest.mark.parametrize(
    ("argv", "command", "job_args"),
    [
        (["echo", "hello"], "echo", ["hello"]),
        (["--", "sh", "-c", "echo hi"], "sh", ["-c", "echo hi"]),
        (["sh", "-c", "echo hi"], "sh", ["-c", "echo hi"]),
        (["--name", "n", "--", "ls", "-l", "--", "x"], "ls", ["-l", "--", "x"]),
        (["python3", "--name", "not-ours"], "python3", ["--name", "not-ours"]),
        (["echo", "Hello, World!"], "echo", ["Hello, World!"]),
    ],
)
def test_command_forms(argv: list[str], command: str, job_args: list[str]) -> None:
    _, request = run_request(*argv)
    assert request.command == command
    assert list(request.args) == job_args


def test_all_run_flags_reach_the_request(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("f")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "g.txt").write_text("g")
    args, request = run_request(
        "--name", "build",
        "--max-cpu", "150",
        "--max-memory", "2G",
        "--max-iobps", "1048576",
        "--cpu-cores", "0-3",
        "--network", "isolated",
        "--volume", "data", "--volume", "cache",
        "--upload", str(tmp_path / "f.txt"),
        "--upload-dir", str(tmp_path / "d"),
        "--runtime", "python-3.11-ml",
        "-e", "A=1", "--env", "B=x=y", "-e", "EMPTY=",
        "-s", "TOKEN=t0p", "--secret-env", "PW=pw",
        "--schedule", "1h30m",
        "--workdir", "/work/sub",
        "-f",
        "make", "all",
    )  # fmt: skip
    assert args.follow
    assert request.name == "build"
    r = request
    assert (r.max_cpu, r.max_memory, r.max_iobps, r.cpu_cores) == (
        150,
        2048,
        1048576,
        "0-3",
    )
    assert r.network == "isolated"
    assert list(r.volumes) == ["data", "cache"]
    assert [u.path for u in r.uploads] == ["f.txt", "g.txt"]
    assert r.runtime == "python-3.11-ml"
    assert dict(r.environment) == {"A": "1", "B": "x=y", "EMPTY": ""}
    assert dict(r.secret_environment) == {"TOKEN": "t0p", "PW": "pw"}
    assert r.schedule == "2026-01-01T01:30:00Z"
    assert r.work_dir == "/work/sub"
    assert (r.command, list(r.args)) == ("make", ["all"])


def test_defaults_leave_limits_unset() -> None:
    _, r = run_request("true")
    assert (r.max_cpu, r.max_memory, r.max_iobps) == (0, 0, 0)
    assert r.schedule == "" and not r.uploads


def test_global_options_before_and_after_the_verb() -> None:
    before = parse("--node", "a", "--json", "job", "list")
    after = parse("job", "list", "--node", "a", "--json")
    neither = parse("job", "list")
    assert (before.node, before.json) == (after.node, after.json) == ("a", True)
    assert (neither.node, neither.json, neither.config) == (None, False, None)
    mixed = parse("--node", "a", "job", "status", "--json", "abc")
    assert (mixed.node, mixed.json, mixed.uuid) == ("a", True, "abc")


def test_other_verbs_parse() -> None:
    assert parse("job", "log", "-f", "abc").follow
    assert not parse("job", "log", "abc").follow
    assert parse("workflow", "list", "--all").all
    assert parse("network", "create", "n1", "--cidr", "10.1.0.0/24").cidr == "10.1.0.0/24"
    vol = parse("volume", "create", "v", "--size", "1GB", "--type", "memory")
    assert (vol.size, vol.type) == ("1GB", "memory")
    assert parse("volume", "create", "v", "--size", "1GB").type == "filesystem"
    install = parse("runtime", "install", "openjdk-21", "--repo", "o/r", "--force")
    assert (install.spec, install.repo, install.force) == ("openjdk-21", "o/r", True)
    assert parse("monitor", "watch", "--interval", "2").interval == 2
    assert parse("nodes").handler is HANDLERS["nodes"]


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("A=1", ("A", "1")),
        ("_x=", ("_x", "")),
        ("K=a=b", ("K", "a=b")),
        ("P1=sp ace", ("P1", "sp ace")),
    ],
)
def test_env_pair_good(text: str, pair: tuple[str, str]) -> None:
    assert env_pair(text) == pair


@pytest.mark.parametrize("text", ["A", "=1", "1A=x", "A-B=x", "A B=x", ""])
def test_env_pair_bad(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        env_pair(text)


@pytest.mark.parametrize(
    ("text", "mb"), [("512", 512), ("512M", 512), ("512MB", 512), ("2G", 2048), ("1gb", 1024)]
)
def test_memory_mb(text: str, mb: int) -> None:
    assert memory_mb(text) == mb


USAGE_ERRORS = [
    (["job", "run"], "missing the command"),
    (["job", "run", "--"], "missing the command"),
    (["job", "run", "-e", "NOVALUE", "true"], "expected KEY=VALUE"),
    (["job", "run", "-s", "1BAD=x", "true"], "environment variable names"),
    (["job", "run", "--max-cpu", "lots", "true"], "expected a whole number"),
    (["job", "run", "--max-cpu", "-5", "true"], "expected a whole number|between 0"),
    (["job", "run", "--max-memory", "1T", "true"], "expected megabytes"),
    (["job", "run", "--schedule", "later", "true"], "expected RFC3339"),
    (["job", "frobnicate"], "invalid choice"),
    (["job"], "required"),
    (["job", "status"], "required"),
    (["volume", "create", "v", "--size", "1GB", "--type", "nfs"], "invalid choice"),
    (["network", "create", "n"], "--cidr"),
    (["monitor", "watch", "--interval", "0"], "at least 1"),
    (["runtime", "install", "x", "--repo", "a/b", "--from-dir", "d"], "not allowed with"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS)
def test_usage_errors_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    assert main(["--config", str(config), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage:" in captured.err
    assert re.search(message, captured.err), captured.err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "run", "--help"]) == 0
    assert "--secret-env" in capsys.readouterr().out


def test_missing_command_is_a_usage_error_before_connecting() -> None:
    args = parse("job", "run")
    with pytest.raises(UsageError):
        build_run_request(Session(args))


def test_upload_error_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    code = main(["--config", str(config), "job", "run", "--upload", str(tmp_path / "no"), "x"])
    assert code == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_list_command_cell_is_one_line() -> None:
    from joblet.cli.jobs import one_line

    assert one_line("sh -c '\necho a\n  echo b\n'") == "sh -c ' echo a echo b '"
    long = one_line("x" * 200)
    assert len(long) == 60 and long.endswith("…")
