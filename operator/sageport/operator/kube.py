"""The one Kubernetes client adapter: server-side apply of children and status patches.

Reconcilers depend on the :class:`KubeApi` protocol only; tests of pure code never need it.
The official ``kubernetes`` client is synchronous, so calls run on a bounded thread pool; its
connection pool is sized to match so concurrent applies reuse keep-alive connections.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sageport.contract import API_VERSION, POD_SECURITY_ENFORCE_LABEL, Plural
from sageport.operator.election import LeaseConflictError

Manifest = dict[str, Any]

_CONCURRENCY = 16

# (apiVersion, kind) -> plural, for every kind the operator writes.
_PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("batch/v1", "Job"): "jobs",  # a TransformJob's
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",  # serverless variants; needs KEDA
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentications",  # async from zero
    (API_VERSION, "InstanceType"): Plural.INSTANCE_TYPES,  # cluster-scoped: the catalog sync
}
# Kinds the operator merge-patches but never applies or watches: a pipeline's anchor pods.
_PATCHED_PLURALS = {**_PLURALS, ("v1", "Pod"): "pods"}


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class KubeApi(Protocol):
    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply with the operator's field manager; returns the object as stored."""
        ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete a child if it exists."""
        ...

    async def create_event(self, event: Manifest) -> None:
        """Create a core/v1 Event (in the namespace of its metadata)."""
        ...

    async def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: Manifest
    ) -> None:
        """JSON-merge-patch the status subresource of a custom resource."""
        ...

    async def list_pods(self, namespace: str, label_selector: str) -> list[Manifest]:
        """Pods matching a label selector (filtered by the API server)."""
        ...

    async def create_pod(self, pod: Manifest) -> None:
        """Create a pod (a Serial pipeline's stage pod); one that exists already is left alone."""
        ...

    async def pod_security_levels(self) -> dict[str, str | None]:
        """Every namespace's Pod Security enforce label (None when it has none)."""
        ...

    async def pod_security_level(self, namespace: str) -> str | None:
        """One namespace's Pod Security enforce label, read now."""
        ...

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod if it exists."""
        ...

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Manifest,
        *,
        missing_ok: bool = False,
    ) -> None:
        """JSON-merge-patch one field of an object (a Job's ``suspend``, a pod's labels), leaving
        its other fields to apply; with ``missing_ok`` an object gone meanwhile is not an error."""
        ...


def _collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/{plural}" if namespace is None else f"{prefix}/namespaces/{namespace}/{plural}"


# Connections the API client keeps alive (sageport.kubeclient.load_api_client): one per call
# the thread pool runs at once.
API_CLIENT_POOL_SIZE = _CONCURRENCY


class KubernetesApi:
    """:class:`KubeApi` over the official client."""

    def __init__(self, api_client: client.ApiClient, field_manager: str) -> None:
        self._client = api_client
        self._field_manager = field_manager
        self._pool = ThreadPoolExecutor(max_workers=_CONCURRENCY, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    async def _call(
        self, method: str, path: str, body: Any, content_type: str, query: list[tuple[str, str]]
    ) -> Manifest:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self._call_sync, method, path, body, content_type, query
        )

    def _call_sync(
        self, method: str, path: str, body: Any, content_type: str, query: list[tuple[str, str]]
    ) -> Manifest:
        serialized = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*serialized[:4], _request_timeout=30)
            response.read()
        except ApiException as error:
            raise KubeError(error.status or 0, _reason(error)) from error
        except OSError as error:
            raise KubeError(0, str(error)) from error
        data: bytes = response.data or b""
        if response.status >= 300:
            raise KubeError(response.status, data.decode(errors="replace"))
        return json.loads(data) if data else {}

    async def apply(self, manifest: Manifest) -> Manifest:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        metadata = manifest["metadata"]
        plural = _PLURALS[api_version, kind]
        path = f"{_collection_path(api_version, plural, metadata.get('namespace'))}/{metadata['name']}"
        query = [("fieldManager", self._field_manager), ("force", "true")]
        return await self._call("PATCH", path, manifest, "application/apply-patch+yaml", query)

    async def create_event(self, event: Manifest) -> None:
        path = _collection_path("v1", "events", event["metadata"]["namespace"])
        await self._call("POST", path, event, "application/json", [])

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        path = f"{_collection_path(api_version, _PLURALS[api_version, kind], namespace)}/{name}"
        try:
            await self._call("DELETE", path, None, "application/json", [])
        except KubeError as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: Manifest
    ) -> None:
        path = f"{_collection_path(api_version, plural, namespace)}/{name}/status"
        try:
            await self._call("PATCH", path, {"status": status}, "application/merge-patch+json", [])
        except KubeError as error:
            if error.status != 404:  # deleted meanwhile: nothing left to report on
                raise

    async def list_pods(self, namespace: str, label_selector: str) -> list[Manifest]:
        path = _collection_path("v1", "pods", namespace)
        found = await self._call("GET", path, None, "application/json", [("labelSelector", label_selector)])
        return list(found.get("items") or [])

    async def pod_security_levels(self) -> dict[str, str | None]:
        found = await self._call("GET", "/api/v1/namespaces", None, "application/json", [])
        return {
            item["metadata"]["name"]: (item["metadata"].get("labels") or {}).get(POD_SECURITY_ENFORCE_LABEL)
            for item in found.get("items") or []
        }

    async def pod_security_level(self, namespace: str) -> str | None:
        found = await self._call("GET", f"/api/v1/namespaces/{namespace}", None, "application/json", [])
        level = (found.get("metadata", {}).get("labels") or {}).get(POD_SECURITY_ENFORCE_LABEL)
        return None if level is None else str(level)

    async def create_pod(self, pod: Manifest) -> None:
        path = _collection_path("v1", "pods", pod["metadata"]["namespace"])
        try:
            await self._call("POST", path, pod, "application/json", [("fieldManager", self._field_manager)])
        except KubeError as error:
            if error.status != 409:
                raise

    async def delete_pod(self, namespace: str, name: str) -> None:
        path = f"{_collection_path('v1', 'pods', namespace)}/{name}"
        try:
            await self._call("DELETE", path, None, "application/json", [])
        except KubeError as error:
            if error.status != 404:
                raise

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Manifest,
        *,
        missing_ok: bool = False,
    ) -> None:
        path = f"{_collection_path(api_version, _PATCHED_PLURALS[api_version, kind], namespace)}/{name}"
        query = [("fieldManager", self._field_manager)]
        try:
            await self._call("PATCH", path, patch, "application/merge-patch+json", query)
        except KubeError as error:
            if not (missing_ok and error.status == 404):
                raise

    async def list_cluster_objects(self, api_version: str, plural: str) -> list[Manifest]:
        """Every object of a cluster-scoped kind."""
        found = await self._call(
            "GET", _collection_path(api_version, plural, None), None, "application/json", []
        )
        return list(found.get("items") or [])

    async def get_lease(self, namespace: str, name: str) -> Manifest | None:
        path = f"{_collection_path('coordination.k8s.io/v1', 'leases', namespace)}/{name}"
        try:
            return await self._call("GET", path, None, "application/json", [])
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def write_lease(self, manifest: Manifest) -> Manifest:
        """Create the Lease, or replace it at the resourceVersion it carries (optimistic)."""
        metadata = manifest["metadata"]
        collection = _collection_path("coordination.k8s.io/v1", "leases", metadata["namespace"])
        try:
            if metadata.get("resourceVersion") is None:
                return await self._call("POST", collection, manifest, "application/json", [])
            return await self._call(
                "PUT", f"{collection}/{metadata['name']}", manifest, "application/json", []
            )
        except KubeError as error:
            if error.status == 409:  # created or updated by another candidate meanwhile
                raise LeaseConflictError(error.message) from error
            raise


def _reason(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
