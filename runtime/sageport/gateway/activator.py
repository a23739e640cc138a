"""The gateway as activator of serverless variants: it holds calls while KEDA scales from zero.

KEDA learns about demand through the external-push scaler served here (gRPC,
``externalscaler.ExternalScaler``): the first call for a variant with no ready pod streams
``true`` on ``StreamIsActive``, so KEDA scales 0 -> 1 at once rather than at its next poll. The
call waits until the route table (fed by the EndpointSlices the gateway watches) has a ready
pod of the variant, and goes straight to it. ``IsActive`` (KEDA's poll, which decides scale-in)
is true while calls are in flight or ended less than the trigger's ``activeWindowSeconds`` ago;
``GetMetrics`` reports the calls in flight and held, for the 1 <-> N HPA.

A target-tracked variant (SageMakerVariantInvocationsPerInstance) asks instead for its calls in
the last minute (trigger metadata ``contract.SCALER_KEY_METRIC``), counted for every variant as
calls are routed; the HPA divides them by its instances and compares with the target.

With several gateway replicas KEDA's one connection reaches one of them (through the Service).
The serverless counts KEDA asks for are therefore this replica's calls plus what its peers last
reported (``peers.PeerDemand``; ``sharing`` sends and receives the reports): a call held by
another replica reaches KEDA's stream within one report, and maxConcurrency holds for the
endpoint. The calls per minute of target tracking are asked of the peers when KEDA asks for them
(``peer_calls_per_minute``, every polling interval): a sum over the replicas alive at that moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from sageport import contract
from sageport.gateway import scaler_proto as pb
from sageport.gateway.peers import FleetDemand, FleetKey, PeerDemand, Report
from sageport.net.awserrors import ApiError, throttling

log = logging.getLogger("sageport.gateway.activator")

RATE_WINDOW_SECONDS = 60.0  # SageMaker's InvocationsPerInstance is a per-minute sum


def throttled(endpoint: str, max_concurrency: int) -> ApiError:
    """SageMaker's answer above maxConcurrency: ThrottlingException, HTTP 400 (boto3 retries it)."""
    return throttling(
        f"Endpoint {endpoint} has {max_concurrency} concurrent invocations in flight, its maxConcurrency: "
        "retry later, or raise MaxConcurrency."
    )


def fleet_key(ref: Any) -> FleetKey:
    """The fleet a ScaledObjectRef names (its namespace and the trigger's metadata)."""
    metadata: Mapping[str, str] = ref.scalerMetadata
    return (
        str(ref.namespace),
        metadata.get(contract.SCALER_KEY_ENDPOINT, ""),
        metadata.get(contract.SCALER_KEY_CONFIG, ""),
        metadata.get(contract.SCALER_KEY_VARIANT, ""),
    )


@dataclass
class _Fleet:
    in_flight: int = 0  # calls admitted and not answered yet, the held ones included
    held: int = 0  # calls waiting for a ready pod
    last_call: float = float("-inf")  # monotonic time the last call ended
    streams: set[asyncio.Queue[None]] = field(default_factory=set)  # KEDA's StreamIsActive calls
    calls: deque[float] = field(default_factory=deque)  # when calls were routed, the last minute's


class _InFlight:
    """One admitted call; a class, not @contextmanager: ApiError is a frozen dataclass, and
    contextlib sets __traceback__ on what passes through a generator."""

    def __init__(self, fleet: _Fleet, clock: Callable[[], float], changed: Callable[[], None]) -> None:
        self._fleet, self._clock, self._changed = fleet, clock, changed

    def __enter__(self) -> None:
        self._fleet.in_flight += 1
        self._changed()

    def __exit__(self, *_: object) -> None:
        self._fleet.in_flight -= 1
        self._fleet.last_call = self._clock()
        self._changed()


