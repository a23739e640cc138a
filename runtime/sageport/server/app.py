"""The server's ASGI application.

``/ping``, ``/invocations`` and the multi-model ``/models`` API are answered by a plain ASGI
function: no framework routing, middleware or per-request logging sits on that path, which
is what makes it cheaper per request than KServe's stock stack. Everything else (the KServe
V1 and V2 routes) is handed to a FastAPI app built with the kserve SDK.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sageport.contract import (
    EXECUTION_PARAMETERS_PATH,
    INVOCATIONS_PATH,
    MULTI_MODEL_PATH,
    PING_PATH,
    TARGET_MODEL_HEADER,
    multi_model_id,
)
from sageport.server.batching import MicroBatcher
from sageport.server.config import ServerConfig
from sageport.server.errors import (
    InsufficientMemoryError,
    ModelAlreadyLoadedError,
    ModelLoadError,
    ModelNotLoadedError,
    ModelNotReadyError,
    PayloadError,
    ServerError,
    TargetModelNotFoundError,
)
from sageport.server.frameworks import preload
from sageport.server.handler import ModelHandler, Reply, RequestContext, load_handler
from sageport.server.kserve_bridge import KServeRoutes
from sageport.server.memory import default_budget
from sageport.server.metrics import MultiModelMetrics
from sageport.server.multimodel import FETCHED_MARK as _FETCHED
from sageport.server.multimodel import DiskCache, ModelStore, delete_artifact

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
_JSON = [(b"content-type", b"application/json")]
_TARGET_MODEL = TARGET_MODEL_HEADER.lower()
METRICS_PATH = "/metrics"
_MODEL_PATH = re.compile(r"^/models/([^/]+)(/invoke)?$")
# Up to this size the built-in codecs run on the event loop: a thread hop costs more than the work.
_INLINE_CODEC_BYTES = 64 * 1024


def _error_body(exc: ServerError) -> bytes:
    return json.dumps({"code": exc.status, "type": type(exc).__name__, "message": exc.message}).encode()


class ServerState:
    """Everything the routes share: loaded model(s), the model thread pool, batchers, kserve."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.pool = ThreadPoolExecutor(max_workers=config.model_threads, thread_name_prefix="model")
        self.handler: ModelHandler | None = None
        self.load_error: str | None = None
        self.batchers: dict[str, MicroBatcher] = {}
        self.kserve = KServeRoutes(self.predict_array) if config.kserve_routes else None
        self.store: ModelStore | None = None
        self.metrics: MultiModelMetrics | None = None
        self.disk: DiskCache | None = None
        if config.multi_model:
            budget = config.multi_model_memory_bytes or default_budget()
            self.store = ModelStore(
                load=self._load_named,
                prepare=lambda model_dir: preload(model_dir, config.framework),
                fetch_remote=self._fetch_timed,
                root=config.multi_model_root,
                budget_bytes=budget,
                executor=self.pool,
                on_load=lambda name, _handler: self._on_model_loaded(name),
                on_unload=self._on_model_unloaded,
            )
            store, disk = self.store, DiskCache(config.multi_model_root, config.model_disk_bytes)
            self.disk = disk
            self.metrics = MultiModelMetrics(loaded=lambda: len(store.listing()), on_disk=lambda: len(disk))
        self._background: set[asyncio.Task[Any]] = set()
        self._target_loads: dict[str, asyncio.Task[Any]] = {}

    # -- lifecycle -------------------------------------------------------------------------
    async def startup(self) -> None:
        if self.store is None:
            self._spawn(self._load_single())
        elif self.kserve is not None:
            self._spawn(self.kserve.start())

    async def shutdown(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _fetch_timed(self, url: str, destination: Path) -> Path:
        """Fetch for the store (in a pool thread, one at a time): timed, and kept within the disk
        cache's budget by deleting idle artifacts once the new one is there."""
        disk, store = self.disk, self.store
        if self.metrics is None or disk is None or store is None or (destination / _FETCHED).exists():
            if disk is not None:
                disk.used(destination.name)
            return _fetch_for_multi_model(url, destination)
        with self.metrics.downloading.time():
            local = _fetch_for_multi_model(url, destination)
        if destination.parent == disk.root:  # not a model directory used in place
            disk.added(destination.name, keep={resident.name for resident in store.listing()})
        return local

    def _load_named(self, name: str, model_dir: Path) -> ModelHandler:
        if self.metrics is not None:
            with self.metrics.loading.time():
                return self._load_handler(name, model_dir)
        return self._load_handler(name, model_dir)

    def _load_handler(self, name: str, model_dir: Path) -> ModelHandler:
        return load_handler(
            name,
            model_dir,
            framework=self.config.framework,
            program=self.config.program,
            default_accept=self.config.default_accept,
            install_requirements=self.config.install_requirements,
            requirements_target=self.config.requirements_target,
        )

    async def _load_single(self) -> None:
        started = time.monotonic()
        name, model_dir = self.config.model_name, self.config.model_dir
        try:
            handler = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._load_named, name, model_dir
            )
        except Exception as exc:
            message = exc.message if isinstance(exc, ServerError) else f"{type(exc).__name__}: {exc}"
            self.load_error = message
            log.error(
                "model failed to load from %s: %s",
                model_dir,
                message,
                exc_info=not isinstance(exc, ServerError),
            )
            return
        self.handler = handler
        log.info("model %s loaded from %s in %.2fs", name, model_dir, time.monotonic() - started)
        self._on_model_loaded(name)

    def _on_model_loaded(self, name: str) -> None:
        if self.kserve is not None:
            self.kserve.register(name)
            self._spawn(self.kserve.start())

    def _on_model_unloaded(self, name: str) -> None:
        started = time.perf_counter()
        self._release_model(name)
        if self.metrics is not None:
            self.metrics.unloading.observe(time.perf_counter() - started)

    def _release_model(self, name: str) -> None:
        batcher = self.batchers.pop(name, None)
        if batcher is not None:
            self._spawn(batcher.close())
        if self.kserve is not None:
            self.kserve.unregister(name)

    # -- multi-model endpoints: the platform's part (load on first call) ---------------------
    async def load_target(self, name: str, target: str) -> None:
        """Load TargetModel from the prefix on its first call on this instance: one download and
        load per model however many calls wait for it. A call waits up to the load wait, then is
        answered ModelNotReady while the load goes on (SageMaker: 60 s)."""
        store, prefix = self.store, self.config.model_prefix
        assert store is not None
        assert prefix is not None
        metrics = self.metrics
        if store.has(name):
            if metrics is not None:
                metrics.cache_hits.inc()
            return
        if metrics is not None:
            metrics.cache_misses.inc()
        if multi_model_id(target) != name:
            raise PayloadError(f"{TARGET_MODEL_HEADER} {target!r} does not name model {name!r}")
        task = self._target_loads.get(name)
        if task is None:
            task = asyncio.ensure_future(store.load(name, join_prefix(prefix, target)))
            self._target_loads[name] = task
            task.add_done_callback(lambda done: self._target_load_done(name, done))
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.config.model_load_wait_seconds)
        except TimeoutError:
            raise ModelNotReadyError(
                f"Model {target} is still loading after {self.config.model_load_wait_seconds:g} s; "
                "the load goes on, retry the call."
            ) from None
        except ModelAlreadyLoadedError:
            pass  # loaded meanwhile through POST /models
        except (TargetModelNotFoundError, InsufficientMemoryError):
            raise
        except Exception as exc:  # the client learns which model failed and why
            detail = exc.message if isinstance(exc, ServerError) else f"{type(exc).__name__}: {exc}"
            raise ModelLoadError(f"Model {target} could not be loaded: {detail}") from exc
        finally:
            if metrics is not None:
                metrics.loading_wait.observe(time.perf_counter() - started)

    def _target_load_done(self, name: str, task: asyncio.Task[Any]) -> None:
        self._target_loads.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("model %s failed to load: %s", name, task.exception())

    def forget_after_call(self, name: str) -> None:
        """ModelCacheSetting Disabled: unload the model and delete its files once its call is done."""
        store = self.store
        assert store is not None
        if store.has(name):
            store.unload(name)
        if self.disk is not None:
            self.disk.removed(name)
        self._spawn(asyncio.get_running_loop().run_in_executor(self.pool, delete_artifact, store.root, name))

    # -- prediction ------------------------------------------------------------------------
    async def handler_for(self, name: str | None) -> ModelHandler:
        if self.store is not None:
            if name is None:
                raise ModelNotLoadedError("multi-model mode: invoke /models/{name}/invoke")
            handler: ModelHandler = await self.store.get(name)
            return handler
        if self.handler is None:
            reason = f"failed to load: {self.load_error}" if self.load_error else "is still loading"
            raise ModelNotReadyError(f"model {self.config.model_name!r} {reason}")
        if name is not None and name != self.handler.name:
            raise ModelNotLoadedError(
                f"model {name!r} is not loaded (this server serves {self.handler.name!r})"
            )
        return self.handler

    def _batcher(self, handler: ModelHandler) -> MicroBatcher | None:
        if not self.config.batching.enabled or not handler.batchable:
            return None
        batcher = self.batchers.get(handler.name)
        if batcher is None:
            batching = self.config.batching
            batcher = MicroBatcher(
                lambda rows: handler.predict(rows, None),
                self.pool,
                max_batch_size=batching.max_batch_size,
                max_wait_seconds=batching.max_wait_seconds,
            )
            self.batchers[handler.name] = batcher
        return batcher

    async def predict_array(self, name: str, data: Any) -> Any:
        """Predict already-decoded data (the KServe routes' entry into the shared path)."""
        handler = await self.handler_for(name)
        batcher = self._batcher(handler)
        if batcher is not None and isinstance(data, np.ndarray) and data.ndim >= 1:
            return await batcher.submit(data)
        return await asyncio.get_running_loop().run_in_executor(self.pool, handler.predict, data, None)

    async def invoke(self, handler: ModelHandler, body: bytes, context: RequestContext) -> Reply:
        loop = asyncio.get_running_loop()
        batcher = self._batcher(handler)
        if batcher is None:
            return await loop.run_in_executor(self.pool, handler.invoke, body, context)
        # Our own codecs on small bodies run on the loop; user hooks never do (they may be slow).
        small = len(body) <= _INLINE_CODEC_BYTES
        if small and handler.hooks.input_fn is None:
            data = handler.decode(body, context)
        else:
            data = await loop.run_in_executor(self.pool, handler.decode, body, context)
        if isinstance(data, np.ndarray) and data.ndim >= 1:
            prediction = await batcher.submit(data)
        else:
            prediction = await loop.run_in_executor(self.pool, handler.predict, data, context)
        if small and handler.hooks.output_fn is None:
            return handler.encode(prediction, context)
        return await loop.run_in_executor(self.pool, handler.encode, prediction, context)


