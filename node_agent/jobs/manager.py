"""Job lifecycle: the one place that moves jobs between states.

It owns the in-memory index (rebuilt from disk at start), schedules future jobs, hands
launches to the fork server, watches supervisors through pidfds, and re-attaches to the
supervisors that outlived a previous agent. Blocking file work (uploads, deletes) runs
in threads; everything else is short and stays on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from node_agent import timefmt
from node_agent.config import AgentConfig
from node_agent.errors import FailedPrecondition, InvalidArgument, JobletError, NotFound
from node_agent.isolation.cgroups import detect, device_for_path
from node_agent.isolation.plan import (
    SYSTEM_DIRS,
    CgroupLimits,
    HostLayout,
    LaunchPlan,
    hostname_for,
    job_env,
    mask_values,
    root_mounts,
)
from node_agent.jobs.attachments import Attachment, Contribution
from node_agent.jobs.launcher import Launcher, supervisor_alive, supervisor_pid
from node_agent.jobs.model import JobRecord, JobSpec, Status
from node_agent.jobs.outcome import interpret
from node_agent.jobs.store import JobStore
from node_agent.state.logs import SegmentReader
from node_agent.state.paths import StatePaths
from node_agent.sys.files import read_json

log = logging.getLogger(__name__)
T = TypeVar("T")


def probe_host_layout() -> HostLayout:
    dirs, links = [], []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            links.append((d, os.readlink(d)))
        elif os.path.isdir(d):
            dirs.append(d)
    return HostLayout(tuple(dirs), tuple(links))


@dataclass
class _Live:
    """Per-job runtime handles (not persisted)."""

    changed: asyncio.Event
    timer: asyncio.TimerHandle | None = None
    pidfd: int = -1
    supervisor: int = 0


class JobManager:
    def __init__(self, config: AgentConfig, attachments: Sequence[Attachment] = ()) -> None:
        self.config = config
        self.attachments = tuple(attachments)
        self.state = StatePaths(config.state_dir)
        self.store = JobStore(self.state)
        self.launcher = Launcher()
        self.jobs: dict[str, JobRecord] = {}
        self.live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self.layout = probe_host_layout()
        self.cgroup_version = config.cgroup_version or detect(config.cgroup_root)
        self.io_device = device_for_path(config.state_dir)
        self.node_id = config.node_id
        # extra mounts/env of the agent's own jobs (runtime builds); memory only, never on
        # the wire, dropped once the job has launched
        self._internal: dict[str, Contribution] = {}

    # -- start / stop ------------------------------------------------------------------------

    async def start(self) -> None:
        self.launcher.start()
        for rec in self.store.load_all():
            self.jobs[rec.uuid] = rec
            self._live(rec.uuid)
        for rec in list(self.jobs.values()):
            await self._recover(rec)
        active = [r for r in self.jobs.values() if r.status.is_active]
        for a in self.attachments:
            await a.recover(active)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for live in self.live.values():
            if live.timer:
                live.timer.cancel()
            if live.pidfd >= 0:
                loop.remove_reader(live.pidfd)
                os.close(live.pidfd)
                live.pidfd = -1
        self.launcher.close()

    async def _recover(self, rec: JobRecord) -> None:
        paths = self.store.paths(rec.uuid)
        if rec.status == Status.SCHEDULED:
            self._arm(rec)
        elif rec.status in (Status.RUNNING, Status.STOPPING, Status.INITIALIZING, Status.PENDING):
            if supervisor_alive(paths):
                pid = supervisor_pid(paths)
                if pid is not None and self._watch(rec.uuid, pid):
                    if rec.status in (Status.INITIALIZING, Status.PENDING):
                        self._update(
                            rec.evolve(status=Status.RUNNING, start_time=self._started_at(rec))
                        )
                    log.info("re-attached to running job %s", rec.uuid)
                    return
            if os.path.exists(paths.exit):
                self._finalize(rec.uuid)
            else:
                self._fail(rec, "the agent restarted before the job's supervisor recorded it")

    def _started_at(self, rec: JobRecord) -> str:
        try:
            return str(
                read_json(os.path.join(self.store.paths(rec.uuid).run, "started.json"))["time"]
            )
        except (OSError, ValueError, KeyError):
            return rec.start_time or timefmt.now_str()

    # -- lookups -----------------------------------------------------------------------------

    def _live(self, uuid: str) -> _Live:
        live = self.live.get(uuid)
        if live is None:
            live = self.live[uuid] = _Live(asyncio.Event())
        return live

    def resolve(self, ref: str) -> JobRecord:
        ref = ref.strip()
        if not ref:
            raise InvalidArgument("job uuid is empty")
        if ref in self.jobs:
            return self.jobs[ref]
        matches = [u for u in self.jobs if u.startswith(ref)]
        if not matches:
            raise NotFound(f"job {ref!r} not found")
        if len(matches) > 1:
            raise InvalidArgument(
                f"job prefix {ref!r} is ambiguous: it matches {len(matches)} jobs"
            )
        return self.jobs[matches[0]]

    def list(self) -> list[JobRecord]:
        return sorted(self.jobs.values(), key=lambda r: r.created_at)

    def _fail(self, rec: JobRecord, message: str) -> JobRecord:
        """The job ended without an exit status of its own (exit code -1)."""
        return self._update(
            rec.evolve(
                status=Status.FAILED, exit_code=-1, end_time=timefmt.now_str(), message=message
            )
        )

    def _update(self, rec: JobRecord) -> JobRecord:
        self.jobs[rec.uuid] = rec
        self.store.save(rec)
        live = self._live(rec.uuid)
        live.changed.set()
        live.changed = asyncio.Event()
        return rec

    # -- run -----------------------------------------------------------------------------------

    async def run(self, spec: JobSpec, internal: Contribution | None = None) -> JobRecord:
        """Start (or schedule) a job. `internal` is for jobs the agent itself runs, such as
        a runtime's sandboxed build: mounts and environment no client can ask for."""
        existing = self.jobs.get(spec.uuid)
        if existing is not None:
            return existing  # idempotent: the same job_uuid never starts twice
        if internal is not None:
            if spec.schedule:
                raise InvalidArgument("an internal job can't be scheduled")
            self._internal[spec.uuid] = internal
        self._check_attachments(spec)
        # Once accepted, admission and launch finish even if the caller goes away: gRPC cancels
        # a handler whose client disconnects, and a launch cut short would leave a record in
        # INITIALIZING that every retry of the same job_uuid would return unchanged.
        now = timefmt.now_str()
        status = Status.SCHEDULED if spec.schedule else Status.INITIALIZING
        rec = JobRecord(
            spec, status, created_at=now, scheduled_time=spec.schedule, node_id=self.node_id
        )
        # registered before any await, so a concurrent RunJob of the same uuid finds it
        self.jobs[rec.uuid] = rec
        self._live(rec.uuid)
        return await asyncio.shield(self._spawn(self._admit(rec)))

    async def _admit(self, rec: JobRecord) -> JobRecord:
        spec = rec.spec
        try:
            await asyncio.to_thread(self._prepare_files, spec)
        except OSError as e:
            del self.jobs[rec.uuid]
            self._internal.pop(rec.uuid, None)
            self.store.delete(rec.uuid)
            raise InvalidArgument(f"uploads could not be written: {e}") from None
        self._update(rec)
        if rec.status == Status.SCHEDULED:
            if spec.secret_env:
                self.store.save_secrets(rec.uuid, spec.secret_env)
            self._arm(rec)
            return rec
        return await self._launch(rec, spec.secret_env)

    def _check_attachments(self, spec: JobSpec) -> None:
        """Every network, volume and runtime a job names must be provided by this node."""
        provided = {a.name for a in self.attachments}
        if spec.network not in ("", "none") and "networks" not in provided:
            raise NotFound(f"network {spec.network!r} does not exist on this node")
        if spec.volumes and "volumes" not in provided:
            raise NotFound(f"volume {spec.volumes[0]!r} does not exist on this node")
        if spec.runtime and "runtimes" not in provided:
            raise NotFound(f"runtime {spec.runtime!r} is not installed on this node")
        for a in self.attachments:
            a.check(spec)

    def _prepare_files(self, spec: JobSpec) -> None:
        paths = self.store.create_dirs(spec.uuid)
        uid, gid = self.config.job_uid, self.config.job_gid
        os.makedirs(paths.work, mode=0o755, exist_ok=True)
        os.chown(paths.work, uid, gid)
        for up in spec.uploads:
            target = os.path.join(paths.work, up.path)
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=0o755, exist_ok=True)
                os.chown(parent, uid, gid)
            if up.is_directory:
                os.makedirs(target, exist_ok=True)
            else:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(up.content)
            os.chown(target, uid, gid, follow_symlinks=False)
            os.chmod(target, up.mode)
        if spec.work_dir.startswith("/work/"):
            wd = os.path.join(paths.work, spec.work_dir[len("/work/") :])
            if not os.path.isdir(wd):
                os.makedirs(wd, mode=0o755, exist_ok=True)
                os.chown(wd, uid, gid)

    def plan(
        self,
        spec: JobSpec,
        secrets: tuple[tuple[str, str], ...],
        contributions: Sequence[Contribution] = (),
    ) -> LaunchPlan:
        paths = self.store.paths(spec.uuid)
        extra_mounts = tuple(m for c in contributions for m in c.mounts)
        extra_env = tuple(kv for c in contributions for kv in c.env)
        networks = [c.network for c in contributions if c.network is not None]
        hostname = hostname_for(spec.name, spec.uuid)
        r = spec.resources
        return LaunchPlan(
            uuid=spec.uuid,
            argv=(spec.command, *spec.args),
            env=job_env(
                extra_env + spec.env,
                secrets,
                uuid=spec.uuid,
                hostname=hostname,
                work_dir=spec.work_dir,
            ),
            mask=mask_values(secrets),
            hostname=hostname,
            uid=self.config.job_uid,
            gid=self.config.job_gid,
            work_dir=spec.work_dir,
            rootfs=self.state.rootfs_mountpoint,
            mounts=root_mounts(self.layout, paths.work, self.config.tmp_size_mb) + extra_mounts,
            limits=CgroupLimits(
                max_cpu=r.max_cpu,
                cpu_cores=r.cpu_cores,
                max_memory_mb=r.max_memory_mb,
                max_iobps=r.max_iobps,
                io_device=self.io_device if r.max_iobps else None,
                pids_max=self.config.pids_max,
            ),
            job_dir=paths.root,
            cgroup_root=self.config.cgroup_root,
            cgroup_version=self.cgroup_version,
            log_segment_bytes=self.config.log_segment_bytes,
            log_max_bytes=self.config.log_max_bytes,
            stop_grace=self.config.stop_grace_s,
            network=networks[0] if networks else None,
        )

    async def _launch(self, rec: JobRecord, secrets: tuple[tuple[str, str], ...]) -> JobRecord:
        if rec.status != Status.INITIALIZING:
            rec = self._update(rec.evolve(status=Status.INITIALIZING))
        try:
            internal = self._internal.pop(rec.uuid, None)
            contributions = [await a.acquire(rec.spec) for a in self.attachments]
            if internal is not None:
                contributions.append(internal)
            started = await self.launcher.launch(self.plan(rec.spec, secrets, contributions))
        except (JobletError, OSError, TimeoutError) as e:
            await self._release(rec.uuid)
            return self._fail(rec, f"could not start: {e}")
        rec = self.jobs[rec.uuid]
        rec = self._update(rec.evolve(status=Status.RUNNING, start_time=started.time))
        if not self._watch(rec.uuid, started.supervisor):
            self._finalize(rec.uuid)
        return self.jobs[rec.uuid]

    # -- scheduling ----------------------------------------------------------------------------

    def _arm(self, rec: JobRecord) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, (timefmt.parse(rec.scheduled_time) - timefmt.now()).total_seconds())
        live = self._live(rec.uuid)
        live.timer = loop.call_later(delay, lambda: self._spawn(self._fire(rec.uuid)))

    async def _fire(self, uuid: str) -> None:
        rec = self.jobs.get(uuid)
        if rec is None or rec.status != Status.SCHEDULED:
            return
        self._live(uuid).timer = None
        secrets = self.store.load_secrets(uuid)
        names = rec.spec.secret_names
        if names and (secrets is None or {k for k, _ in secrets} != set(names)):
            self._fail(rec, "could not start: the job's secret environment could not be read back")
            return
        await self._launch(rec, secrets or ())
        self.store.drop_secrets(uuid)

    # -- supervision ---------------------------------------------------------------------------

    def _watch(self, uuid: str, supervisor: int) -> bool:
        """Follow the supervisor's exit through a pidfd; False if it is already gone."""
        try:
            pidfd = os.pidfd_open(supervisor)
        except ProcessLookupError:
            return False
        if not supervisor_alive(self.store.paths(uuid)):
            os.close(pidfd)  # the PID was reused, or it ended between the two checks
            return False
        live = self._live(uuid)
        live.pidfd, live.supervisor = pidfd, supervisor
        loop = asyncio.get_running_loop()
        loop.add_reader(pidfd, self._on_supervisor_exit, uuid)
        return True

    def _on_supervisor_exit(self, uuid: str) -> None:
        live = self._live(uuid)
        loop = asyncio.get_running_loop()
        loop.remove_reader(live.pidfd)
        os.close(live.pidfd)
        live.pidfd = -1
        self._finalize(uuid)

    async def _release(self, uuid: str) -> None:
        for a in self.attachments:
            try:
                await a.release(uuid)
            except Exception:
                log.exception("%s: releasing job %s failed", a.name, uuid)

    def _finalize(self, uuid: str) -> None:
        rec = self.jobs[uuid]
        paths = self.store.paths(uuid)
        try:
            info = read_json(paths.exit)
        except (OSError, ValueError):
            self._spawn(self._release(uuid))
            self._fail(rec, "the job's supervisor ended without recording an outcome")
            return
        status, code, message = interpret(info)
        self._spawn(self._release(uuid))
        self._update(
            rec.evolve(
                status=status,
                exit_code=code,
                message=message,
                end_time=str(info.get("time") or timefmt.now_str()),
                start_time=rec.start_time or self._started_at(rec),
            )
        )

    async def wait_final(self, uuid: str, timeout: float | None = None) -> JobRecord:
        async def _wait() -> JobRecord:
            while True:
                rec = self.jobs[uuid]
                if rec.status.is_final:
                    return rec
                await self._live(uuid).changed.wait()

        return await asyncio.wait_for(_wait(), timeout)

    # -- stop / cancel / delete ------------------------------------------------------------------

    async def stop(self, ref: str) -> JobRecord:
        rec = self.resolve(ref)
        if rec.status == Status.SCHEDULED:
            return self._cancel_scheduled(rec, Status.STOPPED, "stopped before its scheduled start")
        if rec.status.is_final:
            raise FailedPrecondition(f"job {rec.uuid} has already ended ({rec.status})")
        if rec.status in (Status.INITIALIZING, Status.PENDING):
            while self.jobs[rec.uuid].status in (Status.INITIALIZING, Status.PENDING):
                await self._live(rec.uuid).changed.wait()
            rec = self.jobs[rec.uuid]
            if rec.status.is_final:
                return rec
        live = self._live(rec.uuid)
        if rec.status == Status.RUNNING:
            rec = self._update(rec.evolve(status=Status.STOPPING))
        if live.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(live.pidfd, signal.SIGTERM)
        return await self.wait_final(rec.uuid, self.config.stop_grace_s + 30)

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """A task the manager owns (kept referenced until done), not its caller."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_scheduled(self, rec: JobRecord, status: Status, message: str) -> JobRecord:
        live = self._live(rec.uuid)
        if live.timer:
            live.timer.cancel()
            live.timer = None
        self.store.drop_secrets(rec.uuid)
        return self._update(
            rec.evolve(status=status, end_time=timefmt.now_str(), exit_code=-1, message=message)
        )

    def cancel(self, ref: str) -> JobRecord:
        rec = self.resolve(ref)
        if rec.status != Status.SCHEDULED:
            hint = " (use StopJob for a running job)" if rec.status == Status.RUNNING else ""
            raise FailedPrecondition(
                f"only a SCHEDULED job can be canceled; job {rec.uuid} is {rec.status}{hint}"
            )
        return self._cancel_scheduled(rec, Status.CANCELED, "canceled before its scheduled start")

    async def delete(self, ref: str) -> JobRecord:
        rec = self.resolve(ref)
        if rec.status.is_active:
            raise FailedPrecondition(
                f"job {rec.uuid} is {rec.status}; stop or cancel it before deleting it"
            )
        await self._forget(rec.uuid)
        return rec

    async def _forget(self, uuid: str) -> None:
        del self.jobs[uuid]
        self.live.pop(uuid, None)
        await asyncio.to_thread(self.store.delete, uuid)

    async def delete_all(self) -> tuple[int, int]:
        deleted = skipped = 0
        for rec in list(self.jobs.values()):
            if rec.status.is_active:
                skipped += 1
            else:
                await self._forget(rec.uuid)
                deleted += 1
        return deleted, skipped

    # -- logs --------------------------------------------------------------------------------------

    async def logs(self, ref: str) -> AsyncIterator[bytes]:
        """Replay from the start, then follow until the job has ended and all is read."""
        rec = self.resolve(ref)
        uuid = rec.uuid
        reader = SegmentReader(self.store.paths(uuid).logs)
        idle = 0.001
        try:
            while True:
                data = reader.read()
                if data:
                    idle = 0.001
                    yield data
                    continue
                current = self.jobs.get(uuid)
                if current is None:
                    return  # deleted while being read
                if current.status.is_final:
                    data = reader.read()
                    if not data:
                        return
                    yield data
                    continue
                await asyncio.sleep(idle)
                idle = min(idle * 2, 0.05)
        finally:
            reader.close()
