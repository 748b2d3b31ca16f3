"""The operator's one module that talks to the Kubernetes API (besides Kopf's own watches):
status patches, Secret and ConfigMap reads at dispatch time, TTL deletes."""

from __future__ import annotations

import base64
from typing import Any

from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.core_v1 import ConfigMap, Secret
from lightkube.types import PatchType

from joblet_operator.model import GROUP, VERSION

JobResource = create_namespaced_resource(GROUP, VERSION, "Job", "jobs")
NetworkResource = create_global_resource(GROUP, VERSION, "Network", "networks")
VolumeResource = create_namespaced_resource(GROUP, VERSION, "Volume", "volumes")
RuntimeResource = create_global_resource(GROUP, VERSION, "Runtime", "runtimes")
NodeResource = create_global_resource(GROUP, VERSION, "JobletNode", "jobletnodes")


class KubeError(Exception):
    """An API call failed in a way a person should read (missing Secret, forbidden, ...)."""


class Kube:
    def __init__(self, kubeconfig: str | None) -> None:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        self.client = AsyncClient(config=config)

    async def close(self) -> None:
        await self.client.close()

    async def patch_status(
        self, resource: Any, name: str, namespace: str | None, status: dict[str, Any]
    ) -> None:
        """Merge-patch the status subresource (the server ignores spec changes through it)."""
        body = {"status": status}
        if namespace is None:
            await self.client.patch(resource.Status, name, body, patch_type=PatchType.MERGE)
        else:
            await self.client.patch(
                resource.Status, name, body, namespace=namespace, patch_type=PatchType.MERGE
            )

    async def delete(self, resource: Any, name: str, namespace: str | None) -> None:
        try:
            await self.client.delete(resource, name, namespace=namespace)
        except ApiError as e:
            if e.status.code != 404:
                raise

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        try:
            secret = await self.client.get(Secret, name, namespace=namespace)
        except ApiError as e:
            raise KubeError(f"Secret {namespace}/{name}: {e.status.message}") from None
        data = secret.data or {}
        if key not in data:
            raise KubeError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()

    async def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        try:
            secret = await self.client.get(Secret, name, namespace=namespace)
        except ApiError as e:
            raise KubeError(f"Secret {namespace}/{name}: {e.status.message}") from None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    async def config_map_files(self, namespace: str, name: str) -> dict[str, bytes]:
        try:
            cm = await self.client.get(ConfigMap, name, namespace=namespace)
        except ApiError as e:
            raise KubeError(f"ConfigMap {namespace}/{name}: {e.status.message}") from None
        files = {k: v.encode() for k, v in (cm.data or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (cm.binaryData or {}).items()})
        return files