def join_prefix(prefix: str, target: str) -> str:
    """The URL of a TargetModel: the Model's prefix, with or without its trailing slash, + the key."""
    return prefix.rstrip("/") + "/" + target


def _fetch_for_multi_model(url: str, destination: Path) -> Path:
    """A local model directory is used in place; anything else is fetched into ``destination``,
    once: a model unloaded for memory is loaded again from the disk, as SageMaker does."""
    if "://" not in url:
        local = Path(url)
        if local.is_dir():
            return local
        if not local.exists():
            raise ModelNotLoadedError(f"no model at {url!r}")
    from sageport.storage import FetchError, UnsafeArchiveError, fetch
    from sageport.storage.fetch import ArtifactMissingError

    target, complete = destination / "model", destination / _FETCHED
    if complete.exists():
        return target
    try:
        fetch(url, target)
    except ArtifactMissingError as exc:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        raise TargetModelNotFoundError(
            f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there is "
            "an object located at the URL and that the role passed to CreateModel has permissions to "
            "download the model."
        ) from exc
    except (FetchError, UnsafeArchiveError) as exc:
        raise ModelLoadError(f"cannot fetch model from {url!r}: {exc}") from exc
    complete.touch()
    return target


class SageportApp:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif self.state.kserve is not None:
            await (await self.state.kserve.app())(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.state.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.state.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path == INVOCATIONS_PATH:
                if method != "POST":
                    return await _respond(send, 405, b'{"message":"use POST"}', _JSON)
                return await self._invocations(scope, receive, send, None)
            if path == PING_PATH:
                return await self._ping(send)
            if path == METRICS_PATH and method == "GET" and self.state.metrics is not None:
                page = generate_latest(self.state.metrics.registry)
                return await _respond(send, 200, page, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
            if path == EXECUTION_PARAMETERS_PATH and method == "GET":
                return await self._execution_parameters(send)
            if self.state.store is not None and (
                path == MULTI_MODEL_PATH or path.startswith(MULTI_MODEL_PATH + "/")
            ):
                return await self._multi_model(scope, receive, send, path, method)
        except ServerError as exc:
            return await _respond(send, exc.status, _error_body(exc), _JSON)
        except Exception as exc:  # never let a bug drop the connection without an answer
            log.exception("unhandled error on %s %s", method, path)
            return await _respond(send, 500, _error_body(ServerError(f"{type(exc).__name__}: {exc}")), _JSON)
        if self.state.kserve is None:
            return await _respond(send, 404, b'{"message":"not found"}', _JSON)
        try:
            kserve_app = await self.state.kserve.app()
        except Exception as exc:
            log.exception("KServe routes are unavailable")
            error = ModelNotReadyError(f"KServe routes are unavailable: {type(exc).__name__}: {exc}")
            return await _respond(send, 503, _error_body(error), _JSON)
        await kserve_app(scope, receive, send)

    async def _ping(self, send: Send) -> None:
        state = self.state
        if state.store is not None:
            # Multi-model: healthy once the KServe routes are built, so that no model load is
            # measured while kserve is being imported in the background.
            if state.kserve is None or state.kserve.ready:
                return await _respond(send, 200, b"", [])
            return await _respond(send, 503, b'{"status":"starting"}', _JSON)
        if state.handler is not None:
            return await _respond(send, 200, b"", [])
        if state.load_error is not None:
            body = json.dumps({"status": "model failed to load", "message": state.load_error}).encode()
        else:
            body = b'{"status":"loading"}'
        await _respond(send, 503, body, _JSON)

    async def _execution_parameters(self, send: Send) -> None:
        # Batch transform asks for these; MULTI_RECORD pairs with dynamic batching.
        params = {
            "MaxConcurrentTransforms": self.state.config.model_threads,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 6,
        }
        await _respond(send, 200, json.dumps(params).encode(), _JSON)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send, name: str | None) -> None:
        handler = await self.state.handler_for(name)
        headers = _headers(scope)
        body = await _read_body(receive)
        context = RequestContext(
            content_type=headers.get("content-type"),
            accept=handler.accept_for(headers.get("accept")),
            custom_attributes=headers.get("x-amzn-sagemaker-custom-attributes"),
            headers=headers,
            model_name=handler.name,
        )
        reply = await self.state.invoke(handler, body, context)
        response_headers = [(b"content-type", reply.content_type.encode("latin-1"))]
        if reply.custom_attributes is not None:
            response_headers.append((CUSTOM_ATTRIBUTES, reply.custom_attributes.encode("latin-1")))
        await _respond(send, 200, reply.body, response_headers)

    async def _multi_model(self, scope: Scope, receive: Receive, send: Send, path: str, method: str) -> None:
        store = self.state.store
        assert store is not None
        if path == MULTI_MODEL_PATH:
            if method == "POST":
                request = _json_object(await _read_body(receive))
                name = request.get("model_name")
                if not isinstance(name, str) or not name or "/" in name:
                    raise PayloadError('"model_name" must be a non-empty string without "/"')
                url = request.get("url")
                if url is not None and not isinstance(url, str):
                    raise PayloadError('"url" must be a string')
                if self.state.kserve is not None:
                    await self.state.kserve.app()  # see _ping: loads wait for the kserve import
                resident = await store.load(name, url)
                body = {
                    "status": f"Model {name} loaded",
                    "modelName": name,
                    "memoryBytes": resident.memory_bytes,
                }
                return await _respond(send, 200, json.dumps(body).encode(), _JSON)
            if method == "GET":
                return await self._list_models(scope, send)
            return await _respond(send, 405, b'{"message":"use GET or POST"}', _JSON)
        match = _MODEL_PATH.match(path)
        if match is None:
            return await _respond(send, 404, b'{"message":"not found"}', _JSON)
        name, invoke = unquote(match.group(1)), match.group(2) is not None
        if invoke:
            if method != "POST":
                return await _respond(send, 405, b'{"message":"use POST"}', _JSON)
            target = _headers(scope).get(_TARGET_MODEL) if self.state.config.model_prefix else None
            if target is None:
                return await self._invocations(scope, receive, send, name)
            await self.state.load_target(name, target)
            try:
                return await self._invocations(scope, receive, send, name)
            finally:
                if not self.state.config.model_cache:
                    self.state.forget_after_call(name)
        if method == "GET":
            resident = store.describe(name)
            body = {"modelName": name, "modelUrl": resident.url, "memoryBytes": resident.memory_bytes}
            return await _respond(send, 200, json.dumps(body).encode(), _JSON)
        if method == "DELETE":
            store.unload(name)
            return await _respond(send, 200, json.dumps({"status": f"Model {name} unloaded"}).encode(), _JSON)
        await _respond(send, 405, b'{"message":"use GET or DELETE"}', _JSON)

    async def _list_models(self, scope: Scope, send: Send) -> None:
        store = self.state.store
        assert store is not None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            start = int(query.get("next_page_token", ["0"])[0] or 0)
            page = int(query.get("max_results", ["100"])[0] or 100)
        except ValueError as exc:
            raise PayloadError("next_page_token and max_results must be integers") from exc
        residents = store.listing()
        chosen = residents[start : start + max(page, 1)]
        body: dict[str, Any] = {"models": [{"modelName": r.name, "modelUrl": r.url} for r in chosen]}
        if start + len(chosen) < len(residents):
            body["nextPageToken"] = str(start + len(chosen))
        await _respond(send, 200, json.dumps(body).encode(), _JSON)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise PayloadError(f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise PayloadError("expected a JSON object")
    return value


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_app(config: ServerConfig) -> SageportApp:
    return SageportApp(ServerState(config))


__all__ = ["SageportApp", "ServerState", "build_app"]
