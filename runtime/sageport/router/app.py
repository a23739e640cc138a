"""The router's HTTP handling: ``POST /invocations`` to the container that
TargetContainerHostname names, ``GET /ping`` for the whole instance, ``GET /metrics``.

Bodies pass through untouched in both directions (buffered, or chunk by chunk when the container
streams); only hop-by-hop headers are dropped. The router's own errors have SageMaker's shape; a
container's answer, error or not, is passed on as it is (the gateway turns it into ModelError).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sageport.contract import INVOCATIONS_PATH, PING_PATH, TARGET_CONTAINER_HEADER
from sageport.net import awserrors
from sageport.net.httpserver import Request, Response, ServerState, StreamSink
from sageport.net.upstream import UpstreamError, UpstreamPool, UpstreamTimeoutError
from sageport.router.metrics import ContainerMetrics, RouterMetrics
from sageport.router.routing import Container, choose

log = logging.getLogger("sageport.router")

_TARGET = TARGET_CONTAINER_HEADER.lower()
# Not forwarded either way: they describe one hop, and the server and pool write their own.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "expect", "te", "upgrade"}
)
PING_TIMEOUT_SECONDS = 2.0  # SageMaker's per-ping timeout


@dataclass
class RouterSettings:
    model_timeout: float = 60.0  # SageMaker's invocation limit
    stream_idle_timeout: float = 60.0
    max_body_bytes: int = 6 * 1024 * 1024 + 64 * 1024  # the gateway caps bodies at 6 MiB


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in _HOP_BY_HOP}


class Router:
    def __init__(
        self, containers: Mapping[str, Container], metrics: RouterMetrics, settings: RouterSettings
    ) -> None:
        self.containers = dict(containers)
        self.metrics = metrics
        self.settings = settings
        self._container_metrics: dict[str, ContainerMetrics] = {
            host: metrics.for_container(host) for host in self.containers
        }
        self._pool: UpstreamPool | None = None
        self.draining = False

    async def start(self) -> None:
        self._pool = UpstreamPool()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def server_state(self) -> ServerState:
        return ServerState(self.handle, self._render_protocol_error, self.settings.max_body_bytes)

    def _render_protocol_error(self, status: int, message: str) -> Response:
        error = awserrors.ApiError("ValidationError" if status < 500 else "InternalFailure", status, message)
        return Response(*awserrors.render_error(error, str(uuid.uuid4())))

    async def handle(self, request: Request, sink: StreamSink) -> Response | None:
        if request.method == "POST" and request.raw_path == INVOCATIONS_PATH:
            return await self.invoke(request, sink)
        if request.method == "GET" and request.raw_path == PING_PATH:
            return await self.ping()
        if request.method == "GET" and request.raw_path == "/metrics":
            return Response(
                200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self.metrics.registry)
            )
        return Response(404, {"Content-Type": "text/plain"}, b"not found\n")

    # ---- health ----------------------------------------------------------------------------
    async def _container_ready(self, container: Container) -> bool:
        assert self._pool is not None
        try:
            response = await self._pool.request(
                "GET", container.target, PING_PATH, {}, b"", PING_TIMEOUT_SECONDS
            )
            try:
                await response.read()
            finally:
                response.release()
        except UpstreamError:
            return False
        return response.status == 200

    async def ping(self) -> Response:
        """200 only when every container answers its own /ping with 200: the instance is ready
        only when all of it is."""
        if self.draining:
            return Response(503, {"Content-Type": "text/plain"}, b"draining\n")
        containers = list(self.containers.values())
        ready = await asyncio.gather(*(self._container_ready(c) for c in containers))
        waiting = [c.hostname for c, ok in zip(containers, ready, strict=True) if not ok]
        if waiting:
            return Response(
                503, {"Content-Type": "text/plain"}, f"not ready: {', '.join(waiting)}\n".encode()
            )
        return Response(200, {"Content-Type": "text/plain"}, b"")

    # ---- invocations -----------------------------------------------------------------------
    async def invoke(self, request: Request, sink: StreamSink) -> Response | None:
        try:
            container = choose(self.containers, request.headers.get(_TARGET))
        except awserrors.ApiError as error:
            request_id = request.headers.get("x-amzn-requestid") or str(uuid.uuid4())
            return Response(*awserrors.render_error(error, request_id))
        assert self._pool is not None
        metrics = self._container_metrics[container.hostname]
        metrics.invocations.inc()
        started = time.perf_counter()
        try:
            response = await self._pool.post(
                container.target,
                INVOCATIONS_PATH,
                _forwardable(request.headers),
                request.body,
                self.settings.model_timeout,
            )
        except UpstreamError as error:
            metrics.invocation_5xx_errors.inc()
            return self._container_failed(container, error)
        try:
            headers = _forwardable(response.headers)
            if response.headers.get("transfer-encoding", "").lower() == "chunked":
                await sink.start(response.status, headers)
                async for chunk in response.iter_chunks(self.settings.stream_idle_timeout):
                    await sink.write(chunk)
                await sink.end()
                result = None
            else:
                result = Response(response.status, headers, await response.read())
        except UpstreamError as error:
            metrics.invocation_5xx_errors.inc()
            if sink.started:
                raise ConnectionResetError(str(error)) from None  # the client sees a cut stream
            return self._container_failed(container, error)
        finally:
            response.release()
        metrics.container_latency.observe(time.perf_counter() - started)
        if response.status >= 500:
            metrics.invocation_5xx_errors.inc()
        elif response.status >= 400:
            metrics.invocation_4xx_errors.inc()
        return result

    def _container_failed(self, container: Container, error: UpstreamError) -> Response:
        """The container did not answer: a 5xx the gateway reports as ModelError."""
        log.warning("container %s failed: %s", container.hostname, error)
        status = 504 if isinstance(error, UpstreamTimeoutError) else 502
        body = f"container {container.hostname} did not answer: {error}".encode()
        return Response(status, {"Content-Type": "text/plain"}, body)
