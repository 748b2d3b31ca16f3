"""RunJobRequest validation: every bad input is refused with a message that says why."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from joblet.api import joblet_pb2 as pb
from node_agent import timefmt
from node_agent.errors import InvalidArgument
from node_agent.jobs.validate import Limits, clean_upload_path, parse_run_request

LIMITS = Limits(online_cpus=2, max_upload_bytes=1024)


def parse(**kw: object) -> object:
    return parse_run_request(pb.RunJobRequest(**kw), LIMITS)  # type: ignore[arg-type]


def test_minimal_request() -> None:
    spec = parse_run_request(pb.RunJobRequest(command="echo", args=["hi"]), LIMITS)
    assert spec.command == "echo" and spec.args == ("hi",)
    assert spec.work_dir == "/work" and len(spec.uuid) == 36


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"command": "  "}, "command is empty"),
        ({"command": "echo", "max_cpu": -1}, "max_cpu must not be negative"),
        ({"command": "echo", "max_memory": -5}, "max_memory must not be negative"),
        ({"command": "echo", "max_iobps": -5}, "max_iobps must not be negative"),
        ({"command": "echo", "max_cpu": 500}, "more than this node's 2 cores"),
        ({"command": "echo", "max_memory": 2}, "below the 4 MB minimum"),
        ({"command": "echo", "cpu_cores": "0-"}, "cpu_cores"),
        ({"command": "echo", "cpu_cores": "7"}, "cpu_cores"),
        ({"command": "echo", "cpu_cores": "a,b"}, "cpu_cores"),
        ({"command": "echo", "schedule": "tomorrow"}, "not an RFC3339 time"),
        ({"command": "echo", "schedule": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"command": "echo", "environment": {"1BAD": "x"}}, "not a valid variable name"),
        ({"command": "echo", "environment": {"A": "x"}, "secret_environment": {"A": "y"}}, "both"),
        ({"command": "echo", "job_uuid": "not-a-uuid"}, "is not a UUID"),
        ({"command": "echo", "network": "bad name"}, "network name 'bad name' is not valid"),
        ({"command": "echo", "volumes": ["../data"]}, "volume name '../data' is not valid"),
        ({"command": "echo", "volumes": ["a", "a"]}, "mounted at the same /volumes path"),
        ({"command": "echo", "volumes": ["a:x", "b:x"]}, "mounted at the same /volumes path"),
        ({"command": "echo", "volumes": ["a:../x"]}, "volume mount name '../x' is not valid"),
        ({"command": "echo", "runtime": "-python"}, "runtime name '-python' is not valid"),
        ({"command": "echo", "gpu_count": 1}, "no GPUs"),
        ({"command": "ec\x00ho"}, "NUL"),
    ],
)
def test_bad_requests(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        parse(**kw)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/etc/passwd", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("", "empty"),
        ("./", "names /work itself"),
    ],
)
def test_bad_upload_paths(path: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        clean_upload_path(path)


def test_upload_paths_normalised_and_ordered() -> None:
    req = pb.RunJobRequest(
        command="ls",
        uploads=[
            pb.FileUpload(path="d/sub/f.txt", content=b"x", mode=0o600),
            pb.FileUpload(path="./d", is_directory=True),
        ],
    )
    spec = parse_run_request(req, LIMITS)
    assert [u.path for u in spec.uploads] == ["d", "d/sub/f.txt"]
    assert spec.uploads[0].mode == 0o755 and spec.uploads[1].mode == 0o600


def test_upload_limits() -> None:
    big = pb.FileUpload(path="big", content=b"x" * 2000)
    with pytest.raises(InvalidArgument, match="more than this agent accepts"):
        parse_run_request(pb.RunJobRequest(command="ls", uploads=[big]), LIMITS)
    dup = [pb.FileUpload(path="a", content=b"1"), pb.FileUpload(path="./a", content=b"2")]
    with pytest.raises(InvalidArgument, match="given twice"):
        parse_run_request(pb.RunJobRequest(command="ls", uploads=dup), LIMITS)


def test_schedule_normalised_to_utc() -> None:
    when = timefmt.now() + timedelta(minutes=5)
    local = when.astimezone(timefmt.now().astimezone().tzinfo).isoformat()
    spec = parse_run_request(pb.RunJobRequest(command="true", schedule=local), LIMITS)
    assert spec.schedule.endswith("Z")
    assert abs((timefmt.parse(spec.schedule) - when).total_seconds()) < 1


def test_work_dir_relative_goes_under_work() -> None:
    spec = parse_run_request(pb.RunJobRequest(command="pwd", work_dir="src"), LIMITS)
    assert spec.work_dir == "/work/src"
    with pytest.raises(InvalidArgument, match=re.escape("'..'")):
        parse_run_request(pb.RunJobRequest(command="pwd", work_dir="/work/../etc"), LIMITS)


def test_client_chosen_uuid_is_kept() -> None:
    u = "3f2b0c6e-8a51-4d2e-9a7e-0d7e5a1f0b11"
    assert parse_run_request(pb.RunJobRequest(command="true", job_uuid=u), LIMITS).uuid == u


def test_volume_entries_may_name_their_mount() -> None:
    from node_agent.jobs.model import volume_ref

    spec = parse_run_request(
        pb.RunJobRequest(command="ls", volumes=["team-cache:cache", "data"]), LIMITS
    )
    assert [volume_ref(v) for v in spec.volumes] == [("team-cache", "cache"), ("data", "data")]
