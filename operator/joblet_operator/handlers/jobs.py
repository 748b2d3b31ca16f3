"""Job: one daemon per Job drives it towards its goal state, step by step, resuming from the
status it wrote last (so an operator restart continues where it stopped).

    Pending ──choose node──▶ Scheduled ──RunJob(uuid of attempt)──▶ Running ──▶ Succeeded
       ▲                                                              │       Failed, Stopped
       └────────────── attempt failed / node lost, attempts ≤ backoffLimit ◀───┘

The status (node, agent job UUID, attempt) is written BEFORE RunJob, and the UUID is derived
from the Job's UID and attempt, so a dispatch interrupted by a crash is repeated with the same
UUID and the agent returns the job it already has: exactly one agent job per attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import kopf

from joblet.api import joblet_pb2 as pb
from joblet_operator.context import Context, Placement
from joblet_operator.kube import JobResource, KubeError
from joblet_operator.model import (
    GROUP,
    VERSION,
    JobSpec,
    JobStatus,
    NodeView,
    agent_job_uuid,
    agent_volume_name,
)
from joblet_operator.phases import AGENT_FINAL, FINAL_PHASES, attempt_outcome, set_condition
from joblet_operator.scheduling import choose_node


def now_str() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@kopf.index(GROUP, VERSION, "jobletnodes")
def nodes_idx(body: kopf.Body, name: str, **_: Any) -> dict[str, NodeView]:
    return {name: NodeView.parse(body)}


def node_views(idx: kopf.Index[str, NodeView]) -> dict[str, NodeView]:
    return {name: next(iter(store)) for name, store in idx.items() if store}


class JobDriver:
    def __init__(
        self,
        ctx: Context,
        body: kopf.Body,
        name: str,
        namespace: str,
        uid: str,
        nodes: kopf.Index[str, NodeView],
        logger: kopf.Logger,
    ) -> None:
        self.ctx = ctx
        self.body = body
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.nodes = nodes
        self.logger = logger
        self.key = f"{namespace}/{name}"
        self.spec = JobSpec.parse(body["spec"])
        # this daemon is the only writer of the Job's status: its own copy is current
        self.status: dict[str, Any] = dict(body.get("status") or {})
        # the agent's last status we acted on; None = nothing known (a resumed daemon, or a
        # fresh dispatch): the next observation reports whatever the agent has, even "missing"
        self.agent_status: str | None = None

    # -- status -------------------------------------------------------------------------------

    @property
    def st(self) -> JobStatus:
        return JobStatus.parse(self.status)

    async def patch(self, event: tuple[str, str] | None = None, **changes: Any) -> None:
        self.status.update(changes)
        await self.ctx.kube.patch_status(JobResource, self.name, self.namespace, changes)
        if event:
            reason, message = event
            kopf.info(self.body, reason=reason, message=message)

    def condition(
        self, ctype: str, status: bool, reason: str, message: str
    ) -> list[dict[str, Any]]:
        conds = set_condition(
            self.status.get("conditions") or [], ctype, status, reason, message, now_str()
        )
        self.status["conditions"] = conds
        return conds

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stopped: kopf.DaemonStopped) -> None:
        st = self.st
        if st.phase in ("Scheduled", "Running"):
            self.logger.info(
                "resuming attempt %d (%s) on node %s", st.attempts, st.job_uuid, st.node
            )
        while not stopped:
            phase = self.st.phase
            if phase in FINAL_PHASES:
                self.ctx.placements.pop(self.key, None)
                await self.after_final(stopped)
                return
            if phase in ("", "Pending"):
                if not await self.schedule():
                    await stopped.wait(1.0)
                continue
            await self.follow(stopped)

    async def schedule(self) -> bool:
        st = self.st
        nodes = node_views(self.nodes)
        avoid = frozenset({st.node}) if st.node else frozenset()
        usage = self.ctx.usage()
        usage.pop(self.key, None)
        decision = choose_node(self.spec, self.namespace, list(nodes.values()), usage, avoid)
        if decision.node is None:
            if st.phase != "Pending" or st.message != decision.reason:
                await self.patch(
                    ("Unschedulable", decision.reason),
                    phase="Pending",
                    message=decision.reason,
                    conditions=self.condition("Scheduled", False, "Unschedulable", decision.reason),
                )
            return False
        try:
            request = await self.build_request(agent_job_uuid(self.uid, st.attempts + 1))
        except KubeError as e:
            if st.message != str(e):
                await self.patch(
                    ("ConfigError", str(e)),
                    phase="Pending",
                    message=str(e),
                    conditions=self.condition("Scheduled", False, "ConfigError", str(e)),
                )
            return False
        node = decision.node
        attempt = st.attempts + 1
        self.ctx.placements[self.key] = Placement(
            node.name, self.spec.max_cpu, self.spec.max_memory
        )
        await self.patch(
            ("Scheduled", f"attempt {attempt} on node {node.name}"),
            phase="Scheduled",
            node=node.name,
            jobUUID=request.job_uuid,
            attempts=attempt,
            message="",
            conditions=self.condition("Scheduled", True, "Scheduled", f"on node {node.name}"),
        )
        await self.dispatch(node, request)
        return True

    async def build_request(self, job_uuid: str) -> pb.RunJobRequest:
        s = self.spec
        secrets = {}
        for ref in s.secret_env:
            secrets[ref.env] = await self.ctx.kube.secret_value(self.namespace, ref.secret, ref.key)
        uploads = []
        for up in s.uploads:
            files = await self.ctx.kube.config_map_files(self.namespace, up.config_map)
            if up.key:
                if up.key not in files:
                    raise KubeError(
                        f"ConfigMap {self.namespace}/{up.config_map} has no key {up.key!r}"
                    )
                files = {up.key: files[up.key]}
            for key, content in sorted(files.items()):
                path = up.path if (up.key and up.path) else "/".join(p for p in (up.path, key) if p)
                uploads.append(
                    pb.FileUpload(
                        path=path,
                        content=content,
                        mode=0o755 if content.startswith(b"#!") else 0o644,
                    )
                )
        return pb.RunJobRequest(
            name=f"{self.namespace}-{self.name}",
            command=s.command,
            args=list(s.args),
            environment=dict(s.env),
            secret_environment=secrets,
            max_cpu=s.max_cpu,
            cpu_cores=s.cpu_cores,
            max_memory=s.max_memory,
            max_iobps=s.max_iobps,
            uploads=uploads,
            schedule=_future_or_empty(s.schedule),
            network=s.network,
            # the node knows the volume as "<namespace>-<name>"; the job sees /volumes/<name>
            volumes=[f"{agent_volume_name(self.namespace, v)}:{v}" for v in s.volumes],
            runtime=s.runtime,
            work_dir=s.work_dir,
            job_uuid=job_uuid,
        )

    async def dispatch(self, node: NodeView, request: pb.RunJobRequest) -> None:
        try:
            resp = await self.ctx.agents.jobs(node.address).RunJob(request, timeout=60)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self.logger.warning(
                    "node %s unreachable for RunJob; will retry: %s", node.name, e.details()
                )
                return  # stays Scheduled with its uuid: follow() re-dispatches the same attempt
            await self.attempt_ended("FAILED", -1, f"the node refused the job: {e.details()}")
            return
        # nothing is known after a dispatch: the job may already be final (a short job can end
        # before RunJob answers)
        self.agent_status = None
        if resp.status == "SCHEDULED" or resp.status in AGENT_FINAL:
            return
        if self.st.phase != "Running":
            await self.patch(
                ("Started", f"running on node {node.name} as {resp.job_uuid}"),
                phase="Running",
                startTime=self.status.get("startTime") or _agent_time(resp.start_time),
                conditions=self.condition("Running", True, "Started", f"on node {node.name}"),
            )

    async def follow(self, stopped: kopf.DaemonStopped) -> None:
        st = self.st
        nodes = node_views(self.nodes)
        node = nodes.get(st.node)
        if st.node and self.key not in self.ctx.placements:  # resumed after a restart
            self.ctx.placements[self.key] = Placement(
                st.node, self.spec.max_cpu, self.spec.max_memory
            )
        if node is None or not node.ready:
            await self.attempt_ended("FAILED", -1, "", node_lost=True)
            return
        if self.deadline_passed():
            await self.enforce_deadline(node)
            return
        job = await self.ctx.agents.observe(
            node.address, st.job_uuid, self.agent_status, timeout=1.0
        )
        if job is None:
            return
        self.agent_status = job.status
        if job.status == "":
            # not on the agent: the dispatch of this attempt never arrived; repeat it
            self.logger.info(
                "attempt %d is not on node %s: dispatching it again", st.attempts, node.name
            )
            await self.dispatch(node, await self.build_request(st.job_uuid))
            return
        if job.status in ("RUNNING", "STOPPING") and st.phase != "Running":
            await self.patch(
                ("Started", f"running on node {node.name}"),
                phase="Running",
                startTime=self.status.get("startTime") or _agent_time(job.start_time),
                conditions=self.condition("Running", True, "Started", f"on node {node.name}"),
            )
        elif job.status in AGENT_FINAL:
            await self.attempt_ended(
                job.status,
                job.exit_code,
                job.message,
                end_time=job.end_time,
                start_time=job.start_time,
            )

    def deadline_passed(self) -> bool:
        ads = self.spec.active_deadline_seconds
        started = parse_time(str(self.status.get("startTime", "")))
        return bool(ads and started and datetime.now(UTC) > started + timedelta(seconds=ads))

    async def enforce_deadline(self, node: NodeView) -> None:
        try:
            await self.ctx.agents.jobs(node.address).StopJob(
                pb.StopJobRequest(uuid=self.st.job_uuid), timeout=60
            )
        except grpc.aio.AioRpcError as e:
            if e.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                self.logger.warning(
                    "stopping %s on %s failed: %s", self.key, node.name, e.details()
                )
                return
        await self.attempt_ended("STOPPED", -1, "", deadline=True)

    async def attempt_ended(
        self,
        agent_status: str,
        exit_code: int,
        message: str,
        *,
        end_time: str = "",
        start_time: str = "",
        node_lost: bool = False,
        deadline: bool = False,
    ) -> None:
        st = self.st
        out = attempt_outcome(
            agent_status,
            exit_code,
            message,
            attempts=st.attempts,
            backoff_limit=self.spec.backoff_limit,
            deadline_exceeded=deadline,
            node_lost=node_lost,
        )
        self.agent_status = None
        changes: dict[str, Any] = {"phase": out.phase, "message": out.message}
        if out.exit_code is not None and not node_lost:
            changes["exitCode"] = out.exit_code
        if start_time and not self.status.get("startTime"):
            # it ran and ended between two observations: it never looked Running to us
            changes["startTime"] = _agent_time(start_time)
        if out.phase in FINAL_PHASES:
            self.ctx.placements.pop(self.key, None)
            changes["completionTime"] = _agent_time(end_time) or now_str()
            ok = out.phase == "Succeeded"
            changes["conditions"] = self.condition(
                "Complete" if ok else "Failed", True, out.reason, out.message
            )
            self.condition("Running", False, out.reason, out.message)
            changes["conditions"] = self.status["conditions"]
        else:
            changes["conditions"] = self.condition("Running", False, out.reason, out.message)
        kind = "Normal" if out.phase in ("Succeeded", "Pending") and not node_lost else "Warning"
        await self.patch(None, **changes)
        kopf.event(self.body, type=kind, reason=out.reason, message=out.message)

    async def after_final(self, stopped: kopf.DaemonStopped) -> None:
        ttl = self.spec.ttl_seconds_after_finished
        if ttl is None:
            return
        done = parse_time(str(self.status.get("completionTime", ""))) or datetime.now(UTC)
        wait = (done + timedelta(seconds=ttl) - datetime.now(UTC)).total_seconds()
        if wait > 0 and await stopped.wait(wait):
            return
        await self.ctx.kube.delete(JobResource, self.name, self.namespace)


def _future_or_empty(schedule: str) -> str:
    """A schedule already past (e.g. on a retry) means: now."""
    when = parse_time(schedule)
    return schedule if when and when > datetime.now(UTC) else ""


def _agent_time(text: str) -> str:
    t = parse_time(text)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


@kopf.daemon(GROUP, VERSION, "jobs", cancellation_timeout=10.0)
async def job_daemon(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    uid: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    ctx: Context = memo.ctx
    nodes_idx: kopf.Index[str, NodeView] = kwargs["nodes_idx"]
    assert namespace is not None  # Job is namespaced
    await JobDriver(ctx, body, name, namespace, uid, nodes_idx, logger).run(stopped)


@kopf.on.delete(GROUP, VERSION, "jobs")
async def job_deleted(
    status: kopf.Status,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """Stop the job on its node; if that node is gone or lost, there is nothing left to stop."""
    ctx: Context = memo.ctx
    nodes_idx: kopf.Index[str, NodeView] = kwargs["nodes_idx"]
    ctx.placements.pop(f"{namespace}/{name}", None)
    st = JobStatus.parse(status)
    if st.phase in FINAL_PHASES or not st.job_uuid:
        return
    node = node_views(nodes_idx).get(st.node)
    if node is None or not node.ready:
        logger.info("node %s is gone or lost; releasing %s/%s", st.node, namespace, name)
        return
    try:
        await ctx.agents.jobs(node.address).StopJob(pb.StopJobRequest(uuid=st.job_uuid), timeout=60)
    except grpc.aio.AioRpcError as e:
        if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            return
        raise kopf.TemporaryError(
            f"could not stop the job on {st.node}: {e.details()}", delay=2
        ) from e
