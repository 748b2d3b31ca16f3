"""Volumes on a real agent: loop-mounted ext4 images and tmpfs, seen by jobs at /volumes/NAME.

Every test leaves no mount and no loop device behind, also when it fails: the fixtures
unmount whatever is still mounted under their state directory and free loop devices bound
to its images.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from tests.support.agent import Agent
from tests.support.mounts import cleanup, loops_of, mounts_under

JOB_UID = 65532  # the agent's default job user


def vols(agent: Agent) -> pbg.VolumeServiceStub:
    agent.jobs  # noqa: B018 - opens the channel
    assert agent.channel is not None
    return pbg.VolumeServiceStub(agent.channel)


@pytest.fixture(scope="module")
def vagent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    state = str(tmp_path_factory.mktemp("vol") / "state")
    a = Agent(state, ("--stop-grace", "2"))
    try:
        a.start()
        yield a
    finally:
        a.stop()
        cleanup(state)
    assert not mounts_under(state) and not loops_of(state)


@pytest.fixture
def own_state(fresh_state: str) -> Iterator[str]:
    try:
        yield fresh_state
    finally:
        cleanup(fresh_state)
    assert not mounts_under(fresh_state) and not loops_of(fresh_state)


def create(agent: Agent, name: str, size: str, kind: str) -> pb.CreateVolumeResponse:
    return vols(agent).CreateVolume(pb.CreateVolumeRequest(name=name, size=size, type=kind))


def listed(agent: Agent) -> dict[str, pb.Volume]:
    return {v.name: v for v in vols(agent).ListVolumes(pb.EmptyRequest()).volumes}


def remove(agent: Agent, name: str) -> None:
    r = vols(agent).RemoveVolume(pb.RemoveVolumeRequest(name=name))
    assert r.success, r.message


def sh(agent: Agent, script: str, *volumes: str) -> tuple[pb.GetJobStatusResponse, str]:
    status, out = agent.run_to_end("sh", "-c", script, volumes=list(volumes))
    return status, out.decode(errors="replace")


def state_files(state_dir: str) -> dict[str, int]:
    """Files under the state dir, outside mounted volumes: path → bytes on disk."""
    out = {}
    mnt = os.path.join(state_dir, "volumes", "mnt")
    for root, dirs, files in os.walk(state_dir):
        if root == mnt:
            dirs.clear()
            continue
        for f in files:
            p = os.path.join(root, f)
            with contextlib.suppress(FileNotFoundError):
                out[p] = os.lstat(p).st_blocks * 512
    return out


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size", "kind"),
    [
        ("Upper", "64MB", "filesystem"),
        ("", "64MB", "filesystem"),
        ("../escape", "64MB", "filesystem"),
        ("x" * 64, "64MB", "memory"),
        ("okname", "", "filesystem"),
        ("okname", "lots", "filesystem"),
        ("okname", "-5MB", "memory"),
        ("okname", "1MB", "filesystem"),
        ("okname", "2TB", "filesystem"),
        ("okname", "900GB", "memory"),  # more than this host's memory
        ("okname", "64MB", "nfs"),
    ],
)
def test_bad_requests_create_nothing(vagent: Agent, name: str, size: str, kind: str) -> None:
    before = (sorted(os.listdir(os.path.join(vagent.state_dir, "volumes"))), listed(vagent))
    with pytest.raises(grpc.RpcError) as err:
        create(vagent, name, size, kind)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details()
    after = (sorted(os.listdir(os.path.join(vagent.state_dir, "volumes"))), listed(vagent))
    assert after == before
    assert os.path.join(os.path.realpath(vagent.state_dir), "volumes", "mnt", name) not in (
        mounts_under(vagent.state_dir)
    )


def test_unknown_and_duplicate(vagent: Agent) -> None:
    with pytest.raises(grpc.RpcError) as err:
        vagent.run("true", volumes=["nosuchvolume"])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        remove(vagent, "nosuchvolume")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    create(vagent, "dup", "8MB", "memory")
    try:
        with pytest.raises(grpc.RpcError) as err:
            create(vagent, "dup", "16MB", "filesystem")
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert listed(vagent)["dup"].type == "memory"
    finally:
        remove(vagent, "dup")


# -- filesystem volumes -----------------------------------------------------------------------


def test_filesystem_volume_keeps_data_and_cannot_grow(vagent: Agent) -> None:
    r = create(vagent, "fsdata", "16MB", "filesystem")
    assert (r.name, r.size, r.type) == ("fsdata", "16MB", "filesystem")
    try:
        assert mounts_under(r.path) == {os.path.realpath(r.path): "ext4"}
        image = os.path.join(vagent.state_dir, "volumes", "fsdata.img")
        assert os.path.getsize(image) == 16 << 20
        assert os.stat(image).st_blocks * 512 < 16 << 20  # sparse

        status, out = sh(
            vagent,
            "id -u; stat -c '%u %a' /volumes/fsdata; echo kept > /volumes/fsdata/note",
            "fsdata",
        )
        assert status.exit_code == 0, out
        assert out.split("\n")[:2] == [str(JOB_UID), f"{JOB_UID} 755"]

        status, out = sh(vagent, "cat /volumes/fsdata/note", "fsdata")
        assert (status.exit_code, out) == (0, "kept\n")

        status, out = sh(
            vagent, "dd if=/dev/zero of=/volumes/fsdata/big bs=1M count=64 2>&1", "fsdata"
        )
        assert status.exit_code != 0
        assert "No space left on device" in out
        assert os.path.getsize(image) == 16 << 20  # the image never grows
        v = listed(vagent)["fsdata"]
        assert 0 < v.size_bytes <= 16 << 20
        assert v.used_bytes > 8 << 20  # dd filled it
        assert v.job_count == 0
    finally:
        remove(vagent, "fsdata")
    assert "fsdata" not in listed(vagent)
    assert not os.path.exists(image)
    assert not mounts_under(r.path)
    assert not loops_of(image)


def test_remove_refused_while_a_running_job_uses_it(vagent: Agent) -> None:
    create(vagent, "busy", "8MB", "filesystem")
    job = vagent.run("sleep", "60", volumes=["busy"])
    try:
        assert listed(vagent)["busy"].job_count == 1
        with pytest.raises(grpc.RpcError) as err:
            remove(vagent, "busy")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert job.job_uuid in (err.value.details() or "")
        assert "busy" in listed(vagent)
    finally:
        vagent.jobs.StopJob(pb.StopJobRequest(uuid=job.job_uuid))
        vagent.wait(job.job_uuid)
    deadline = time.monotonic() + 5
    while listed(vagent)["busy"].job_count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listed(vagent)["busy"].job_count == 0
    remove(vagent, "busy")
    assert "busy" not in listed(vagent)


def test_job_sees_only_its_volumes(vagent: Agent) -> None:
    create(vagent, "mine", "8MB", "memory")
    create(vagent, "other", "8MB", "memory")
    try:
        status, out = sh(vagent, "ls /volumes", "mine")
        assert (status.exit_code, out) == (0, "mine\n")
        status, out = sh(vagent, "ls /volumes 2>&1 || echo none")
        assert "mine" not in out and "other" not in out
    finally:
        remove(vagent, "mine")
        remove(vagent, "other")


# -- memory volumes ---------------------------------------------------------------------------


def test_memory_volume_is_bounded_and_holds_nothing_on_disk(vagent: Agent) -> None:
    r = create(vagent, "scratch", "8MB", "memory")
    try:
        assert mounts_under(r.path) == {os.path.realpath(r.path): "tmpfs"}
        before = state_files(vagent.state_dir)
        status, out = sh(
            vagent,
            "dd if=/dev/urandom of=/volumes/scratch/blob bs=1M count=6 2>&1 && echo written",
            "scratch",
        )
        assert status.exit_code == 0 and "written" in out, out
        after = state_files(vagent.state_dir)
        grown = {p: after[p] - before.get(p, 0) for p in after if after[p] > before.get(p, 0)}
        assert sum(grown.values()) < 1 << 20, grown  # 6 MB went to RAM, not to disk
        v = listed(vagent)["scratch"]
        assert v.size_bytes == 8 << 20 and v.used_bytes >= 6 << 20

        status, out = sh(vagent, "wc -c < /volumes/scratch/blob", "scratch")
        assert out.strip() == str(6 << 20)  # a second job sees the first one's data

        status, out = sh(
            vagent, "dd if=/dev/zero of=/volumes/scratch/more bs=1M count=4 2>&1", "scratch"
        )
        assert status.exit_code != 0
        assert "No space left on device" in out
    finally:
        remove(vagent, "scratch")
    assert not mounts_under(r.path)


# -- restarts -----------------------------------------------------------------------------------


def test_every_mutation_survives_kill9_and_restart(own_state: str) -> None:
    a = Agent(own_state, ("--stop-grace", "2")).start()
    try:
        create(a, "keep", "16MB", "filesystem")
        create(a, "ram", "8MB", "memory")
        create(a, "gone", "8MB", "filesystem")
        status, out = sh(a, "echo disk > /volumes/keep/f; echo mem > /volumes/ram/f", "keep", "ram")
        assert status.exit_code == 0, out
        remove(a, "gone")
        long = a.run("sleep", "60", volumes=["keep"])

        a.kill9()
        a.start()
        vs = listed(a)
        assert set(vs) == {"keep", "ram"}
        assert (vs["keep"].size, vs["keep"].type, vs["ram"].size, vs["ram"].type) == (
            "16MB",
            "filesystem",
            "8MB",
            "memory",
        )
        assert vs["keep"].job_count == 1  # rebuilt from the still-running job
        with pytest.raises(grpc.RpcError) as err:
            remove(a, "keep")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        a.jobs.StopJob(pb.StopJobRequest(uuid=long.job_uuid))
        a.wait(long.job_uuid)

        # a plain agent restart unmounts nothing: both keep their data
        status, out = sh(a, "cat /volumes/keep/f /volumes/ram/f", "keep", "ram")
        assert (status.exit_code, out) == (0, "disk\nmem\n")

        # as after a host reboot: the mounts are gone; the agent mounts them again
        a.stop()
        for m in sorted(mounts_under(own_state), key=len, reverse=True):
            subprocess.run(["umount", m], check=True)
        a.start()
        mounted = mounts_under(own_state)
        assert sorted(mounted.values()) == ["ext4", "tmpfs"]
        status, out = sh(
            a, "cat /volumes/keep/f; ls -A /volumes/ram; touch /volumes/ram/ok", "keep", "ram"
        )
        assert (status.exit_code, out) == (0, "disk\n")  # tmpfs comes back empty, writable
        remove(a, "keep")
        remove(a, "ram")
        a.kill9()
        a.start()
        assert listed(a) == {}
        assert not mounts_under(own_state)
    finally:
        a.stop()


def test_leftovers_of_a_crash_are_cleaned_and_unreadable_definitions_kept(own_state: str) -> None:
    a = Agent(own_state).start()
    try:
        create(a, "precious", "8MB", "filesystem")
        a.stop()
        root = os.path.join(own_state, "volumes")
        # a create that died after formatting and mounting, before its definition was written
        with open(os.path.join(root, "ghost.img"), "wb") as f:
            f.truncate(8 << 20)
        os.makedirs(os.path.join(root, "mnt", "ghost"))
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "ghost", os.path.join(root, "mnt", "ghost")],
            check=True,
        )
        with open(os.path.join(root, "precious.json"), "w") as f:
            f.write("{not json")
        a.start()
        assert sorted(os.listdir(root)) == ["mnt", "precious.img", "precious.json"]
        assert os.listdir(os.path.join(root, "mnt")) == ["precious"]
        assert "unreadable" in a.log()
        assert listed(a) == {}
    finally:
        a.stop()
