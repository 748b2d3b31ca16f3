"""The runtime store without root: installs appear whole, survive a reload, count their
users, refuse removal while used, and never bind a mount source that is a link."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from node_agent.errors import FailedPrecondition, NotFound
from node_agent.isolation.plan import Mount
from node_agent.jobs.model import JobRecord, JobSpec, Status
from node_agent.runtimes.manifest import parse_manifest
from node_agent.runtimes.store import RuntimeStore, disk_usage, job_mounts

YAML = "name: demo-1\nmounts: [{source: lib, target: /runtimes/demo-1/lib}]\nenvironment: {A: b}\n"


def build(store: RuntimeStore, tmp: Path, name: str = "demo-1") -> str:
    built = Path(store.new_staging(name)) / "runtime"
    (built / "files" / "lib").mkdir(parents=True)
    (built / "files" / "lib" / "x.py").write_text("x = 1\n" * 1000)
    return str(built)


def spec(uuid: str, runtime: str = "demo-1") -> JobSpec:
    return JobSpec(uuid=uuid, name="", command="true", args=(), runtime=runtime)


def test_activate_reload_users_and_remove(tmp_path: Path) -> None:
    store = RuntimeStore(str(tmp_path))
    manifest = parse_manifest(YAML)
    built = build(store, tmp_path)
    rt = store.activate(built, manifest, source="local", build_job_uuid="")
    assert not os.path.exists(built)  # renamed into place whole
    assert rt.size_bytes == disk_usage(rt.path) > 6000

    again = RuntimeStore(str(tmp_path))  # an agent restart
    assert [r.name for r in again.all()] == ["demo-1"]
    assert again.get("demo-1").manifest == manifest
    assert os.listdir(again.staging) == []  # leftovers of unfinished installs are cleared

    contribution = asyncio.run(again.acquire(spec("job-1")))
    lib = os.path.realpath(os.path.join(rt.path, "files", "lib"))
    assert contribution.mounts == (Mount("bind-ro", "/runtimes/demo-1/lib", source=lib),)
    assert contribution.env == (("A", "b"),)
    with pytest.raises(FailedPrecondition, match="used by 1 running job"):
        again.remove("demo-1")
    asyncio.run(again.release("job-1"))
    freed = again.remove("demo-1")
    assert freed > 6000 and not os.path.exists(rt.path)
    with pytest.raises(NotFound, match="not installed"):
        again.check(spec("job-2"))


def test_recover_counts_running_jobs_not_scheduled(tmp_path: Path) -> None:
    store = RuntimeStore(str(tmp_path))
    store.activate(build(store, tmp_path), parse_manifest(YAML), source="local", build_job_uuid="")
    running = JobRecord(spec("a"), Status.RUNNING, created_at="")
    scheduled = JobRecord(spec("b"), Status.SCHEDULED, created_at="")
    asyncio.run(store.recover([running, scheduled]))
    assert store.in_use("demo-1") == 1


def test_link_mount_sources_refused(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "lib").symlink_to("/etc")
    with pytest.raises(FailedPrecondition, match="is a link"):
        job_mounts(parse_manifest(YAML), str(files))
    (files / "lib").unlink()
    with pytest.raises(FailedPrecondition, match="does not exist"):
        job_mounts(parse_manifest(YAML), str(files))
    (files / "real").mkdir()
    (files / "lib").symlink_to("real")  # even a link that stays inside
    with pytest.raises(FailedPrecondition, match="is a link"):
        job_mounts(parse_manifest(YAML), str(files))
