"""The node's volumes: create, list, remove, and lend them to jobs.

`VolumeManager` is the "volumes" `Attachment` of the job manager. It loads every
definition in its constructor and mounts again whatever is missing (after a host reboot a
filesystem volume comes back with its data; a memory volume comes back empty, because
tmpfs lives in RAM — across a plain agent restart nothing is unmounted, so a memory volume
keeps its data). Leftovers of a create or remove interrupted by a crash (an image or
mount point without a definition) are cleaned away at the same time.

Use counts are in memory: a job counts from `acquire` (just before launch) until
`release`; `recover` rebuilds them from the jobs still running after an agent restart.
A volume in use cannot be removed. A scheduled job does not hold its volumes until it
starts; if one was removed meanwhile, that job fails to start with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

from node_agent import timefmt
from node_agent.config import AgentConfig
from node_agent.errors import AlreadyExists, FailedPrecondition, JobletError, NotFound
from node_agent.isolation.plan import Mount
from node_agent.jobs.attachments import Contribution
from node_agent.jobs.model import JobRecord, JobSpec, Status, volume_ref
from node_agent.sys.files import read_json, write_json
from node_agent.volumes import host
from node_agent.volumes.spec import VolumeDef, VolumePaths, check_name, parse_request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumeInfo:
    """A volume as ListVolumes reports it."""

    vol: VolumeDef
    path: str
    job_count: int
    total_bytes: int  # as the mounted filesystem reports it (0 if not mounted)
    used_bytes: int


class VolumeHostFailed(JobletError):
    code_name = "INTERNAL"


class VolumeManager:
    name = "volumes"

    def __init__(self, config: AgentConfig) -> None:
        self.uid, self.gid = config.job_uid, config.job_gid
        root = os.path.join(os.path.realpath(config.state_dir), "volumes")
        os.makedirs(root, mode=0o711, exist_ok=True)
        self.paths = VolumePaths(root)
        self.volumes: dict[str, VolumeDef] = {}
        self.busy: set[str] = set()  # being created or removed
        self.users: dict[str, set[str]] = {}  # volume → job uuids
        self.held: dict[str, tuple[str, ...]] = {}  # job uuid → volumes
        self._load()

    # -- start-up ----------------------------------------------------------------------------

    def _load(self) -> None:
        for entry in sorted(os.listdir(self.paths.root)):
            if not entry.endswith(".json"):
                continue
            try:
                vol = VolumeDef.from_json(read_json(os.path.join(self.paths.root, entry)))
            except (OSError, ValueError, KeyError, JobletError) as e:
                log.error("volume definition %s is unreadable, skipped: %s", entry, e)
                continue
            self.volumes[vol.name] = vol
        self._clean_leftovers()
        for vol in self.volumes.values():
            if not host.is_mounted(self.paths.mount_point(vol.name)):
                try:
                    host.mount(vol, self.paths, self.uid, self.gid)
                    log.info("mounted volume %s again (%s)", vol.name, vol.kind)
                except (host.VolumeHostError, OSError) as e:
                    log.error("volume %s could not be mounted: %s", vol.name, e)

    def _clean_leftovers(self) -> None:
        """Images and mount points with no definition file at all are what a crash in the
        middle of a create or remove left. (A definition that exists but can't be read
        keeps its data: that needs a person, not a delete.)"""
        names: set[str] = set()
        defined: set[str] = set()
        for entry in os.listdir(self.paths.root):
            if entry.endswith(".img"):
                names.add(entry[: -len(".img")])
            elif entry.endswith(".json"):
                defined.add(entry[: -len(".json")])
        if os.path.isdir(self.paths.mnt_root):
            names.update(os.listdir(self.paths.mnt_root))
        for name in names - defined:
            log.warning("removing leftovers of volume %s (no definition)", name)
            try:
                host.destroy(name, self.paths)
            except (host.VolumeHostError, OSError) as e:
                log.error("leftovers of volume %s stay: %s", name, e)

    # -- the API -----------------------------------------------------------------------------

    async def create(self, name: str, size: str, kind: str) -> VolumeInfo:
        vol = parse_request(name, size, kind, timefmt.now_str(), host.memory_total())
        if vol.name in self.volumes or vol.name in self.busy:
            raise AlreadyExists(f"volume {vol.name!r} already exists")
        self.busy.add(vol.name)
        try:
            await asyncio.to_thread(self._create, vol)
        finally:
            self.busy.discard(vol.name)
        self.volumes[vol.name] = vol
        log.info("created %s volume %s (%s)", vol.kind, vol.name, vol.size)
        return self.info(vol.name)

    def _create(self, vol: VolumeDef) -> None:
        try:
            host.create(vol, self.paths, self.uid, self.gid)
            write_json(self.paths.definition(vol.name), vol.to_json(), 0o644)
        except (host.VolumeHostError, OSError) as e:
            with contextlib.suppress(host.VolumeHostError, OSError):
                host.destroy(vol.name, self.paths)
            raise VolumeHostFailed(f"volume {vol.name!r} could not be created: {e}") from None

    def info(self, name: str) -> VolumeInfo:
        vol = self.volumes[name]
        path = self.paths.mount_point(name)
        total = used = 0
        if host.is_mounted(path):
            total, used = host.usage(path)
        return VolumeInfo(vol, path, len(self.users.get(name, ())), total, used)

    def all(self) -> list[VolumeInfo]:
        return [self.info(n) for n in sorted(self.volumes)]

    def names(self) -> list[str]:
        """Defined volumes, for the node's JobletNode (the registry's Inventory)."""
        return sorted(self.volumes)

    async def remove(self, name: str) -> None:
        check_name(name)
        if name not in self.volumes or name in self.busy:
            if name in self.busy:
                raise FailedPrecondition(f"volume {name!r} is being created or removed")
            raise NotFound(f"volume {name!r} does not exist")
        users = self.users.get(name)
        if users:
            raise FailedPrecondition(
                f"volume {name!r} is in use by {len(users)} running job(s): "
                + ", ".join(sorted(users))
            )
        self.busy.add(name)
        try:
            await asyncio.to_thread(self._remove, name)
            del self.volumes[name]
        finally:
            self.busy.discard(name)
        log.info("removed volume %s", name)

    def _remove(self, name: str) -> None:
        try:
            host.unmount(name, self.paths)
            os.unlink(self.paths.definition(name))  # from here on it is gone
            host.destroy(name, self.paths)
        except (host.VolumeHostError, OSError) as e:
            raise FailedPrecondition(f"volume {name!r} could not be removed: {e}") from None

    # -- the Attachment protocol -------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        for name, _ in map(volume_ref, spec.volumes):
            if name not in self.volumes or name in self.busy:
                raise NotFound(f"volume {name!r} does not exist on this node")

    async def acquire(self, spec: JobSpec) -> Contribution:
        self.check(spec)
        refs = [volume_ref(v) for v in spec.volumes]
        for name, _ in refs:
            if not host.is_mounted(self.paths.mount_point(name)):
                raise FailedPrecondition(f"volume {name!r} is not mounted (see the agent log)")
        self._hold(spec.uuid, tuple(name for name, _ in refs))
        return Contribution(
            mounts=tuple(
                Mount("bind-rw", f"/volumes/{mount}", source=self.paths.mount_point(name))
                for name, mount in refs
            )
        )

    def _hold(self, uuid: str, names: tuple[str, ...]) -> None:
        if not names:
            return
        self.held[uuid] = names
        for n in names:
            self.users.setdefault(n, set()).add(uuid)

    async def release(self, uuid: str) -> None:
        for n in self.held.pop(uuid, ()):
            users = self.users.get(n)
            if users is not None:
                users.discard(uuid)
                if not users:
                    del self.users[n]

    async def recover(self, active: list[JobRecord]) -> None:
        for rec in active:
            if rec.status != Status.SCHEDULED:
                names = (volume_ref(v)[0] for v in rec.spec.volumes)
                self._hold(rec.uuid, tuple(n for n in names if n in self.volumes))