class Activator:
    """Demand per serverless fleet, the held calls, and KEDA's scaler on top of them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, replica: str | None = None) -> None:
        self._fleets: dict[FleetKey, _Fleet] = {}
        self._changed = asyncio.Event()  # set (and replaced) whenever the route table changes
        self._clock = clock
        self.wakeups = 0  # "active" pushed to KEDA (a first held call of a fleet, all replicas)
        # Random per process: a restarted replica at the same address is a new peer.
        self.peers = PeerDemand(replica or uuid.uuid4().hex[:12])
        # Told which fleet's local counts changed (the sharing sends them to the peers).
        self.on_change: Callable[[FleetKey], None] = lambda _key: None
        # The other replicas' calls in the last minute for a fleet (the sharing asks them).
        self.peer_calls_per_minute: Callable[[FleetKey], Awaitable[int]] = _no_peers

    def _fleet(self, key: FleetKey) -> _Fleet:
        fleet = self._fleets.get(key)
        if fleet is None:
            fleet = self._fleets[key] = _Fleet()
        return fleet

    # ---- the calls --------------------------------------------------------------------------
    def admit(self, key: FleetKey, max_concurrency: int) -> _InFlight:
        """Count a call in flight for its whole life (``with``), or refuse it above ``max_concurrency``."""
        fleet = self._fleet(key)
        if fleet.in_flight + self.peers.in_flight(key, self._clock()) >= max_concurrency:
            raise throttled(key[1], max_concurrency)
        return _InFlight(fleet, self._clock, lambda: self.on_change(key))

    def routes_changed(self) -> None:
        """The route table was replaced: held calls look again for a ready pod."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_ready(self, key: FleetKey, has_instance: Callable[[], bool], seconds: float) -> bool:
        """Hold until ``has_instance()`` (checked on every route change) or ``seconds`` pass; tell KEDA
        at once that the fleet is wanted. False when no pod became ready in time."""
        if has_instance():
            return True
        fleet = self._fleet(key)
        fleet.held += 1
        self.on_change(key)
        # Later calls, here or on a peer, ride on the same wake-up.
        if fleet.held == 1 and self.peers.held(key, self._clock()) == 0:
            log.info("waking %s/%s variant %s (config %s)", key[0], key[1], key[3], key[2])
            self._wake(key, fleet)
        deadline = self._clock() + seconds
        try:
            while not has_instance():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return has_instance()
            return True
        finally:
            fleet.held -= 1
            self.on_change(key)

    def _wake(self, key: FleetKey, fleet: _Fleet) -> None:
        self.wakeups += 1
        if not fleet.streams:  # KEDA is connected to a peer (which gets this replica's report)
            log.info("no KEDA stream here for %s/%s variant %s: the peers' is told", key[0], key[1], key[3])
        for stream in fleet.streams:
            stream.put_nowait(None)

    # ---- the peers (other gateway replicas) -------------------------------------------------
    def local(self, key: FleetKey) -> FleetDemand:
        """This replica's own counts for ``key``, as reported to the peers."""
        fleet = self._fleets.get(key)
        if fleet is None:
            return FleetDemand(0, 0, float("inf"))
        idle = 0.0 if fleet.in_flight else max(self._clock() - fleet.last_call, 0.0)
        return FleetDemand(fleet.in_flight, fleet.held, idle)

    def busy(self) -> list[FleetKey]:
        """Fleets with calls here now: reported again every heartbeat, so they do not expire."""
        return [key for key, fleet in self._fleets.items() if fleet.in_flight]

    def receive(self, report: Report) -> None:
        """A peer's report: a first held call anywhere wakes the fleet through KEDA's stream here."""
        for key in self.peers.receive(report, self._clock()):
            fleet = self._fleet(key)
            if fleet.held == 0:
                log.info("waking %s/%s variant %s for a peer's held call", key[0], key[1], key[3])
                self._wake(key, fleet)

    def invoked(self, key: FleetKey) -> None:
        """A call was routed to the fleet (any variant: target tracking counts them)."""
        calls = self._fleet(key).calls
        now = self._clock()
        calls.append(now)
        while calls[0] <= now - RATE_WINDOW_SECONDS:
            calls.popleft()

    def calls_per_minute(self, key: FleetKey) -> int:
        fleet = self._fleets.get(key)
        if fleet is None:
            return 0
        cutoff = self._clock() - RATE_WINDOW_SECONDS
        while fleet.calls and fleet.calls[0] <= cutoff:
            fleet.calls.popleft()
        return len(fleet.calls)

    # ---- what KEDA asks ---------------------------------------------------------------------
    def demand(self, key: FleetKey) -> int:
        """Calls in flight (held ones included) for the fleet, on every gateway replica."""
        fleet = self._fleets.get(key)
        return (fleet.in_flight if fleet else 0) + self.peers.in_flight(key, self._clock())

    def is_active(self, key: FleetKey, window: float) -> bool:
        now = self._clock()
        fleet = self._fleets.get(key)
        if self.demand(key) > 0:
            return True
        last = max(fleet.last_call if fleet else float("-inf"), self.peers.last_call(key, now))
        return now - last < window

    async def stream(self, key: FleetKey) -> AsyncIterator[bool]:
        """``True`` now if calls are held, then once for every first held call; open until cancelled."""
        fleet = self._fleet(key)
        queue: asyncio.Queue[None] = asyncio.Queue()
        fleet.streams.add(queue)
        try:
            if fleet.held + self.peers.held(key, self._clock()) > 0:
                yield True
            while True:
                await queue.get()
                yield True
        finally:
            fleet.streams.discard(queue)


