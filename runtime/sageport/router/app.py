"""The router's HTTP handling: ``POST /invocations``, ``GET /ping`` for the whole instance,
``GET /metrics``.

Direct: the call goes to the container that TargetContainerHostname names. Serial: it goes
through every stage in order, the first in the router's own pod, the others in their pods on
the same node (at the addresses the operator writes on the pod, read from a downward API file);
each stage's response body, as it is, is the next stage's request body, its Content-Type the
next request's Content-Type; the client's Accept goes to the last stage, which may stream.

Bodies pass through untouched in both directions (buffered, or chunk by chunk when the last
container streams); only hop-by-hop headers are dropped. The router's own errors have SageMaker's
shape; a container's non-2xx answer is passed on as it is, with FAILED_CONTAINER_HEADER naming
the container (the gateway turns it into a ModelError naming it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sageport.contract import (
    FAILED_CONTAINER_HEADER,
    INVOCATIONS_PATH,
    MULTI_MODEL_PATH,
    PING_PATH,
    RETRY_ELSEWHERE_HEADER,
    TARGET_CONTAINER_HEADER,
    TARGET_MODEL_HEADER,
)
from sageport.net import awserrors
from sageport.net.httpserver import Request, Response, ServerState, StreamSink
from sageport.net.upstream import (
    ConnectFailedError,
    Target,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeoutError,
)
from sageport.net.upstream import Response as UpstreamResponse
from sageport.router.loader import ModelLoader
from sageport.router.metrics import ContainerMetrics, RouterMetrics
from sageport.router.routing import Container, choose, parse_stage_addresses

log = logging.getLogger("sageport.router")

_TARGET = TARGET_CONTAINER_HEADER.lower()
_TARGET_MODEL = TARGET_MODEL_HEADER.lower()
LOAD_TIMEOUT_SECONDS = 300.0  # a LoadModel call; callers stop waiting at the gateway's 60 s
# Not forwarded either way: they describe one hop, and the server and pool write their own.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "expect", "te", "upgrade"}
)
PING_TIMEOUT_SECONDS = 2.0  # SageMaker's per-ping timeout
STAGES_POLL_SECONDS = 0.5  # how often the stage addresses file is read again


@dataclass
class RouterSettings:
    model_timeout: float = 60.0  # SageMaker's invocation limit
    stream_idle_timeout: float = 60.0
    max_body_bytes: int = 6 * 1024 * 1024 + 64 * 1024  # the gateway caps bodies at 6 MiB


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in _HOP_BY_HOP}


class Router:
    """Direct when ``stages`` is empty; else a Serial pipeline: the one container of
    ``containers`` (in the router's pod), then ``stages`` in order, found in ``stages_file``."""

    def __init__(
        self,
        containers: Mapping[str, Container],
        metrics: RouterMetrics,
        settings: RouterSettings,
        stages: Sequence[str] = (),
        stages_file: str | None = None,
        loader: ModelLoader | None = None,
    ) -> None:
        self.containers = dict(containers)
        self.loader = loader  # multi-model: the router loads TargetModels into the one container
        self.metrics = metrics
        self.settings = settings
        self.stages = tuple(stages)
        if self.stages and len(self.containers) != 1:
            raise ValueError("a Serial pipeline's router has one container in its own pod, the first stage")
        self.chain = (*self.containers, *self.stages)
        self._local = {host: container.target for host, container in self.containers.items()}
        self._addresses: dict[str, Target] = {}
        self._stages_file = Path(stages_file) if stages_file else None
        self._stages_text: str | None = None
        self._container_metrics: dict[str, ContainerMetrics] = {
            host: metrics.for_container(host) for host in self.chain
        }
        self._pool: UpstreamPool | None = None
        self._watch: asyncio.Task[None] | None = None
        self.draining = False

    async def start(self) -> None:
        self._pool = UpstreamPool()
        if self._stages_file is not None:
            self.read_stages_file()
            self._watch = asyncio.create_task(self._watch_stages_file())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._pool is not None:
            self._pool.close()

    # ---- where the stages are (Serial) -----------------------------------------------------
    def set_stage_addresses(self, text: str) -> None:
        """The operator's ``host=ip:port,...`` for the further stages (see parse_stage_addresses)."""
        if text != self._stages_text:
            self._stages_text = text
            self._addresses = {
                host: target for host, target in parse_stage_addresses(text).items() if host in self.stages
            }
            log.info("stage addresses: %s", text or "(none)")

    def read_stages_file(self) -> None:
        assert self._stages_file is not None
        try:
            text = self._stages_file.read_text()
        except OSError:
            text = ""  # not written yet: no stage is there
        self.set_stage_addresses(text)

    async def _watch_stages_file(self) -> None:
        while True:
            await asyncio.sleep(STAGES_POLL_SECONDS)
            self.read_stages_file()

    def _target(self, host: str) -> Target | None:
        return self._local.get(host) or self._addresses.get(host)

    def server_state(self) -> ServerState:
        return ServerState(self.handle, self._render_protocol_error, self.settings.max_body_bytes)

    def _render_protocol_error(self, status: int, message: str) -> Response:
        error = awserrors.ApiError("ValidationError" if status < 500 else "InternalFailure", status, message)
        return Response(*awserrors.render_error(error, str(uuid.uuid4())))

    async def handle(self, request: Request, sink: StreamSink) -> Response | None:
        if request.method == "POST" and request.raw_path == INVOCATIONS_PATH:
            return await self.invoke(request, sink)
        if (
            self.loader is not None
            and request.method == "POST"
            and request.raw_path.startswith(MULTI_MODEL_PATH + "/")
            and request.raw_path.endswith("/invoke")
        ):
            return await self.invoke_multi_model(request, sink)
        if request.method == "GET" and request.raw_path == PING_PATH:
            return await self.ping()
        if request.method == "GET" and request.raw_path == "/metrics":
            return Response(
                200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self.metrics.registry)
            )
        return Response(404, {"Content-Type": "text/plain"}, b"not found\n")

    # ---- health ----------------------------------------------------------------------------
    async def _container_ready(self, host: str) -> bool:
        assert self._pool is not None
        target = self._target(host)
        if target is None:
            return False
        try:
            response = await self._pool.request("GET", target, PING_PATH, {}, b"", PING_TIMEOUT_SECONDS)
            try:
                await response.read()
            finally:
                response.release()
        except UpstreamError:
            return False
        return response.status == 200

    async def ping(self) -> Response:
        """200 only when every container answers its own /ping with 200 (a pipeline's stages in
        their pods included): the instance is ready only when all of it is."""
        if self.draining:
            return Response(503, {"Content-Type": "text/plain"}, b"draining\n")
        if self._stages_file is not None:
            self.read_stages_file()
        ready = await asyncio.gather(*(self._container_ready(host) for host in self.chain))
        waiting = [host for host, ok in zip(self.chain, ready, strict=True) if not ok]
        if waiting:
            return Response(
                503, {"Content-Type": "text/plain"}, f"not ready: {', '.join(waiting)}\n".encode()
            )
        return Response(200, {"Content-Type": "text/plain"}, b"")

    # ---- invocations -----------------------------------------------------------------------
    async def invoke(self, request: Request, sink: StreamSink) -> Response | None:
        if self.stages:
            return await self.invoke_serial(request, sink)
        try:
            container = choose(self.containers, request.headers.get(_TARGET))
        except awserrors.ApiError as error:
            request_id = request.headers.get("x-amzn-requestid") or str(uuid.uuid4())
            return Response(*awserrors.render_error(error, request_id))
        headers = _forwardable(request.headers)
        return await self._call(container.hostname, container.target, headers, request.body, sink, True)

    async def invoke_multi_model(self, request: Request, sink: StreamSink) -> Response | None:
        """``POST /models/<name>/invoke`` (what the gateway sends for a TargetModel): load the model
        into the container first if it does not have it, as SageMaker's platform does; once more
        when the container answers 404 (it lost the model: restarted)."""
        assert self.loader is not None
        name = request.raw_path.removeprefix(MULTI_MODEL_PATH + "/").removesuffix("/invoke")
        target = request.headers.get(_TARGET_MODEL)
        if not target or "/" in name:
            error = awserrors.ApiError("ValidationError", 400, f"{TARGET_MODEL_HEADER} names no model.")
            return Response(*awserrors.render_error(error, str(uuid.uuid4())))
        (container,) = self.containers.values()
        headers = _forwardable(request.headers)
        for attempt in (1, 2):
            failure = await self.loader.ensure(name, target)
            if failure is not None:
                headers_out = {"Content-Type": "application/json"}
                if failure.from_container:
                    headers_out[FAILED_CONTAINER_HEADER] = container.hostname
                return Response(failure.status, headers_out, failure.body)
            answer = await self._call(
                container.hostname, container.target, headers, request.body, sink, True, path=request.raw_path
            )
            if answer is None or answer.status != 404 or attempt == 2:
                return answer
            self.loader.forget(name)
        raise AssertionError("unreachable")

    async def load_model(self, path: str, body: bytes) -> tuple[int, bytes]:
        """LoadModel on the one container: its status and body (a 502 when it does not answer)."""
        assert self._pool is not None
        (container,) = self.containers.values()
        headers = {"content-type": "application/json"}
        try:
            response = await self._pool.post(container.target, path, headers, body, LOAD_TIMEOUT_SECONDS)
            try:
                return response.status, await response.read()
            finally:
                response.release()
        except UpstreamError as error:
            return 502, f"container {container.hostname} did not answer LoadModel: {error}".encode()

    async def invoke_serial(self, request: Request, sink: StreamSink) -> Response | None:
        """Through every stage in order; the first non-2xx answer (or a stage that does not
        answer) ends the chain and is the answer, naming the stage."""
        headers = _forwardable(request.headers)
        headers.pop(_TARGET, None)
        accept = headers.pop("accept", None)
        body = request.body
        deadline = time.monotonic() + self.settings.model_timeout
        last = len(self.chain) - 1
        for index, host in enumerate(self.chain):
            target = self._target(host)
            if target is None:
                return self._stage_missing(host, "has no address yet")
            if index == last and accept is not None:
                headers["accept"] = accept
            seconds = max(deadline - time.monotonic(), 0.001)
            if index == last:
                return await self._call(host, target, headers, body, sink, True, seconds)
            answer = await self._call(host, target, headers, body, sink, False, seconds)
            assert answer is not None  # buffered: never streamed
            if answer.status >= 300:
                return answer
            body = answer.body
            content_type = answer.headers.get("content-type")
            if content_type is None:
                headers.pop("content-type", None)
            else:
                headers["content-type"] = content_type
        raise AssertionError("unreachable: the chain has a last stage")

    async def _call(
        self,
        host: str,
        target: Target,
        headers: dict[str, str],
        body: bytes,
        sink: StreamSink,
        last: bool,
        seconds: float | None = None,
        path: str = INVOCATIONS_PATH,
    ) -> Response | None:
        """One container's answer: buffered, or streamed to ``sink`` when it is the last and
        streams. Its non-2xx answers carry FAILED_CONTAINER_HEADER."""
        assert self._pool is not None
        metrics = self._container_metrics[host]
        metrics.invocations.inc()
        started = time.perf_counter()
        try:
            response = await self._pool.post(
                target, path, headers, body, seconds or self.settings.model_timeout
            )
        except UpstreamError as error:
            metrics.invocation_5xx_errors.inc()
            if isinstance(error, ConnectFailedError) and self.stages:
                return self._stage_missing(host, f"refused the connection ({error})")
            return self._container_failed(host, error)
        try:
            result = await self._answer(response, sink, last)
        except UpstreamError as error:
            metrics.invocation_5xx_errors.inc()
            if sink.started:
                raise ConnectionResetError(str(error)) from None  # the client sees a cut stream
            return self._container_failed(host, error)
        finally:
            response.release()
        metrics.container_latency.observe(time.perf_counter() - started)
        if response.status >= 500:
            metrics.invocation_5xx_errors.inc()
        elif response.status >= 400:
            metrics.invocation_4xx_errors.inc()
        if result is not None and response.status >= 300:
            result.headers[FAILED_CONTAINER_HEADER] = host
        return result

    async def _answer(self, response: UpstreamResponse, sink: StreamSink, last: bool) -> Response | None:
        headers = _forwardable(response.headers)
        if (
            last
            and response.status < 300
            and response.headers.get("transfer-encoding", "").lower() == "chunked"
        ):
            await sink.start(response.status, headers)
            async for chunk in response.iter_chunks(self.settings.stream_idle_timeout):
                await sink.write(chunk)
            await sink.end()
            return None
        return Response(response.status, headers, await response.read())

    def _container_failed(self, host: str, error: UpstreamError) -> Response:
        """The container did not answer: a 5xx the gateway reports as ModelError naming it."""
        log.warning("container %s failed: %s", host, error)
        status = 504 if isinstance(error, UpstreamTimeoutError) else 502
        body = f"container {host} did not answer: {error}".encode()
        return Response(status, {"Content-Type": "text/plain", FAILED_CONTAINER_HEADER: host}, body)

    def _stage_missing(self, host: str, why: str) -> Response:
        """A stage of this instance is not there (its pod died or is being replaced): no model
        got the call past it, so the gateway may send it to another instance."""
        log.warning("stage %s %s", host, why)
        headers = {"Content-Type": "text/plain", FAILED_CONTAINER_HEADER: host, RETRY_ELSEWHERE_HEADER: host}
        return Response(503, headers, f"stage {host} {why}\n".encode())
