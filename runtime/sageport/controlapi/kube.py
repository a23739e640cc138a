"""The Kubernetes shell of the control-plane API: watches that fill the :class:`Store`, and the
writes (create, delete, merge-patch) through the API server with strict field validation, so a
member the CRDs cannot hold is refused, never silently dropped.

Like the gateway's watches, the official client is synchronous: watches run on daemon threads
and writes on worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from sageport import contract
from sageport.controlapi.names import KINDS, Kind
from sageport.controlapi.service import KubeRefusalError, Store
from sageport.gateway.kube import Watcher
from sageport.kubeclient import load_api_client
from sageport.net.awserrors import service_unavailable

log = logging.getLogger("sageport.controlapi.kube")

_WRITE_TIMEOUT = 10.0
_API_CONNECTIONS = 16
# How long an RBAC decision on a read is reused: a grant shows within 5 s, a revocation within 30 s.
_ALLOWED_SECONDS = 30.0
_DENIED_SECONDS = 5.0


def _refusal(error: ApiException) -> KubeRefusalError:
    message = str(error.reason or "")
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(error.body or "{}").get("message") or message)
    return KubeRefusalError(int(error.status or 500), message)


class KubeObjects:
    """Watches Models, EndpointConfigs and Endpoints into ``store`` (as the gateway), writes them
    as each caller's identity (impersonation), and asks RBAC whether a caller may read."""

    def __init__(self, store: Store, namespaces: list[str], kubeconfig: Path | None) -> None:
        self.store = store
        self.namespaces = sorted(set(namespaces))
        self.kubeconfig = kubeconfig
        self._stop = threading.Event()
        self._watchers: list[Watcher] = []
        self._decisions: dict[tuple[str, str, str, str], tuple[float, bool]] = {}
        self.api: Any = None

    async def start(self, sync_timeout: float = 30.0) -> None:
        self.api = await asyncio.to_thread(load_api_client, self.kubeconfig, pool_size=_API_CONNECTIONS)
        custom = kubernetes.client.CustomObjectsApi(self.api)
        for kind in KINDS:
            crd = {"group": contract.API_GROUP, "version": contract.API_VERSION_NAME, "plural": kind.plural}
            scopes: list[str | None] = list(self.namespaces) or [None]
            for namespace in scopes:
                if namespace is None:
                    self._add(kind, None, custom.list_cluster_custom_object, crd)
                else:
                    self._add(
                        kind, namespace, custom.list_namespaced_custom_object, {**crd, "namespace": namespace}
                    )
        for watcher in self._watchers:
            threading.Thread(target=watcher.run, name=f"watch-api-{watcher.name}", daemon=True).start()
        deadline = time.monotonic() + sync_timeout
        for watcher in self._watchers:
            if not await asyncio.to_thread(watcher.synced.wait, max(deadline - time.monotonic(), 0.0)):
                log.warning("%s not listed yet; serving what is known and catching up", watcher.name)

    def _add(self, kind: Kind, namespace: str | None, list_function: Any, kwargs: Mapping[str, Any]) -> None:
        def on_sync(items: list[Mapping[str, Any]]) -> None:
            self.store.replace(kind, items, namespace)

        def on_event(event_type: str, obj: Mapping[str, Any]) -> None:
            self.store.event(kind, event_type, obj)

        name = kind.plural if namespace is None else f"{kind.plural}/{namespace}"
        self._watchers.append(Watcher(name, list_function, kwargs, on_sync, on_event, self._stop))

    def stop(self) -> None:
        self._stop.set()

    # ---- the Writer protocol: every write impersonates the caller's identity ----
    async def _as_caller(
        self, method: str, kind: Kind, namespace: str, *args: Any, user: str | None, **kwargs: Any
    ) -> Any:
        """One CustomObjectsApi call on ``kind`` in ``namespace``, made as ``user``; a refusal is
        raised as the SageMaker error for it."""
        call = getattr(kubernetes.client.CustomObjectsApi(self.api), method)
        try:
            return await asyncio.to_thread(
                call,
                contract.API_GROUP,
                contract.API_VERSION_NAME,
                namespace,
                kind.plural,
                *args,
                _request_timeout=_WRITE_TIMEOUT,
                _headers=_acting_as(user),
                **kwargs,
            )
        except ApiException as error:
            raise _refusal(error) from None

    async def create(
        self, kind: Kind, namespace: str, body: Mapping[str, Any], *, user: str | None
    ) -> Mapping[str, Any]:
        created = await self._as_caller(
            "create_namespaced_custom_object",
            kind,
            namespace,
            dict(body),
            user=user,
            field_validation="Strict",
        )
        return cast(dict[str, Any], created)

    async def delete(self, kind: Kind, namespace: str, name: str, *, user: str | None) -> Mapping[str, Any]:
        deleted = await self._as_caller("delete_namespaced_custom_object", kind, namespace, name, user=user)
        # The object as deleted, or a Status (no metadata.name) when it went at once.
        return cast(dict[str, Any], deleted) if isinstance(deleted, dict) else {}

    async def patch(
        self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any], *, user: str | None
    ) -> Mapping[str, Any]:
        patched = await self._as_caller(
            "patch_namespaced_custom_object", kind, namespace, name, dict(patch), user=user,
            field_validation="Strict",
        )  # fmt: skip
        return cast(dict[str, Any], patched)

    async def get(self, kind: Kind, namespace: str, name: str, *, user: str | None) -> Mapping[str, Any]:
        found = await self._as_caller("get_namespaced_custom_object", kind, namespace, name, user=user)
        return cast(dict[str, Any], found)

    # ---- the Authorizer protocol: reads are served from the cache, RBAC is asked ----
    async def allowed(self, user: str, verb: str, kind: Kind, namespace: str) -> bool:
        key = (user, verb, kind.plural, namespace)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        allowed = await asyncio.to_thread(self._access_review, user, verb, kind, namespace)
        if len(self._decisions) > 10000:
            self._decisions.clear()
        self._decisions[key] = (now + (_ALLOWED_SECONDS if allowed else _DENIED_SECONDS), allowed)
        return allowed

    def _access_review(self, user: str, verb: str, kind: Kind, namespace: str) -> bool:
        client = kubernetes.client
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=_groups_of(user),
                resource_attributes=client.V1ResourceAttributes(
                    group=contract.API_GROUP, resource=kind.plural, verb=verb, namespace=namespace
                ),
            )
        )
        try:
            result = client.AuthorizationV1Api(self.api).create_subject_access_review(
                review, _request_timeout=_WRITE_TIMEOUT
            )
        except ApiException as error:
            log.warning("SubjectAccessReview failed with status %s", error.status)
            raise service_unavailable(
                "Could not check the caller's permissions; retry the request."
            ) from None
        return bool(result.status and result.status.allowed)


def _acting_as(user: str | None) -> dict[str, str]:
    """The impersonation header; for a ServiceAccount the API server adds its groups itself."""
    return {} if user is None else {"Impersonate-User": user}


def _groups_of(user: str) -> list[str]:
    """The groups Kubernetes gives a ServiceAccount's tokens (a SubjectAccessReview names them)."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{parts[2]}", "system:authenticated"]
    return ["system:authenticated"]
