"""Installed runtimes on disk, and the `Attachment` that lends them to jobs.

Layout under the state directory:

    STATE/runtimes/NAME/runtime.json   the manifest plus install facts (source, size, time)
    STATE/runtimes/NAME/files/         the runtime's files (root-owned, read-only to jobs)
    STATE/runtimes/.staging/           installs in progress (cleared at start)
    STATE/runtimes/.trash/             removals in progress (cleared at start)

A runtime is installed exactly when `NAME/runtime.json` exists; installs are built in
`.staging` and renamed into place whole, removals renamed out whole, so a crash leaves
either the old state or the new, never half a runtime. Jobs get the manifest's mounts as
read-only binds and its environment; the store counts which jobs use which runtime so a
runtime in use is never removed or replaced under them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from node_agent.errors import FailedPrecondition, InvalidArgument, NotFound
from node_agent.isolation.plan import Mount
from node_agent.jobs.attachments import Contribution
from node_agent.jobs.model import JobRecord, JobSpec, Status
from node_agent.runtimes.manifest import Manifest
from node_agent.runtimes.spec import RuntimeSpec, SpecError, host_architecture, parse_spec
from node_agent.sys.files import read_json, write_json


@dataclass(frozen=True)
class Installed:
    manifest: Manifest
    path: str  # STATE/runtimes/NAME
    size_bytes: int
    installed_at: str
    source: str  # "local" or "github:owner/repo@branch:path"
    build_job_uuid: str = ""

    @property
    def files(self) -> str:
        return os.path.join(self.path, "files")

    @property
    def name(self) -> str:
        return self.manifest.name


def disk_usage(path: str) -> int:
    """Bytes allocated under `path`, like `du -s` (hard links counted once, links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            try:
                st = os.lstat(name)
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += st.st_blocks * 512
    return total


def parse_name(raw: str) -> RuntimeSpec:
    try:
        return parse_spec(raw)
    except SpecError as e:
        raise InvalidArgument(str(e)) from None


def unsupported(manifest: Manifest) -> str:
    """Why this host can't run the runtime, or ''."""
    archs = manifest.requirements.architectures
    here = host_architecture(platform.machine())
    if archs and here not in {host_architecture(a) for a in archs}:
        return f"it needs {'/'.join(archs)} and this node is {here}"
    if manifest.requirements.gpu:
        return "it needs a GPU and this node has none"
    return ""


class RuntimeStore:
    """The installed runtimes; also the "runtimes" attachment of the job manager."""

    name = "runtimes"

    def __init__(self, state_dir: str) -> None:
        self.root = os.path.join(state_dir, "runtimes")
        self.staging = os.path.join(self.root, ".staging")
        self.trash = os.path.join(self.root, ".trash")
        for d in (self.root, self.staging, self.trash):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self._clear(self.staging)
        self._clear(self.trash)
        self.installed: dict[str, Installed] = {}
        self.users: dict[str, set[str]] = {}  # runtime -> job uuids holding it
        self.busy: set[str] = set()  # names being installed or removed right now
        for name in sorted(os.listdir(self.root)):
            if not name.startswith("."):
                rt = self._load(name)
                if rt is not None:
                    self.installed[name] = rt

    @staticmethod
    def _clear(d: str) -> None:
        for entry in os.listdir(d):
            shutil.rmtree(os.path.join(d, entry), ignore_errors=True)

    def _load(self, name: str) -> Installed | None:
        path = os.path.join(self.root, name)
        try:
            d: dict[str, Any] = read_json(os.path.join(path, "runtime.json"))
            return Installed(
                manifest=Manifest.from_dict(d["manifest"]),
                path=path,
                size_bytes=disk_usage(path),  # measured, not trusted from the record
                installed_at=str(d["installed_at"]),
                source=str(d["source"]),
                build_job_uuid=str(d.get("build_job_uuid", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- queries ---------------------------------------------------------------------------

    def all(self) -> list[Installed]:
        return [self.installed[n] for n in sorted(self.installed)]

    def names(self) -> list[str]:
        """Installed runtimes, for the node's JobletNode (the registry's Inventory)."""
        return sorted(r.name for r in self.all())

    def get(self, name: str) -> Installed:
        rt = self.installed.get(name)
        if rt is None:
            known = ", ".join(sorted(self.installed)) or "none"
            raise NotFound(f"runtime {name!r} is not installed on this node (installed: {known})")
        return rt

    def in_use(self, name: str) -> int:
        return len(self.users.get(name, ()))

    # -- installing and removing (blocking file work: call from a thread) -------------------

    def new_staging(self, name: str) -> str:
        return tempfile.mkdtemp(prefix=f"{name}.", dir=self.staging)

    def activate(
        self,
        built: str,
        manifest: Manifest,
        *,
        source: str,
        build_job_uuid: str,
    ) -> Installed:
        """Move the finished `built` dir (holding files/) into place as `manifest.name`;
        a previous install of that name is replaced (the caller checked it is unused)."""
        files_size = disk_usage(os.path.join(built, "files"))
        installed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json(
            os.path.join(built, "runtime.json"),
            {
                "version": 1,
                "manifest": manifest.to_dict(),
                "files_bytes": files_size,
                "installed_at": installed_at,
                "source": source,
                "build_job_uuid": build_job_uuid,
            },
            0o644,
        )
        os.chmod(built, 0o755)
        final = os.path.join(self.root, manifest.name)
        old = None
        if os.path.exists(final):
            old = tempfile.mkdtemp(prefix=f"{manifest.name}.", dir=self.trash)
            os.rename(final, os.path.join(old, "rt"))
        os.rename(built, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        size = disk_usage(final)  # everything RemoveRuntime would free
        rt = Installed(manifest, final, size, installed_at, source, build_job_uuid)
        self.installed[manifest.name] = rt
        return rt

    def remove(self, name: str) -> int:
        """Delete an unused runtime; returns the bytes freed."""
        rt = self.get(name)
        if self.in_use(name):
            raise FailedPrecondition(
                f"runtime {name!r} is used by {self.in_use(name)} running job(s); "
                "remove it after they end"
            )
        freed = disk_usage(rt.path)
        doomed = tempfile.mkdtemp(prefix=f"{name}.", dir=self.trash)
        os.rename(rt.path, os.path.join(doomed, "rt"))
        del self.installed[name]
        shutil.rmtree(doomed, ignore_errors=True)
        return freed

    # -- the Attachment protocol --------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        if not spec.runtime:
            return
        rt = self.get(spec.runtime)
        why = unsupported(rt.manifest)
        if why:
            raise FailedPrecondition(f"runtime {spec.runtime!r} can't run here: {why}")

    async def acquire(self, spec: JobSpec) -> Contribution:
        if not spec.runtime:
            return Contribution()
        if spec.runtime in self.busy:
            raise FailedPrecondition(
                f"runtime {spec.runtime!r} is being installed or removed right now; try again"
            )
        rt = self.get(spec.runtime)
        contribution = Contribution(job_mounts(rt.manifest, rt.files), rt.manifest.job_env())
        self.users.setdefault(spec.runtime, set()).add(spec.uuid)
        return contribution

    async def release(self, uuid: str) -> None:
        for holders in self.users.values():
            holders.discard(uuid)

    async def recover(self, active: list[JobRecord]) -> None:
        for rec in active:
            if rec.spec.runtime and rec.status != Status.SCHEDULED:
                self.users.setdefault(rec.spec.runtime, set()).add(rec.uuid)


def job_mounts(manifest: Manifest, files_dir: str) -> tuple[Mount, ...]:
    """The manifest's mounts as read-only binds of the runtime's files. The files were
    written by a sandboxed build, so a source that is (or passes through) a link is refused:
    binding it would follow the link on the host."""
    files = os.path.realpath(files_dir)
    mounts = []
    for m in manifest.mounts:
        src = os.path.normpath(os.path.join(files, m.source))
        if not os.path.lexists(src):
            raise FailedPrecondition(
                f"runtime {manifest.name!r}: mount source {m.source!r} does not exist"
            )
        if os.path.realpath(src) != src:
            raise FailedPrecondition(
                f"runtime {manifest.name!r}: mount source {m.source!r} is a link; refusing it"
            )
        mounts.append(Mount("bind-ro", m.target, source=src))
    return tuple(mounts)


def normalise_tree(root: str) -> None:
    """After a sandboxed build: everything root-owned, readable by all, writable by none
    but root, no set-id bits. Links are never followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            st = os.lstat(name)
            os.lchown(name, 0, 0)
            if os.path.islink(name):
                continue
            if os.path.isdir(name):
                os.chmod(name, 0o755)
            elif os.path.isfile(name):
                os.chmod(name, 0o755 if st.st_mode & 0o100 else 0o644)
            else:
                os.unlink(name)  # sockets, FIFOs: nothing a runtime needs


def chown_tree(root: str, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            with contextlib.suppress(FileNotFoundError):
                os.lchown(name, uid, gid)
