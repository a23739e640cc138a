"""Kubernetes mode (the client library is untyped, hence the few ignores below): list+watch Endpoints, EndpointSlices and access-key Secrets; check bearer
tokens with TokenReview and SubjectAccessReview.

The official client is synchronous, so each watch runs in a daemon thread and hands raw JSON
objects to the event loop, where the pure ``kubestate`` functions rebuild the route table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kubernetes.client
import kubernetes.watch
from kubernetes.client.exceptions import ApiException

from sageport import contract
from sageport.gateway import kubestate
from sageport.gateway.auth import AccessKey, Principal
from sageport.gateway.routing import RouteTable
from sageport.kubeclient import load_api_client
from sageport.net import awserrors
from sageport.net.auth import KeyStore

log = logging.getLogger("sageport.gateway.kube")

_WATCH_SECONDS = 300
_RETRY_SECONDS = 2.0
_REFRESH_SECONDS = 0.25
_REFRESH_TIMEOUT = 5.0
_TOKEN_CACHE_SECONDS = 60.0
_DECISION_CACHE_SECONDS = 30.0
# Watches, read-throughs and reviews run on threads at once; each keeps its connection.
_API_CONNECTIONS = 32
# The label Kubernetes puts on a Service's EndpointSlices.
_SERVICE_NAME_LABEL = "kubernetes.io/service-name"

ListFunction = Callable[..., Any]
Handler = Callable[[str, Mapping[str, Any]], None]


class Watcher:
    """List, then watch from the list's resourceVersion; relist on 410 Gone or any failure."""

    def __init__(
        self, name: str, list_function: ListFunction, kwargs: Mapping[str, Any], on_sync: Callable[
            [list[Mapping[str, Any]]], None], on_event: Handler, stop: threading.Event,
    ) -> None:  # fmt: skip
        self.name = name
        self.list_function = list_function
        self.kwargs = dict(kwargs)
        self.on_sync = on_sync
        self.on_event = on_event
        self.stop = stop
        self.synced = threading.Event()

    def list_once(self) -> str:
        response = self.list_function(**self.kwargs, _preload_content=False)
        document = json.loads(response.data)
        self.on_sync(list(document.get("items") or ()))
        self.synced.set()
        return str(document.get("metadata", {}).get("resourceVersion", ""))

    def run(self) -> None:
        resource_version: str | None = None
        while not self.stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self.list_once()
                stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.list_function,
                    **self.kwargs,
                    resource_version=resource_version,
                    timeout_seconds=_WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    if self.stop.is_set():
                        return
                    raw = event.get("raw_object") or {}
                    kind = event.get("type")
                    if kind == "ERROR":
                        # Usually 410 Gone: our resourceVersion is too old; start over.
                        resource_version = None
                        break
                    resource_version = str(raw.get("metadata", {}).get("resourceVersion") or resource_version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_event(str(kind), raw)
            except ApiException as error:
                if error.status != 410:
                    log.warning("watch %s failed (%s); retrying", self.name, error.status)
                    time.sleep(_RETRY_SECONDS)
                resource_version = None
            except Exception as error:
                log.warning("watch %s failed (%s); retrying", self.name, type(error).__name__)
                time.sleep(_RETRY_SECONDS)
                resource_version = None


@dataclass(frozen=True)
class TokenPrincipal:
    """A Kubernetes user (from TokenReview); each invoke is checked with a SubjectAccessReview."""

    user: str
    uid: str
    groups: tuple[str, ...]
    extra: Mapping[str, list[str]]
    source: KubernetesSource

    @property
    def name(self) -> str:
        return f"user:{self.user}"

    async def may_invoke(self, endpoint_name: str, namespace: str | None) -> bool:
        if namespace is None:
            return True  # unknown endpoint: the caller gets "not found", nothing to protect
        return await self.source.subject_may_invoke(self, endpoint_name, namespace)


class KubernetesSource:
    def __init__(
        self,
        table: RouteTable,
        keys: KeyStore[AccessKey],
        namespaces: list[str],
        system_namespace: str,
        kubeconfig: Path | None,
    ) -> None:
        self.table = table
        self.keys = keys
        self.namespaces = sorted(set(namespaces))
        self.system_namespace = system_namespace
        self.kubeconfig = kubeconfig
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._endpoints: dict[tuple[str, kubestate.ObjectKey], kubestate.EndpointObject] = {}
        self._slices: dict[tuple[str, kubestate.ObjectKey], kubestate.SliceObject] = {}
        self._secrets: dict[tuple[str, kubestate.ObjectKey], AccessKey] = {}
        self._watchers: list[Watcher] = []
        self._tokens: dict[str, tuple[float, TokenPrincipal | None]] = {}
        self._decisions: dict[tuple[str, str, str], tuple[float, bool]] = {}
        self._reported_clashes: tuple[str, ...] = ()
        self._endpoint_events: dict[str, Callable[[str, Mapping[str, Any]], None]] = {}
        self._refreshed: dict[tuple[str, str], float] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.api: Any = None

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self, sync_timeout: float = 30.0) -> None:
        self._loop = asyncio.get_running_loop()
        self.api = await asyncio.to_thread(load_api_client, self.kubeconfig, pool_size=_API_CONNECTIONS)
        custom = kubernetes.client.CustomObjectsApi(self.api)
        discovery = kubernetes.client.DiscoveryV1Api(self.api)
        core = kubernetes.client.CoreV1Api(self.api)
        slice_selector = {"label_selector": contract.LABEL_ENDPOINT_OBJECT}
        secret_selector = {"label_selector": f"{contract.LABEL_ACCESS_KEY}=true"}
        crd = {
            "group": contract.API_GROUP,
            "version": contract.API_VERSION_NAME,
            "plural": contract.Plural.ENDPOINTS,
        }
        if not self.namespaces:
            self._add_watcher("endpoints", custom.list_cluster_custom_object, crd, self._endpoints)
            self._add_watcher(
                "endpointslices",
                discovery.list_endpoint_slice_for_all_namespaces,
                slice_selector,
                self._slices,
            )
            self._add_watcher("secrets", core.list_secret_for_all_namespaces, secret_selector, self._secrets)
        else:
            for namespace in self.namespaces:
                scoped = {"namespace": namespace}
                self._add_watcher(
                    f"endpoints/{namespace}",
                    custom.list_namespaced_custom_object,
                    {**crd, **scoped},
                    self._endpoints,
                )
                self._add_watcher(
                    f"endpointslices/{namespace}",
                    discovery.list_namespaced_endpoint_slice,
                    {**slice_selector, **scoped},
                    self._slices,
                )
            for namespace in sorted({*self.namespaces, self.system_namespace}):
                self._add_watcher(
                    f"secrets/{namespace}",
                    core.list_namespaced_secret,
                    {**secret_selector, "namespace": namespace},
                    self._secrets,
                )
        for watcher in self._watchers:
            threading.Thread(target=watcher.run, name=f"watch-{watcher.name}", daemon=True).start()
        deadline = time.monotonic() + sync_timeout
        for watcher in self._watchers:
            remaining = max(deadline - time.monotonic(), 0.0)
            if not await asyncio.to_thread(watcher.synced.wait, remaining):
                log.warning("%s not listed yet; serving what is known and catching up", watcher.name)
        self._rebuild()

    def stop(self) -> None:
        self._stop.set()

    async def refresh_endpoint(self, namespace: str, name: str) -> None:
        """Read one Endpoint now, instead of waiting for the watch.

        For a request to an endpoint the table says is not in service: the client may have just
        seen it InService (``kubectl wait``) while our watch lags. Callers arriving while a read
        is under way share it; a new read starts at most every ``_REFRESH_SECONDS`` per
        endpoint, so a client hammering a really unready endpoint costs a few GETs a second.
        """
        key = (namespace, name)
        running = self._refreshing.get(key)
        if running is not None:
            await asyncio.shield(running)
            return
        now = time.monotonic()
        if now - self._refreshed.get(key, 0.0) < _REFRESH_SECONDS or self.api is None:
            return
        if len(self._refreshed) > 4096:  # endpoints come and go; don't grow forever
            self._refreshed.clear()
        self._refreshed[key] = now
        read = self._refreshing[key] = asyncio.ensure_future(self._read_endpoint(namespace, name))
        read.add_done_callback(lambda _: self._refreshing.pop(key, None))
        await asyncio.shield(read)

    async def _read_endpoint(self, namespace: str, name: str) -> None:
        watcher = "endpoints" if not self.namespaces else f"endpoints/{namespace}"
        on_event = self._endpoint_events.get(watcher)
        if on_event is None:
            return
        # Clients invoke spec.endpointName when it is set; the object may be named otherwise.
        with self._lock:
            object_name = next(
                (
                    known.object_name
                    for (_, (known_namespace, _)), known in self._endpoints.items()
                    if known_namespace == namespace and known.name == name
                ),
                name,
            )
        custom = kubernetes.client.CustomObjectsApi(self.api)
        try:
            obj = await asyncio.to_thread(
                custom.get_namespaced_custom_object,
                contract.API_GROUP,
                contract.API_VERSION_NAME,
                namespace,
                contract.Plural.ENDPOINTS,
                object_name,
                _request_timeout=_REFRESH_TIMEOUT,
            )
        except Exception as error:  # gone, or the API is away: the watch will still catch up
            log.debug("read-through of endpoint %s/%s failed: %s", namespace, object_name, error)
            return
        on_event("MODIFIED", cast(dict[str, Any], obj))
        self._rebuild()

    def _add_watcher(
        self, name: str, list_function: ListFunction, kwargs: Mapping[str, Any], store: dict[Any, Any]
    ) -> None:
        kind = name.split("/")[0]

        def parse(obj: Mapping[str, Any]) -> object | None:
            if kind == "endpoints":
                return kubestate.parse_endpoint(obj)
            if kind == "endpointslices":
                return kubestate.parse_endpoint_slice(obj)
            return kubestate.parse_access_key_secret(obj, self.system_namespace)

        def on_sync(items: list[Mapping[str, Any]]) -> None:
            with self._lock:
                for key in [key for key in store if key[0] == name]:
                    del store[key]
                for obj in items:
                    parsed = parse(obj)
                    if parsed is not None:
                        store[(name, kubestate.object_key(obj))] = parsed
            self._schedule_rebuild()

        def on_event(event_type: str, obj: Mapping[str, Any]) -> None:
            key = (name, kubestate.object_key(obj))
            with self._lock:
                parsed = None if event_type == "DELETED" else parse(obj)
                current = store.get(key)
                stale = (
                    isinstance(parsed, kubestate.EndpointObject)
                    and isinstance(current, kubestate.EndpointObject)
                    and parsed.is_older_than(current)
                )
                if stale:
                    return  # a read-through already brought something newer
                if parsed is None:
                    store.pop(key, None)
                else:
                    store[key] = parsed
            self._schedule_rebuild()

        if kind == "endpoints":
            self._endpoint_events[name] = on_event

        self._watchers.append(Watcher(name, list_function, kwargs, on_sync, on_event, self._stop))

    def watch_peers(self, service: str, own_ip: str | None) -> Callable[[], list[str]]:
        """Follow the EndpointSlices of the gateway's own Service (in the system namespace) and
        return what gives the other replicas' scaler addresses (serverless demand sharing)."""
        slices: dict[kubestate.ObjectKey, tuple[str, ...]] = {}

        def on_sync(items: list[Mapping[str, Any]]) -> None:
            with self._lock:
                slices.clear()
                slices.update({kubestate.object_key(o): kubestate.peer_addresses(o, own_ip) for o in items})

        def on_event(event_type: str, obj: Mapping[str, Any]) -> None:
            with self._lock:
                if event_type == "DELETED":
                    slices.pop(kubestate.object_key(obj), None)
                else:
                    slices[kubestate.object_key(obj)] = kubestate.peer_addresses(obj, own_ip)

        def list_slices(**kwargs: Any) -> Any:
            return kubernetes.client.DiscoveryV1Api(self.api).list_namespaced_endpoint_slice(**kwargs)

        selector = {"namespace": self.system_namespace, "label_selector": f"{_SERVICE_NAME_LABEL}={service}"}
        self._watchers.append(Watcher("peers", list_slices, selector, on_sync, on_event, self._stop))

        def addresses() -> list[str]:
            with self._lock:
                return sorted({address for found in slices.values() for address in found})

        return addresses

    def _schedule_rebuild(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._rebuild)

    def _rebuild(self) -> None:
        with self._lock:
            endpoints = list(self._endpoints.values())
            slices = list(self._slices.values())
            secrets = [(source[1], key) for source, key in self._secrets.items()]
        specs, clashes = kubestate.build_routes(endpoints, slices)
        self.table.replace(specs)
        keys, duplicated = kubestate.merge_keys(secrets)
        self.keys.replace(keys)
        report = tuple(clashes + duplicated)
        if report != self._reported_clashes:
            self._reported_clashes = report
            if clashes:
                log.warning("endpoint names in more than one namespace (oldest kept): %s", ", ".join(clashes))
            if duplicated:
                log.warning("access key ids in more than one Secret (refused): %s", ", ".join(duplicated))

    # ---- bearer tokens ---------------------------------------------------------------------
    async def check_bearer(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._tokens.get(digest)
        if cached is None or cached[0] < now:
            principal = await asyncio.to_thread(self._token_review, token)
            cached = (now + _TOKEN_CACHE_SECONDS, principal)
            if len(self._tokens) > 10000:
                self._tokens.clear()
            self._tokens[digest] = cached
        if cached[1] is None:
            raise awserrors.unrecognized_client()
        return cached[1]

    def _token_review(self, token: str) -> TokenPrincipal | None:
        client = kubernetes.client
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        try:
            result = client.AuthenticationV1Api(self.api).create_token_review(review)
        except ApiException as error:
            log.warning("TokenReview failed with status %s", error.status)
            raise awserrors.service_unavailable(
                "Could not verify the bearer token; retry the request."
            ) from None
        status = result.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return TokenPrincipal(
            user=user.username or "",
            uid=user.uid or "",
            groups=tuple(user.groups or ()),
            extra={key: list(value) for key, value in (user.extra or {}).items()},
            source=self,
        )

    async def subject_may_invoke(self, principal: TokenPrincipal, endpoint_name: str, namespace: str) -> bool:
        key = (f"{principal.user}\x00{principal.uid}", namespace, endpoint_name)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is None or cached[0] < now:
            allowed = await asyncio.to_thread(self._access_review, principal, endpoint_name, namespace)
            cached = (now + _DECISION_CACHE_SECONDS, allowed)
            if len(self._decisions) > 10000:
                self._decisions.clear()
            self._decisions[key] = cached
        return cached[1]

    def _access_review(self, principal: TokenPrincipal, endpoint_name: str, namespace: str) -> bool:
        client = kubernetes.client
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=principal.user,
                uid=principal.uid or None,
                groups=list(principal.groups) or None,
                extra=dict(principal.extra) or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=contract.API_GROUP,
                    resource=contract.Plural.ENDPOINTS,
                    subresource="invocations",
                    verb="create",
                    name=endpoint_name,
                    namespace=namespace,
                ),
            )
        )
        try:
            result = client.AuthorizationV1Api(self.api).create_subject_access_review(review)
        except ApiException as error:
            log.warning("SubjectAccessReview failed with status %s", error.status)
            raise awserrors.service_unavailable("Could not authorize the request; retry it.") from None
        return bool(result.status is not None and result.status.allowed)
