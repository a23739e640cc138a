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

log = logging.getLogger("sageport.controlapi.kube")

_WRITE_TIMEOUT = 10.0
_API_CONNECTIONS = 16


def _refusal(error: ApiException) -> KubeRefusalError:
    message = str(error.reason or "")
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(error.body or "{}").get("message") or message)
    return KubeRefusalError(int(error.status or 500), message)


class KubeObjects:
    """Watches Models, EndpointConfigs and Endpoints into ``store`` and writes them."""

    def __init__(self, store: Store, namespaces: list[str], kubeconfig: Path | None) -> None:
        self.store = store
        self.namespaces = sorted(set(namespaces))
        self.kubeconfig = kubeconfig
        self._stop = threading.Event()
        self._watchers: list[Watcher] = []
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

    # ---- the Writer protocol ----
    async def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        try:
            created = await asyncio.to_thread(
                custom.create_namespaced_custom_object,
                contract.API_GROUP,
                contract.API_VERSION_NAME,
                namespace,
                kind.plural,
                dict(body),
                field_validation="Strict",
                _request_timeout=_WRITE_TIMEOUT,
            )
        except ApiException as error:
            raise _refusal(error) from None
        return cast(dict[str, Any], created)

    async def delete(self, kind: Kind, namespace: str, name: str) -> Mapping[str, Any]:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        try:
            deleted = await asyncio.to_thread(
                custom.delete_namespaced_custom_object,
                contract.API_GROUP,
                contract.API_VERSION_NAME,
                namespace,
                kind.plural,
                name,
                _request_timeout=_WRITE_TIMEOUT,
            )
        except ApiException as error:
            raise _refusal(error) from None
        # The object as deleted, or a Status (no metadata.name) when it went at once.
        return cast(dict[str, Any], deleted) if isinstance(deleted, dict) else {}

    async def patch(
        self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        try:
            patched = await asyncio.to_thread(
                custom.patch_namespaced_custom_object,
                contract.API_GROUP,
                contract.API_VERSION_NAME,
                namespace,
                kind.plural,
                name,
                dict(patch),
                field_validation="Strict",
                _request_timeout=_WRITE_TIMEOUT,
            )
        except ApiException as error:
            raise _refusal(error) from None
        return cast(dict[str, Any], patched)
