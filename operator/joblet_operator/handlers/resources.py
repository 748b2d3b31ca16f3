"""Network, Volume and Runtime: make each exist on every selected Ready node, including nodes
that join later, and remove it from them on deletion.

One daemon per object re-checks every few seconds against the node inventory the agents
publish (JobletNode.spec.networks/volumes/runtimes), calls the agent only where something is
missing, and writes per-node state. Deletion removes it from each Ready node; a node that
still runs jobs using it answers FAILED_PRECONDITION, and a condition says who it waits for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import kopf

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from joblet_operator.context import Context
from joblet_operator.handlers.jobs import node_views, now_str
from joblet_operator.kube import NetworkResource, RuntimeResource, VolumeResource
from joblet_operator.model import GROUP, VERSION, NodeView, agent_volume_name
from joblet_operator.phases import set_condition

RECHECK_S = 3.0


@dataclass(frozen=True)
class Kind:
    plural: str
    resource: Any
    inventory: str  # NodeView attribute listing what the node has

    def agent_name(self, name: str, namespace: str | None) -> str:
        return (
            agent_volume_name(namespace, name) if self.plural == "volumes" and namespace else name
        )


NETWORKS = Kind("networks", NetworkResource, "networks")
VOLUMES = Kind("volumes", VolumeResource, "volumes")
RUNTIMES = Kind("runtimes", RuntimeResource, "runtimes")


def selected(nodes: Mapping[str, NodeView], selector: Mapping[str, str]) -> list[NodeView]:
    return [
        n for n in nodes.values() if all(dict(n.labels).get(k) == v for k, v in selector.items())
    ]


async def ensure_on(
    ctx: Context,
    kind: Kind,
    node: NodeView,
    name: str,
    namespace: str | None,
    spec: Mapping[str, Any],
) -> None:
    """Create it on one node; raises grpc.aio.AioRpcError on refusal."""
    ch = ctx.agents.channel(node.address)
    agent_name = kind.agent_name(name, namespace)
    try:
        if kind is NETWORKS:
            await pbg.NetworkServiceStub(ch).CreateNetwork(
                pb.CreateNetworkRequest(name=agent_name, cidr=str(spec["cidr"])), timeout=60
            )
        elif kind is VOLUMES:
            await pbg.VolumeServiceStub(ch).CreateVolume(
                pb.CreateVolumeRequest(
                    name=agent_name,
                    size=str(spec["size"]),
                    type=str(spec.get("type", "filesystem")),
                ),
                timeout=120,
            )
        else:
            await _install_runtime(ctx, pbg.RuntimeServiceStub(ch), name, spec)
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


async def _install_runtime(
    ctx: Context, stub: pbg.RuntimeServiceAsyncStub, name: str, spec: Mapping[str, Any]
) -> None:
    source = spec.get("source") or {}
    if "github" in source:
        gh = source["github"]
        resp = await stub.InstallRuntimeFromGithub(
            pb.InstallRuntimeRequest(
                runtime_spec=name,
                repository=str(gh["repository"]),
                branch=str(gh.get("branch", "main")),
                path=str(gh.get("path", "")),
            ),
            timeout=900,
        )
    else:
        cm = source["configMap"]
        files = await ctx.kube.config_map_files(
            str(cm.get("namespace", "default")), str(cm["name"])
        )
        resp = await stub.InstallRuntimeFromLocal(
            pb.InstallRuntimeFromLocalRequest(
                runtime_spec=name,
                files=[
                    pb.RuntimeFile(
                        path=k.replace("__", "/"), content=v, executable=v.startswith(b"#!")
                    )
                    for k, v in sorted(files.items())
                ],
            ),
            timeout=900,
        )
    if resp.status != "completed":
        raise RuntimeError(resp.message or "installation failed")


async def remove_from(
    ctx: Context, kind: Kind, node: NodeView, name: str, namespace: str | None
) -> None:
    """Remove it from one node; NOT_FOUND is success, a refusal raises."""
    ch = ctx.agents.channel(node.address)
    agent_name = kind.agent_name(name, namespace)
    resp: pb.RemoveNetworkResponse | pb.RemoveVolumeResponse | pb.RemoveRuntimeResponse
    try:
        if kind is NETWORKS:
            resp = await pbg.NetworkServiceStub(ch).RemoveNetwork(
                pb.RemoveNetworkRequest(name=agent_name), timeout=60
            )
        elif kind is VOLUMES:
            resp = await pbg.VolumeServiceStub(ch).RemoveVolume(
                pb.RemoveVolumeRequest(name=agent_name), timeout=60
            )
        else:
            resp = await pbg.RuntimeServiceStub(ch).RemoveRuntime(
                pb.RemoveRuntimeRequest(runtime=agent_name), timeout=60
            )
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return
        raise
    if not resp.success:
        raise RuntimeError(resp.message or "removal refused")


async def reconcile(
    ctx: Context,
    kind: Kind,
    name: str,
    namespace: str | None,
    spec: Mapping[str, Any],
    status: dict[str, Any],
    nodes: Mapping[str, NodeView],
) -> dict[str, Any]:
    """One pass: returns the new status (per-node states and the Ready condition)."""
    per_node: dict[str, Any] = {}
    agent_name = kind.agent_name(name, namespace)
    for node in selected(nodes, spec.get("nodeSelector") or {}):
        if not node.ready:
            per_node[node.name] = {"ready": False, "message": "node is not Ready"}
            continue
        if agent_name in getattr(node, kind.inventory):
            per_node[node.name] = {"ready": True, "message": ""}
            continue
        try:
            await ensure_on(ctx, kind, node, name, namespace, spec)
            per_node[node.name] = {"ready": True, "message": "created"}
        except (grpc.aio.AioRpcError, RuntimeError) as e:
            detail = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
            per_node[node.name] = {"ready": False, "message": str(detail)}
    ready = bool(per_node) and all(v["ready"] for v in per_node.values())
    waiting = sorted(n for n, v in per_node.items() if not v["ready"])
    message = (
        "on all selected nodes"
        if ready
        else (f"not yet on {', '.join(waiting)}" if waiting else "no selected node")
    )
    conds = set_condition(
        status.get("conditions") or [],
        "Ready",
        ready,
        "Ensured" if ready else "Waiting",
        message,
        now_str(),
    )
    return {"nodes": per_node, "conditions": conds}


def _register(kind: Kind) -> None:
    @kopf.daemon(GROUP, VERSION, kind.plural, id=f"ensure-{kind.plural}", cancellation_timeout=5.0)
    async def ensure(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        status: kopf.Status,
        stopped: kopf.DaemonStopped,
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        ctx: Context = memo.ctx
        current = dict(status)
        while not stopped:
            new = await reconcile(
                ctx, kind, name, namespace, spec, current, node_views(kwargs["nodes_idx"])
            )
            if new["nodes"] != current.get("nodes") or new["conditions"] != current.get(
                "conditions"
            ):
                await ctx.kube.patch_status(kind.resource, name, namespace, new)
                current.update(new)
            await stopped.wait(RECHECK_S)

    @kopf.on.delete(GROUP, VERSION, kind.plural, id=f"remove-{kind.plural}")
    async def remove(
        name: str, namespace: str | None, status: kopf.Status, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        ctx: Context = memo.ctx
        agent_name = kind.agent_name(name, namespace)
        blocked = []
        for node in node_views(kwargs["nodes_idx"]).values():
            if not node.ready or agent_name not in getattr(node, kind.inventory):
                continue
            try:
                await remove_from(ctx, kind, node, name, namespace)
            except grpc.aio.AioRpcError as e:
                blocked.append(f"{node.name}: {e.details()}")
            except RuntimeError as e:
                blocked.append(f"{node.name}: {e}")
        if blocked:
            message = "waiting to remove: " + "; ".join(blocked)
            conds = set_condition(
                status.get("conditions") or [], "Deleting", True, "InUse", message, now_str()
            )
            await ctx.kube.patch_status(kind.resource, name, namespace, {"conditions": conds})
            raise kopf.TemporaryError(message, delay=3)


for _kind in (NETWORKS, VOLUMES, RUNTIMES):
    _register(_kind)