async def _no_peers(_key: FleetKey) -> int:
    return 0


def _window(ref: Any) -> float:
    try:
        return float(ref.scalerMetadata.get("activeWindowSeconds", "10"))
    except ValueError:
        return 10.0


def _calls_per_pod(ref: Any) -> float:
    try:
        return max(float(ref.scalerMetadata.get("callsPerPod", "1")), 1.0)
    except ValueError:
        return 1.0


def _tracks_invocations(ref: Any) -> bool:
    return bool(ref.scalerMetadata.get(contract.SCALER_KEY_METRIC) == contract.SCALER_METRIC_INVOCATIONS)


def _target(ref: Any) -> float:
    try:
        return max(float(ref.scalerMetadata.get(contract.SCALER_KEY_TARGET, "1")), 1e-3)
    except ValueError:
        return 1.0


def scaler_handler(activator: Activator) -> grpc.GenericRpcHandler:
    """The ExternalScaler service over ``activator``, for a grpc.aio server."""

    async def is_active(ref: Any, _context: Any) -> Any:
        return pb.IsActiveResponse(result=activator.is_active(fleet_key(ref), _window(ref)))

    async def stream_is_active(ref: Any, _context: Any) -> AsyncIterator[Any]:
        key = fleet_key(ref)
        log.info("KEDA is listening for %s/%s variant %s", key[0], key[1], key[3])
        async for active in activator.stream(key):
            yield pb.IsActiveResponse(result=active)

    async def get_metric_spec(ref: Any, _context: Any) -> Any:
        if _tracks_invocations(ref):
            spec = pb.MetricSpec(metricName=contract.SCALER_METRIC_INVOCATIONS, targetSizeFloat=_target(ref))
        else:
            spec = pb.MetricSpec(metricName=contract.SCALER_METRIC, targetSizeFloat=_calls_per_pod(ref))
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    async def get_metrics(request: Any, _context: Any) -> Any:
        ref = request.scaledObjectRef
        if _tracks_invocations(ref):
            key = fleet_key(ref)
            name = contract.SCALER_METRIC_INVOCATIONS
            measured = activator.calls_per_minute(key) + await activator.peer_calls_per_minute(key)
        else:
            name, measured = contract.SCALER_METRIC, activator.demand(fleet_key(ref))
        value = pb.MetricValue(metricName=request.metricName or name, metricValueFloat=measured)
        return pb.GetMetricsResponse(metricValues=[value])

    def unary(function: Any, request: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            function, request_deserializer=request.FromString, response_serializer=_serialize
        )

    return grpc.method_handlers_generic_handler(
        pb.SERVICE,
        {
            "IsActive": unary(is_active, pb.ScaledObjectRef),
            "StreamIsActive": grpc.unary_stream_rpc_method_handler(
                stream_is_active,
                request_deserializer=pb.ScaledObjectRef.FromString,
                response_serializer=_serialize,
            ),
            "GetMetricSpec": unary(get_metric_spec, pb.ScaledObjectRef),
            "GetMetrics": unary(get_metrics, pb.GetMetricsRequest),
        },
    )


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


async def start_scaler(
    activator: Activator, host: str, port: int, extra: Sequence[grpc.GenericRpcHandler] = ()
) -> grpc.aio.Server:
    """Serve KEDA's external scaler (and ``extra`` services) on ``host:port``; the caller stops
    the returned server."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((scaler_handler(activator), *extra))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen on {host}:{port} for the scaler")
    await server.start()
    return server
