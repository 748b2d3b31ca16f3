"""The agent's only conversation with the Kubernetes API server.

Thin on purpose: each method is one HTTP request through lightkube's async client, and every
failure comes out as one of two typed errors, so the heartbeat loop can tell "try again later"
(`KubeUnavailable`: connection refused, timeouts, 5xx, 429) from "this will not work until
someone fixes it" (`KubeRejected`: 401/403 from RBAC, 422 from the CRD schema, a missing CRD).
What to send is decided in `node.py`; when to send it in `heartbeat.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.generic_resource import create_global_resource
from lightkube.resources.coordination_v1 import Lease
from lightkube.types import PatchType

from node_agent.registry.node import GROUP, KIND, LEASE_NAMESPACE, PLURAL, VERSION

JobletNode = create_global_resource(GROUP, VERSION, KIND, PLURAL)
FIELD_MANAGER = "joblet-agent"

# lightkube's HTTP library logs every request at INFO: a line per heartbeat drowns the agent's
# own log. Failures still surface, as the heartbeat loop's warnings.
for _name in ("httpx", "httpx2", "httpcore", "httpcore2"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class KubeError(Exception):
    """A request to the API server did not succeed."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class KubeUnavailable(KubeError):
    """Transient: the API server is unreachable, overloaded or timed out."""


class KubeRejected(KubeError):
    """Permanent until fixed: forbidden, invalid, or the resource kind is not installed."""


class KubeConflict(KubeError):
    """The object already exists (create raced with someone) or changed under us."""


def load_config(kubeconfig: str = "", in_cluster: bool = False) -> KubeConfig:
    """Credentials from a kubeconfig file or the pod's service account."""
    try:
        if in_cluster:
            return KubeConfig.from_service_account()
        return KubeConfig.from_file(Path(kubeconfig))
    except (ConfigError, OSError) as e:
        raise KubeRejected(f"cannot load Kubernetes credentials: {e}") from e


class NodeApi:
    """JobletNode and Lease requests of one agent."""

    def __init__(self, config: KubeConfig) -> None:
        self._client = AsyncClient(config, field_manager=FIELD_MANAGER)

    async def close(self) -> None:
        await self._client.close()

    async def get_node(self, name: str) -> dict[str, Any] | None:
        try:
            return _as_dict(await self._client.get(JobletNode, name))
        except Exception as e:
            err = _typed(e)
            if err.code == 404 and not _kind_missing(e):
                return None
            raise err from e

    async def create_node(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return _as_dict(await self._client.create(JobletNode.from_dict(body)))
        except Exception as e:
            raise _typed(e) from e

    async def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        try:
            obj = await self._client.patch(JobletNode, name, patch, patch_type=PatchType.MERGE)
            return _as_dict(obj)
        except Exception as e:
            raise _typed(e) from e

    async def patch_node_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        try:
            obj = await self._client.patch(
                JobletNode.Status, name, {"status": status}, patch_type=PatchType.MERGE
            )
            return _as_dict(obj)
        except Exception as e:
            raise _typed(e) from e

    async def create_lease(self, body: dict[str, Any]) -> None:
        try:
            await self._client.create(cast(Lease, Lease.from_dict(body)))
        except Exception as e:
            raise _typed(e) from e

    async def patch_lease(self, name: str, patch: dict[str, Any]) -> None:
        """Renews; raises `KubeRejected` with code 404 when the Lease does not exist."""
        try:
            await self._client.patch(
                Lease, name, patch, namespace=LEASE_NAMESPACE, patch_type=PatchType.MERGE
            )
        except Exception as e:
            raise _typed(e) from e


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return dict(obj)
    out: dict[str, Any] = obj.to_dict()
    return out


def _kind_missing(e: Exception) -> bool:
    """A 404 for the resource type itself (CRD not installed), not for one object."""
    if not isinstance(e, ApiError):
        return False
    details = e.status.details
    return details is None or not details.name


def _typed(e: Exception) -> KubeError:
    """ApiError means the server answered; anything else raised by a request is the transport
    (refused, reset, TLS, timeout) and worth retrying."""
    if isinstance(e, ApiError):
        code = int(e.status.code or 0)
        message = f"{code} {e.status.reason or ''}: {e.status.message or e}"
        if code == 409:
            return KubeConflict(message, code)
        if code == 429 or code >= 500:
            return KubeUnavailable(message, code)
        if code == 404 and _kind_missing(e):
            return KubeRejected(f"{message} (is the JobletNode CRD installed?)", code)
        return KubeRejected(message, code)
    response = getattr(e, "response", None)
    code = int(getattr(response, "status_code", 0) or 0)
    if 400 <= code < 500 and code != 429:
        return KubeRejected(f"{code}: {e}", code)
    return KubeUnavailable(f"API server unreachable: {type(e).__name__}: {e}", code)
