"""Installing a runtime: fetch the recipe, check it, build it in a sandbox, activate it.

Install is an async stream of events (progress steps, the build's log lines, one result)
so the streaming RPCs forward it as it happens and the unary ones keep only the result.

The setup script never runs as host root: it runs as an ordinary job through the job
manager - the jobs' unprivileged user, fresh namespaces, cgroup caps on memory, CPU and
processes, seccomp, loopback-only network - with the recipe bound read-only at /src and
the runtime being built bound writable at /runtime. Nothing else of the host is writable.
Only when it succeeds is the result made root-owned and renamed into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import uuid as uuidlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from node_agent.config import AgentConfig
from node_agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, JobletError
from node_agent.isolation.plan import Mount
from node_agent.jobs.attachments import Contribution
from node_agent.jobs.manager import JobManager
from node_agent.jobs.model import JobSpec, Resources, Status
from node_agent.runtimes import archive
from node_agent.runtimes.archive import ArchiveError, RecipeFile
from node_agent.runtimes.manifest import MANIFEST_FILE, Manifest, ManifestError, parse_manifest
from node_agent.runtimes.store import (
    RuntimeStore,
    chown_tree,
    job_mounts,
    normalise_tree,
    parse_name,
    unsupported,
)

log = logging.getLogger(__name__)
BUILD_DIR = "/runtime"
SOURCE_DIR = "/src"
_background: set[asyncio.Future[Any]] = set()


@dataclass(frozen=True)
class Progress:
    message: str
    step: int
    total: int


@dataclass(frozen=True)
class LogData:
    data: bytes


@dataclass(frozen=True)
class Result:
    success: bool
    message: str
    name: str
    install_path: str = ""
    build_job_uuid: str = ""
    repository: str = ""
    resolved_path: str = ""


Event = Progress | LogData | Result


@dataclass(frozen=True)
class GithubSource:
    repository: str
    branch: str
    path: str


class Installer:
    def __init__(self, config: AgentConfig, store: RuntimeStore, manager: JobManager) -> None:
        self.config = config
        self.store = store
        self.manager = manager

    # -- entry points -------------------------------------------------------------------------

    async def from_local(
        self, raw_spec: str, files: list[RecipeFile], force: bool
    ) -> AsyncIterator[Event]:
        """Install from files sent in the request; with no spec, the name is the one in the
        recipe's runtime.yaml."""
        name = parse_name(raw_spec).name if raw_spec.strip() else _name_in(files)
        if not files:
            raise InvalidArgument(f"no files given; a runtime needs at least {MANIFEST_FILE}")
        try:
            archive.check_files(files)
        except ArchiveError as e:
            raise InvalidArgument(str(e)) from None
        self._claim(name, force)
        staging = ""
        try:
            staging = await asyncio.to_thread(self.store.new_staging, name)
            src = os.path.join(staging, "src")
            total_bytes = sum(len(f.content) for f in files)
            yield Progress(f"writing {len(files)} files ({total_bytes} bytes)", 1, 4)
            await asyncio.to_thread(archive.write_files, src, files)
            async for ev in self._build(name, staging, src, force, 2, 4, source="local"):
                yield ev
        finally:
            self._unclaim(name, staging)

    async def from_github(
        self, raw_spec: str, repository: str, branch: str, path: str, force: bool
    ) -> AsyncIterator[Event]:
        name = parse_name(raw_spec).name
        repository = repository.strip() or self.config.runtime_repository
        if not repository:
            raise InvalidArgument("repository is empty: give owner/repo")
        branch = branch.strip() or "main"
        try:
            url = archive.archive_url(self.config.runtime_archive_base, repository, branch)
        except ArchiveError as e:
            raise InvalidArgument(str(e)) from None
        sub = ""
        if path.strip() not in ("", ".", "/"):
            try:
                sub = archive.clean_file_path(path.strip().strip("/"))
            except ArchiveError as e:
                raise InvalidArgument(f"path: {e}") from None
        self._claim(name, force)
        staging = ""
        try:
            staging = await asyncio.to_thread(self.store.new_staging, name)
            tarball = os.path.join(staging, "archive.tar.gz")
            yield Progress(f"downloading {url}", 1, 5)
            try:
                size = await asyncio.to_thread(archive.download, url, tarball)
            except ArchiveError as e:
                raise FailedPrecondition(str(e)) from None
            yield Progress(f"unpacking {size} bytes", 2, 5)
            unpacked = os.path.join(staging, "unpacked")
            os.mkdir(unpacked, 0o755)
            try:
                await asyncio.to_thread(archive.extract, tarball, unpacked)
            except ArchiveError as e:
                raise InvalidArgument(f"{url}: {e}") from None
            os.unlink(tarball)
            top = archive.single_top_dir(unpacked)
            src, resolved = self._locate(top, sub, name)
            source = f"github:{repository}@{branch}:{resolved}"
            async for ev in self._build(name, staging, src, force, 3, 5, source=source):
                if isinstance(ev, Result):
                    ev = dataclasses.replace(ev, repository=repository, resolved_path=resolved)
                yield ev
        finally:
            self._unclaim(name, staging)

    @staticmethod
    def _locate(top: str, sub: str, name: str) -> tuple[str, str]:
        """The recipe folder inside the archive: `path` if given, else the archive's root,
        `NAME/` or `runtimes/NAME/` - the first holding a runtime.yaml."""
        candidates = [sub] if sub else [".", name, f"runtimes/{name}"]
        for c in candidates:
            folder = os.path.normpath(os.path.join(top, c))
            if os.path.realpath(folder) != folder:
                raise InvalidArgument(f"path {c!r} in the archive is a link")
            if os.path.isfile(os.path.join(folder, MANIFEST_FILE)):
                return folder, c
        tried = ", ".join(repr(c) for c in candidates)
        raise InvalidArgument(f"no {MANIFEST_FILE} in the archive at {tried}")

    # -- shared steps ----------------------------------------------------------------------------

    def _claim(self, name: str, force: bool) -> None:
        if name in self.store.busy:
            raise FailedPrecondition(f"runtime {name!r} is being installed or removed right now")
        if name in self.store.installed:
            if not force:
                raise AlreadyExists(
                    f"runtime {name!r} is already installed; use force_reinstall to replace it"
                )
            self._check_unused(name)
        self.store.busy.add(name)

    def _check_unused(self, name: str) -> None:
        if self.store.in_use(name):
            raise FailedPrecondition(
                f"runtime {name!r} is used by {self.store.in_use(name)} running job(s); "
                "reinstall it after they end"
            )

    def _unclaim(self, name: str, staging: str) -> None:
        self.store.busy.discard(name)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)

    async def _build(
        self, name: str, staging: str, src: str, force: bool, step: int, total: int, *, source: str
    ) -> AsyncIterator[Event]:
        yield Progress(f"checking {MANIFEST_FILE}", step, total)
        manifest = await asyncio.to_thread(self._read_manifest, src, name)
        built = os.path.join(staging, "runtime")
        files = os.path.join(built, "files")
        os.makedirs(built, 0o700)
        await asyncio.to_thread(shutil.copytree, src, files, symlinks=True)
        build_uuid = ""
        if manifest.setup:
            yield Progress(f"running {manifest.setup} in a build sandbox", step + 1, total)
            build_uuid = str(uuidlib.uuid4())
            outcome: list[tuple[Status, int, str]] = []
            async for ev in self._setup(manifest, build_uuid, src, files, outcome):
                yield ev
            status, code, message = outcome[0]
            if status != Status.COMPLETED:
                why = f": {message}" if message else ""
                yield Result(
                    False,
                    f"setup {manifest.setup} failed ({status}, exit {code}){why}",
                    name,
                    build_job_uuid=build_uuid,
                )
                return
        else:
            yield Progress("no setup script; the recipe's files are the runtime", step + 1, total)
        yield Progress("activating", step + 2, total)
        await asyncio.to_thread(normalise_tree, files)
        try:
            job_mounts(manifest, files)
        except JobletError as e:
            yield Result(False, e.message, name, build_job_uuid=build_uuid)
            return
        if force and name in self.store.installed:
            self._check_unused(name)
        rt = await asyncio.to_thread(
            self.store.activate, built, manifest, source=source, build_job_uuid=build_uuid
        )
        yield Result(
            True,
            f"runtime {name} installed ({rt.size_bytes} bytes)",
            name,
            install_path=rt.path,
            build_job_uuid=build_uuid,
        )

    def _read_manifest(self, src: str, name: str) -> Manifest:
        path = os.path.join(src, MANIFEST_FILE)
        if os.path.islink(path) or not os.path.isfile(path):
            raise InvalidArgument(f"the recipe has no {MANIFEST_FILE} at its top level")
        with open(path, "rb") as f:
            text = f.read(1 << 20)
        try:
            manifest = parse_manifest(text)
        except ManifestError as e:
            raise InvalidArgument(f"{MANIFEST_FILE}: {e}") from None
        if manifest.name != name:
            raise InvalidArgument(
                f"{MANIFEST_FILE} names the runtime {manifest.name!r}, "
                f"but it is being installed as {name!r}"
            )
        why = unsupported(manifest)
        if why:
            raise FailedPrecondition(f"runtime {name!r} can't be installed here: {why}")
        if manifest.setup:
            script = os.path.join(src, manifest.setup)
            if os.path.islink(script) or not os.path.isfile(script):
                raise InvalidArgument(
                    f"setup script {manifest.setup!r} is not a file in the recipe"
                )
        return manifest

    async def _setup(
        self,
        manifest: Manifest,
        build_uuid: str,
        src: str,
        files: str,
        outcome: list[tuple[Status, int, str]],
    ) -> AsyncIterator[Event]:
        cfg = self.config
        await asyncio.to_thread(chown_tree, files, cfg.job_uid, cfg.job_gid)
        script = f"{SOURCE_DIR}/{manifest.setup}"
        executable = os.access(os.path.join(src, manifest.setup), os.X_OK)
        spec = JobSpec(
            uuid=build_uuid,
            name=f"runtime-setup-{manifest.name}",
            command=script if executable else "/bin/sh",
            args=() if executable else (script,),
            env=(
                ("RUNTIME_DIR", BUILD_DIR),
                ("RUNTIME_NAME", manifest.name),
                ("RUNTIME_SOURCE", SOURCE_DIR),
            ),
            resources=Resources(
                max_cpu=cfg.runtime_setup_cpu_percent,
                max_memory_mb=cfg.runtime_setup_memory_mb,
            ),
        )
        internal = Contribution(
            mounts=(
                Mount("bind-ro", SOURCE_DIR, source=src),
                Mount("bind-rw", BUILD_DIR, source=files),
            )
        )
        rec = await self.manager.run(spec, internal=internal)
        try:
            async with asyncio.timeout(cfg.runtime_setup_timeout_s):
                async for data in self.manager.logs(build_uuid):
                    yield LogData(data)
                rec = await self.manager.wait_final(build_uuid)
        except TimeoutError:
            with contextlib.suppress(JobletError):
                await self.manager.stop(build_uuid)
            rec = self.manager.jobs[build_uuid]
            outcome.append(
                (Status.FAILED, rec.exit_code, f"timed out after {cfg.runtime_setup_timeout_s}s")
            )
            return
        finally:
            if not self.manager.jobs[build_uuid].status.is_final:
                # the client went away mid-build: don't leave the build running
                task = asyncio.ensure_future(self.manager.stop(build_uuid))
                _background.add(task)
                task.add_done_callback(_background.discard)
        outcome.append((rec.status, rec.exit_code, rec.message))


def _name_in(files: list[RecipeFile]) -> str:
    for f in files:
        if f.path == MANIFEST_FILE:
            try:
                return parse_manifest(f.content).name
            except ManifestError as e:
                raise InvalidArgument(f"{MANIFEST_FILE}: {e}") from None
    raise InvalidArgument(
        f"runtime_spec is empty and the files hold no {MANIFEST_FILE} to take the name from"
    )
