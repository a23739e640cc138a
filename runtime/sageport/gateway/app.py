"""The HTTP shell: our httptools server in front, a pooled upstream client to the model instances.

Everything that decides something (which variant, which pod, which error, which frame) lives in
the pure modules; this file only moves bytes, keeps counters and measures time.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sageport.asyncinf.queue import call_key
from sageport.asyncinf.request import AsyncRequest, parse_async_request, result_locations
from sageport.contract import (
    AMZ_TARGET_HEADER,
    FAILED_CONTAINER_HEADER,
    PING_PATH,
    REDIS_URL_ENV,
    RETRY_ELSEWHERE_HEADER,
    SERVING_STATUSES,
    async_stream,
)
from sageport.gateway import errors
from sageport.gateway.activator import Activator
from sageport.gateway.auth import Authenticator
from sageport.gateway.capture import DataCapture
from sageport.gateway.invocation import (
    INFERENCE_ID_HEADER,
    MAX_BODY_BYTES,
    MAX_RESPONSE_BYTES,
    Invocation,
    Operation,
    parse_invocation,
)
from sageport.gateway.metrics import GatewayMetrics, VariantMetrics
from sageport.gateway.routing import (
    Endpoint,
    Instance,
    Route,
    RouteTable,
    Variant,
    choose_instance,
    choose_shadows,
    route,
    serverless_target,
)
from sageport.gateway.shadow import ShadowCopies
from sageport.net import awserrors, eventstream
from sageport.net.auth import RequestParts
from sageport.net.httpserver import Request, Response, ServerState, StreamSink
from sageport.net.upstream import (
    ConnectFailedError,
    Target,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeoutError,
    UpstreamTooLargeError,
)
from sageport.net.upstream import (
    Response as UpstreamResponse,
)

_FAILED_CONTAINER = FAILED_CONTAINER_HEADER.lower()
_RETRY_ELSEWHERE = RETRY_ELSEWHERE_HEADER.lower()
log = logging.getLogger("sageport.gateway")


class ControlApiHandler(Protocol):
    async def handle(self, request: Request) -> Response: ...


class AsyncQueue(Protocol):
    async def append(self, stream: str, fields: dict[str, str | bytes], once_key: str) -> bool: ...


request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Response headers a model may set that SageMaker passes back to the caller.
_MODEL_RESPONSE_HEADERS = tuple(
    (name, name.lower())
    for name in (
        "X-Amzn-SageMaker-Custom-Attributes",
        "X-Amzn-SageMaker-New-Session-Id",
        "X-Amzn-SageMaker-Closed-Session-Id",
    )
)
_EVENT_STREAM = "application/vnd.amazon.eventstream"
# The namespace in stream names of a standalone gateway's endpoints (a routes file has none).
STANDALONE_NAMESPACE = "default"
# Health checks: the container contract's /ping, and /healthz.
_HEALTH_PATHS = (PING_PATH, "/healthz")


@dataclass(frozen=True)
class Settings:
    model_timeout: float = 60.0
    connect_timeout: float = 2.0
    max_in_flight: int = 4096
    # Name used in "Endpoint X of account Y not found." messages.
    account: str = "sageport"
    access_log: bool = False
    # Idle keep-alive connections to a pod are closed after this long; below the model servers'
    # own keep-alive (uvicorn 65 s, aiohttp 75 s) so we never reuse a socket they are closing.
    keepalive_timeout: float = 15.0
    # False when /metrics has a port of its own (--metrics-port): endpoint names stay internal.
    metrics_on_main_port: bool = True
    # Copies to shadow variants in flight at most; more are dropped (and counted).
    max_shadow_copies: int = 256


class Gateway:
    def __init__(
        self,
        table: RouteTable,
        authenticator: Authenticator,
        metrics: GatewayMetrics,
        settings: Settings = Settings(),
        rng: random.Random | None = None,
        capture: DataCapture | None = None,
    ) -> None:
        self.table = table
        self.authenticator = authenticator
        self.metrics = metrics
        self.settings = settings
        self.capture = capture  # writes the calls of endpoints with data capture
        self.rng = rng or random.Random()
        self.in_flight = 0
        self.ready = True
        self.draining = False
        self._pool: UpstreamPool | None = None
        # Kubernetes mode: re-read an Endpoint (namespace, name) the table has not in service yet.
        self.refresh_endpoint: Callable[[str, str], Awaitable[None]] | None = None
        # Kubernetes mode: the SageMaker control-plane API (sageport.controlapi), if enabled.
        self.control_api: ControlApiHandler | None = None
        # Where InvokeEndpointAsync calls are queued (Redis Streams), if configured.
        self.queue: AsyncQueue | None = None
        self._request_ids = RequestIds()
        self._targets: dict[str, Target] = {}
        # Serverless variants: calls held while KEDA scales from zero, demand reported to it.
        self.activator = Activator()
        table.changed = self.activator.routes_changed
        metrics.count_instances(table.instance_counts)
        metrics.count_serverless(self._serverless_counts)
        self.shadow_copies = ShadowCopies(
            settings.max_shadow_copies, lambda e, v: metrics.shadow_copies_dropped.labels(e, v).inc()
        )

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._pool = UpstreamPool(self.settings.connect_timeout, self.settings.keepalive_timeout)

    async def close(self) -> None:
        await self.shadow_copies.close()
        if self._pool is not None:
            self._pool.close()

    def server_state(self) -> ServerState:
        return ServerState(self.dispatch, self._render_protocol_error, MAX_BODY_BYTES)

    def metrics_server_state(self) -> ServerState:
        """For a separate metrics listener: /metrics and /ping only, tiny bodies."""

        async def metrics_only(request: Request, sink: StreamSink) -> Response:
            if request.method == "GET" and request.raw_path == "/metrics":
                return self.metrics_page()
            if request.method == "GET" and request.raw_path in _HEALTH_PATHS:
                return self.ping()
            return Response(404, {"Content-Type": "text/plain"}, b"not found\n")

        return ServerState(metrics_only, self._render_protocol_error, 1024)

    def _render_protocol_error(self, status: int, message: str) -> Response:
        """For requests the HTTP layer refuses before the handler runs (malformed, too large)."""
        if status == 413:
            error = errors.payload_too_large(MAX_BODY_BYTES)
        elif status < 500:
            error = awserrors.validation_error(message)
        else:
            error = awserrors.internal_failure()
        return self._error_response(error, self._request_ids.next())

    async def dispatch(self, request: Request, sink: StreamSink) -> Response | None:
        # The control-plane API shares the port: awsJson requests are POST / with X-Amz-Target,
        # a path the Runtime API never uses.
        if (
            self.control_api is not None
            and request.method == "POST"
            and request.raw_path == "/"
            and AMZ_TARGET_HEADER in request.headers
        ):
            if not self.ready:
                return self._error_response(
                    awserrors.service_unavailable("The gateway is starting."), self._request_ids.next()
                )
            return await self.control_api.handle(request)
        if request.method == "GET":
            if request.raw_path in _HEALTH_PATHS:
                return self.ping()
            if request.raw_path == "/metrics" and self.settings.metrics_on_main_port:
                return self.metrics_page()
        return await self.handle(request, sink)

    def ping(self) -> Response:
        if self.draining:
            return Response(503, {"Content-Type": "text/plain"}, b"draining\n")
        if not self.ready:
            return Response(503, {"Content-Type": "text/plain"}, b"starting\n")
        return Response(200, {"Content-Type": "text/plain"}, b"ok\n")

    def metrics_page(self) -> Response:
        return Response(200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self.metrics.registry))

    # ---- requests --------------------------------------------------------------------------
    async def handle(self, request: Request, sink: StreamSink) -> Response | None:
        request_id = self._request_ids.next()
        request_id_var.set(request_id)
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await self._handle(request, sink, request_id, started)
        except awserrors.ApiError as error:
            return self._error_response(error, request_id)
        except ConnectionResetError:
            raise  # the client went away; the HTTP layer closes the connection
        except Exception:
            log.exception("unexpected failure handling %s %s", request.method, request.raw_path)
            if sink.started:
                raise
            return self._error_response(awserrors.internal_failure(), request_id)
        finally:
            self.in_flight -= 1

    def _error_response(self, error: awserrors.ApiError, request_id: str) -> Response:
        self.metrics.gateway_errors.labels(error.code).inc()
        if error.status >= 500:
            log.warning("answering %s: %s", error.code, error.message)
        else:
            log.info("answering %s: %s", error.code, error.message)
        status, headers, body = awserrors.render_error(error, request_id)
        return Response(status, headers, body)

    async def _handle(
        self, request: Request, sink: StreamSink, request_id: str, started: float
    ) -> Response | None:
        if request.method != "POST":
            raise awserrors.unknown_operation()
        invocation = parse_invocation(request.raw_path, request.headers)
        if self.in_flight > self.settings.max_in_flight:
            raise errors.gateway_throttled(self.settings.max_in_flight)
        if not self.ready:
            raise awserrors.service_unavailable("The gateway is starting; retry the request.")
        body = request.body
        principal = await self.authenticator.authenticate(
            RequestParts(
                method=request.method,
                raw_path=request.raw_path,
                raw_query=request.raw_query,
                headers=request.header_values,
                body=body,
            )
        )
        name = invocation.endpoint_name
        endpoint = self.table.lookup(name)
        if not await principal.may_invoke(name, endpoint.namespace if endpoint else None):
            raise awserrors.access_denied(f"{principal.name} is not authorized to invoke endpoint {name}.")
        if endpoint is None:
            raise errors.endpoint_not_found(name, self.settings.account)
        if endpoint.async_paths is not None:
            if invocation.operation is not Operation.INVOKE_ASYNC:
                raise awserrors.validation_error(
                    f"Endpoint {name} is an asynchronous endpoint (it has an AsyncInferenceConfig): "
                    "invoke it with InvokeEndpointAsync."
                )
            return await self._enqueue(request, endpoint, body, request_id)
        if invocation.operation is Operation.INVOKE_ASYNC:
            raise awserrors.validation_error(
                f"Endpoint {name} is not an asynchronous endpoint: its EndpointConfig has no "
                "AsyncInferenceConfig; invoke it with InvokeEndpoint."
            )
        if endpoint.status not in SERVING_STATUSES and self.refresh_endpoint and endpoint.namespace:
            await self.refresh_endpoint(endpoint.namespace, name)
            endpoint = self.table.lookup(name) or endpoint
        serverless = serverless_target(endpoint, invocation.target_variant, self.rng.random())
        if serverless is not None:
            return await self._invoke_serverless(
                endpoint, serverless, invocation, body, sink, request_id, started
            )
        return await self._send(
            endpoint, invocation.target_variant, invocation, body, sink, request_id, started
        )

    async def _invoke_serverless(
        self, endpoint: Endpoint, variant: Variant, invocation: Invocation, body: bytes, sink: StreamSink,
        request_id: str, started: float,
    ) -> Response | None:  # fmt: skip
        """A serverless variant's call: throttled above maxConcurrency in flight (held calls
        count), held while the variant has no ready pod (KEDA is told at once), then sent."""
        limits = variant.serverless
        assert limits is not None
        key = (endpoint.namespace or "", endpoint.name, variant.config, variant.name)
        with self.activator.admit(key, limits.max_concurrency):
            if limits.provisioned_concurrency:
                within = self.activator.demand(key) <= limits.provisioned_concurrency
                counter = (
                    self.metrics.provisioned_invocations if within else self.metrics.spillover_invocations
                )
                counter.labels(endpoint.name, variant.name, variant.config).inc()
            if not variant.instances:
                held = time.perf_counter()

                def ready() -> bool:
                    current = self.table.lookup(endpoint.name)
                    found = current.variant(variant.name) if current is not None else None
                    return found is not None and bool(found.instances)

                if not await self.activator.wait_ready(key, ready, limits.setup_seconds):
                    raise errors.model_not_ready(
                        f"No instance of serverless variant {variant.name} of endpoint {endpoint.name} "
                        f"became ready within {limits.setup_seconds:g} s (its model setup timeout, "
                        "containerStartupHealthCheckTimeoutInSeconds); retry the request."
                    )
                self.metrics.model_setup_time.labels(endpoint.name, variant.name).observe(
                    time.perf_counter() - held
                )
                endpoint = self.table.lookup(endpoint.name) or endpoint
            return await self._send(endpoint, variant.name, invocation, body, sink, request_id, started)

    def _serverless_counts(self) -> Iterator[tuple[str, str, str, int, int, int]]:
        for endpoint, variant, limits in self.table.serverless_variants():
            in_flight = self.activator.demand(
                (endpoint.namespace or "", endpoint.name, variant.config, variant.name)
            )
            yield (
                endpoint.name, variant.name, variant.config, in_flight, limits.max_concurrency,
                limits.provisioned_concurrency,
            )  # fmt: skip

    async def _send(
        self, endpoint: Endpoint, target_variant: str | None, invocation: Invocation, body: bytes,
        sink: StreamSink, request_id: str, started: float,
    ) -> Response | None:  # fmt: skip
        chosen = route(
            endpoint,
            target_variant,
            invocation.target_container,
            self.rng,
            invocation.target_model,
        )
        self.activator.invoked(
            (endpoint.namespace or "", endpoint.name, chosen.variant.config, chosen.variant.name)
        )
        for shadow in choose_shadows(endpoint.shadows, self.rng) if endpoint.shadows else ():
            self._copy_to_shadow(endpoint, shadow, invocation, body, request_id)
        if invocation.operation is Operation.INVOKE_STREAM:
            await self._invoke_stream(sink, invocation, chosen, body, request_id, started)
            return None
        return await self._invoke(invocation, chosen, body, request_id, started)

    async def _enqueue(self, request: Request, endpoint: Endpoint, body: bytes, request_id: str) -> Response:
        """InvokeEndpointAsync: validate, append the call to the chosen variant's stream, and
        answer 202 only once Redis has it (its reply comes after the append-only file write)."""
        assert endpoint.async_paths is not None
        call = parse_async_request(request.headers, body)
        if self.queue is None:
            raise awserrors.service_unavailable(
                "Asynchronous inference needs Redis, and this gateway has none configured "
                f"({REDIS_URL_ENV}; the chart's asyncInference.redis.url)."
            )
        variant = _weighted_variant(endpoint.variants, self.rng)
        if variant is None:
            raise awserrors.validation_error(
                f"Endpoint {endpoint.name} has no production variant with weight."
            )
        output, failure = result_locations(call, *endpoint.async_paths)
        record = AsyncRequest(
            inference_id=call.inference_id,
            output_location=output,
            failure_location=failure,
            received_ms=int(time.time() * 1000),
            ttl_seconds=call.ttl_seconds,
            timeout_seconds=call.timeout_seconds,
            input_location=call.input_location,
            body=call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
        )
        namespace = endpoint.namespace or STANDALONE_NAMESPACE
        stream = async_stream(namespace, endpoint.name, variant.name)
        try:
            queued = await self.queue.append(
                stream, record.to_fields(), call_key(namespace, endpoint.name, call.inference_id)
            )
        except Exception as error:
            log.warning("queueing call %s failed: %s", call.inference_id, error)
            raise awserrors.service_unavailable(
                "The request queue is unavailable; retry the request."
            ) from None
        if not queued:  # a retry of a call queued already: the same answer, queued once
            log.info("call %s was queued already; not queueing it again", call.inference_id)
        headers = {
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
            "X-Amzn-SageMaker-OutputLocation": output,
        }
        if failure is not None:
            headers["X-Amzn-SageMaker-FailureLocation"] = failure
        return Response(202, headers, json.dumps({"InferenceId": call.inference_id}).encode())

    def _variant_metrics(self, chosen: Route) -> VariantMetrics:
        slot = chosen.variant.metrics
        if isinstance(slot, VariantMetrics):
            return slot
        fresh = self.metrics.for_variant(chosen.endpoint.name, chosen.variant.name, chosen.variant.config)
        self.table.remember_metrics(chosen.endpoint.name, chosen.variant, fresh)
        return fresh

    def _forward_headers(self, invocation: Invocation, request_id: str) -> dict[str, str]:
        forwarded = dict(invocation.forward_headers)
        forwarded["X-Amzn-RequestId"] = request_id
        return forwarded

    def _target(self, instance: Instance) -> Target:
        target = self._targets.get(instance.base_url)
        if target is None:
            if len(self._targets) > 65536:  # pods come and go; don't grow forever
                self._targets.clear()
            target = self._targets[instance.base_url] = Target(instance.base_url)
        return target

    async def _post(self, chosen: Route, invocation: Invocation, body: bytes, request_id: str) -> tuple[
            Instance, UpstreamResponse]:  # fmt: skip
        """Send to the chosen instance; if it refuses the connection, try one other instance once.

        The caller owns ``instance.outstanding`` (incremented here) and must release the response.
        """
        assert self._pool is not None
        headers = self._forward_headers(invocation, request_id)
        instance = chosen.instance
        for attempt in (1, 2):
            instance.outstanding += 1
            try:
                response = await self._pool.post(
                    self._target(instance), chosen.path, headers, body, self.settings.model_timeout
                )
                if response.status == 503 and _RETRY_ELSEWHERE in response.headers and attempt == 1:
                    # A stage of this pipeline instance is not there; no model was reached past it.
                    stage = response.headers[_RETRY_ELSEWHERE]
                    alternative = _other_instance(chosen.variant, instance, self.rng)
                    if alternative is not None:
                        await response.read()
                        response.release()
                        instance.outstanding -= 1
                        log.warning(
                            "instance %s lacks its stage %s: trying another", instance.base_url, stage
                        )
                        instance = alternative
                        continue
                return instance, response
            except ConnectFailedError as error:
                instance.outstanding -= 1
                log.warning("instance refused the connection: %s", error)
                alternative = _other_instance(chosen.variant, instance, self.rng)
                if attempt == 2 or alternative is None:
                    raise awserrors.service_unavailable(
                        f"No instance of variant {chosen.variant.name} accepted the connection."
                    ) from None
                instance = alternative
            except BaseException:
                instance.outstanding -= 1
                raise
        raise AssertionError("unreachable")

    def _model_call_failed(self, metrics: VariantMetrics, error: UpstreamError) -> awserrors.ApiError:
        metrics.invocation_model_errors.inc()
        if isinstance(error, UpstreamTimeoutError):
            return errors.model_timeout(seconds=self.settings.model_timeout)
        if isinstance(error, UpstreamTooLargeError):
            return errors.model_response_too_large(MAX_RESPONSE_BYTES)
        log.warning("model call failed: %s", error)
        return errors.model_broken_response()

    async def _invoke(
        self, invocation: Invocation, chosen: Route, body: bytes, request_id: str, started: float
    ) -> Response:
        metrics = self._variant_metrics(chosen)
        metrics.invocations.inc()
        metrics.invocations_per_instance.inc(1.0 / max(len(chosen.variant.instances), 1))
        metrics.in_flight.inc()
        model_started = time.perf_counter()
        if chosen.target_model is not None:
            chosen.instance.begin_model_call(chosen.target_model)
        try:
            instance, response = await self._post(chosen, invocation, body, request_id)
            try:
                payload = await response.read(MAX_RESPONSE_BYTES)
            finally:
                instance.outstanding -= 1
                response.release()
        except UpstreamError as error:
            raise self._model_call_failed(metrics, error) from None
        finally:
            metrics.in_flight.dec()
            if chosen.target_model is not None:
                chosen.instance.end_model_call(chosen.target_model)
        model_seconds = time.perf_counter() - model_started
        metrics.model_latency.observe(model_seconds)
        status = response.status
        if status >= 300:
            self._count_model_failure(metrics, status)
            raise _model_failure(response, payload, invocation.target_container)
        headers = _response_headers(response.headers, chosen.variant.name, request_id)
        content_type = response.headers.get("content-type")
        if content_type is not None:
            headers["Content-Type"] = content_type
        capture = chosen.endpoint.capture
        if capture is not None and self.capture is not None:  # O(1): sample and buffer, no I/O
            sent = invocation.forward_headers
            self.capture.offer(
                capture, chosen.endpoint.name, chosen.variant.name, request_id,
                sent.get(INFERENCE_ID_HEADER), sent.get("Content-Type"), body, content_type, payload,
            )  # fmt: skip
        result = Response(200, headers, payload)
        total = time.perf_counter() - started
        metrics.overhead_latency.observe(max(total - model_seconds, 0.0))
        if self.settings.access_log:
            log.info(
                "invoked endpoint=%s variant=%s instance=%s status=200 model_ms=%.3f total_ms=%.3f",
                chosen.endpoint.name,
                chosen.variant.name,
                instance.base_url,
                model_seconds * 1e3,
                total * 1e3,
            )
        return result

    def _copy_to_shadow(
        self, endpoint: Endpoint, shadow: Variant, invocation: Invocation, body: bytes, request_id: str
    ) -> None:
        """A copy of the request to ``shadow``, in the background; its answer only counts in the
        shadow's metrics (SageMaker's shadow variants: compare before promoting)."""
        instance = choose_instance(shadow, self.rng)
        if instance is None:
            return
        copy = Route(endpoint, shadow, instance)

        async def call() -> None:
            metrics = self._variant_metrics(copy)
            metrics.invocations.inc()
            metrics.in_flight.inc()
            started = time.perf_counter()
            try:
                used, response = await self._post(copy, invocation, body, request_id)
                try:
                    await response.read()
                finally:
                    used.outstanding -= 1
                    response.release()
            except (UpstreamError, awserrors.ApiError):  # no answer (refused, broken, timed out)
                metrics.invocation_model_errors.inc()
                return
            finally:
                metrics.in_flight.dec()
            metrics.model_latency.observe(time.perf_counter() - started)
            if response.status >= 300:
                self._count_model_failure(metrics, response.status)

        self.shadow_copies.send(endpoint.name, shadow.name, call)

    def _count_model_failure(self, metrics: VariantMetrics, status: int) -> None:
        metrics.invocation_model_errors.inc()
        if 400 <= status < 500:
            metrics.invocation_4xx_errors.inc()
        elif status >= 500:
            metrics.invocation_5xx_errors.inc()

    async def _invoke_stream(
        self,
        sink: StreamSink,
        invocation: Invocation,
        chosen: Route,
        body: bytes,
        request_id: str,
        started: float,
    ) -> None:
        metrics = self._variant_metrics(chosen)
        metrics.invocations.inc()
        metrics.invocations_per_instance.inc(1.0 / max(len(chosen.variant.instances), 1))
        metrics.in_flight.inc()
        model_started = time.perf_counter()
        instance: Instance | None = None
        try:
            try:
                instance, response = await self._post(chosen, invocation, body, request_id)
            except UpstreamError as error:
                raise self._model_call_failed(metrics, error) from None
            try:
                await self._relay_stream(sink, response, chosen, metrics, request_id, started, model_started)
            finally:
                response.release()
        finally:
            if instance is not None:
                instance.outstanding -= 1
            metrics.in_flight.dec()

    async def _relay_stream(
        self,
        sink: StreamSink,
        response: UpstreamResponse,
        chosen: Route,
        metrics: VariantMetrics,
        request_id: str,
        started: float,
        model_started: float,
    ) -> None:
        if response.status >= 300:
            try:
                payload = await response.read()
            except UpstreamError:
                payload = b""
            self._count_model_failure(metrics, response.status)
            raise _model_failure(response, payload)
        headers = _response_headers(response.headers, chosen.variant.name, request_id)
        headers["Content-Type"] = _EVENT_STREAM
        model_content_type = response.headers.get("content-type")
        if model_content_type is not None:
            headers["X-Amzn-SageMaker-Content-Type"] = model_content_type
        await sink.start(200, headers)
        # From here on the client has its 200: failures become exception frames, not statuses.
        try:
            async for chunk in response.iter_chunks(self.settings.model_timeout):
                if chunk:
                    await sink.write(eventstream.payload_part(chunk))
        except ConnectionResetError:
            log.info("client went away during the response stream")
            raise
        except UpstreamTimeoutError:
            metrics.invocation_model_errors.inc()
            await sink.write(
                eventstream.model_stream_error(
                    f"The model did not send data for {self.settings.model_timeout:g} seconds.",
                    "ModelInvocationTimeExceeded",
                )
            )
        except UpstreamError as error:
            metrics.invocation_model_errors.inc()
            log.warning("model stream broke: %s", error)
            await sink.write(
                eventstream.model_stream_error(
                    "The model closed the stream before it finished.", "StreamBroken"
                )
            )
        except Exception:
            log.exception("response stream failed")
            await sink.write(eventstream.internal_stream_failure("The gateway failed to relay the stream."))
        model_seconds = time.perf_counter() - model_started
        metrics.model_latency.observe(model_seconds)
        metrics.overhead_latency.observe(max(time.perf_counter() - started - model_seconds, 0.0))
        await sink.end()


def _weighted_variant(variants: list[Variant], rng: random.Random) -> Variant | None:
    """A variant by weight, ready instances or not: an async call waits in its variant's queue
    (even for a variant at zero instances)."""
    weighted = [variant for variant in variants if variant.weight > 0]
    if not weighted:
        return None
    return rng.choices(weighted, weights=[variant.weight for variant in weighted])[0]


class RequestIds:
    """UUID-shaped request ids: a random per-process prefix and a counter.

    Unique across gateway replicas (random prefix) and cheaper than uuid4 per request.
    """

    def __init__(self) -> None:
        prefix = uuid.uuid4().hex
        self._prefix = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}-"
        self._counter = int(prefix[20:], 16)

    def next(self) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFFFFFFFF
        return f"{self._prefix}{self._counter:012x}"


def _other_instance(variant: Variant, failed: Instance, rng: random.Random) -> Instance | None:
    others = [instance for instance in variant.instances if instance is not failed]
    if not others:
        return None
    return min(others, key=lambda instance: (instance.outstanding, rng.random()))


def _model_failure(
    response: UpstreamResponse, payload: bytes, container: str | None = None
) -> awserrors.ApiError:
    """The error for a model's non-2xx answer, naming the container: the one the router says
    answered (a Serial pipeline's failing stage), the one a Direct call targets, or ``primary``."""
    error_type = response.headers.get("x-amzn-errortype")
    named = response.headers.get(_FAILED_CONTAINER) or container or "primary"
    return errors.from_model_response(response.status, error_type, payload, named)


def _response_headers(model_headers: Mapping[str, str], variant: str, request_id: str) -> dict[str, str]:
    headers = {"x-Amzn-Invoked-Production-Variant": variant, "x-amzn-RequestId": request_id}
    for name, lower in _MODEL_RESPONSE_HEADERS:
        value = model_headers.get(lower)
        if value is not None:
            headers[name] = value
    return headers
