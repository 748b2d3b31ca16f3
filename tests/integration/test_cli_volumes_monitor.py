"""`joblet volume ...` and `joblet monitor ...` as a user types them, against a real agent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from joblet.cli.main import main
from tests.support.agent import REPO, Agent
from tests.support.mounts import cleanup, mounts_under


@pytest.fixture(scope="module")
def cagent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    state = str(tmp_path_factory.mktemp("clivol") / "state")
    a = Agent(state)
    try:
        a.start()
        yield a
    finally:
        a.stop()
        cleanup(state)


@pytest.fixture
def cli(cagent: Agent, tmp_path: Path) -> list[str]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"version: 1\ndefault: local\nnodes:\n  local:\n    address: {cagent.target}\n")
    return ["--config", str(cfg)]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_volume_create_list_use_remove(
    cli: list[str], capsys: pytest.CaptureFixture[str], cagent: Agent
) -> None:
    code, out, err = run_cli(capsys, *cli, "volume", "create", "clidata", "--size", "16MB")
    assert code == 0, err
    assert "name:" in out and "clidata" in out and "16MB" in out and "filesystem" in out
    code, out, _ = run_cli(
        capsys, *cli, "volume", "create", "cliram", "--size", "8M", "--type", "memory"
    )
    assert code == 0
    try:
        code, out, _ = run_cli(capsys, *cli, "volume", "list")
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "TYPE", "SIZE", "USED", "JOBS", "CREATED", "PATH"]
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert rows["clidata"][1:3] == ["filesystem", "16MB"]
        assert rows["cliram"][1:3] == ["memory", "8MB"]
        code, out, _ = run_cli(capsys, *cli, "--json", "volume", "list")
        assert {v["name"] for v in json.loads(out)} == {"clidata", "cliram"}

        code, out, _ = run_cli(
            capsys,
            *cli,
            "job",
            "run",
            "--follow",
            "--volume",
            "clidata",
            "--",
            "sh",
            "-c",
            "echo x > /volumes/clidata/y && cat /volumes/clidata/y",
        )
        assert (code, out) == (0, "x\n")

        code, _, err = run_cli(capsys, *cli, "volume", "create", "BAD", "--size", "1GB")
        assert code == 1 and err.startswith("error: INVALID_ARGUMENT: volume name")
    finally:
        for name in ("clidata", "cliram"):
            code, out, err = run_cli(capsys, *cli, "volume", "remove", name)
            assert code == 0, err
    code, _, err = run_cli(capsys, *cli, "volume", "remove", "clidata")
    assert code == 1 and "NOT_FOUND" in err
    assert not mounts_under(cagent.state_dir)


def test_monitor_status_reads_well(cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *cli, "monitor", "status")
    assert code == 0, err
    keys = [line.split(":", 1)[0] for line in out.splitlines()]
    for key in ("host", "node", "cpu", "memory", "disk /", "processes", "cloud", "agent"):
        assert key in keys, out
    code, out, _ = run_cli(capsys, *cli, "--json", "monitor", "status")
    assert json.loads(out)["available"] is True


def test_monitor_watch_prints_a_line_per_interval(cli: list[str]) -> None:
    argv = [sys.executable, "-m", "joblet.cli.main", *cli, "monitor", "watch", "--interval", "1"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines, arrivals = [], []
        for _ in range(2):
            lines.append(proc.stdout.readline().decode())
            arrivals.append(time.monotonic())
    finally:
        proc.terminate()
        proc.wait(10)
    assert all("cpu" in line and "mem" in line and "procs" in line for line in lines), lines
    assert arrivals[1] - arrivals[0] >= 0.5
    bad = subprocess.run(
        [*argv[:-2], "--metrics", "gpu"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr
