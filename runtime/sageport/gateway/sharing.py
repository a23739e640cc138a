"""Sending this replica's serverless demand to its peers, and taking theirs (the shell around
``peers``): unary gRPC ``sageport.gateway.Peers/Report`` on the scaler port, JSON bodies; and
``Peers/Count``, a fleet's calls in the last minute on a peer, asked when KEDA asks this replica
for a target-tracked variant's calls.

A change of a fleet's counts is sent at the next turn of the event loop (changes within one turn
go in one report), and every fleet with calls is sent again each heartbeat. A peer that does not
answer within a second is skipped for that report; the next report or heartbeat tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import grpc

from sageport.gateway import peers
from sageport.gateway.activator import Activator
from sageport.gateway.peers import FleetKey

log = logging.getLogger("sageport.gateway.sharing")

SERVICE = "sageport.gateway.Peers"
METHOD = f"/{SERVICE}/Report"
COUNT_METHOD = f"/{SERVICE}/Count"
_SEND_TIMEOUT = 1.0
# A peer that does not answer a count in time is left out of that poll (KEDA polls again soon).
_COUNT_TIMEOUT = 0.5


def _same(data: bytes) -> bytes:
    return data


def peer_handler(activator: Activator) -> grpc.GenericRpcHandler:
    """The receiving side, added to the scaler's gRPC server."""

    async def report(data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            activator.receive(peers.decode(data))
        except peers.ReportError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return b""

    async def count(data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            key = peers.decode_fleet(data)
        except peers.ReportError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return str(activator.calls_per_minute(key)).encode()

    def unary(function: Callable[..., Awaitable[bytes]]) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            function, request_deserializer=_same, response_serializer=_same
        )

    return grpc.method_handlers_generic_handler(SERVICE, {"Report": unary(report), "Count": unary(count)})


class Sharer:
    """Sends ``activator``'s counts to the addresses ``addresses()`` gives (``host:port`` of the
    peers' scaler ports, this replica's own excluded)."""

    def __init__(
        self, activator: Activator, replica: str, addresses: Callable[[], Iterable[str]],
        heartbeat: float = peers.HEARTBEAT_SECONDS,
    ) -> None:  # fmt: skip
        self._activator = activator
        self._replica = replica
        self._addresses = addresses
        self._heartbeat = heartbeat
        self._seq = 0
        self._dirty: set[FleetKey] = set()
        self._flushing = False
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()  # made in the gateway's loop, before any call
        activator.on_change = self.changed
        activator.peer_calls_per_minute = self.peer_calls_per_minute

    def changed(self, key: FleetKey) -> None:
        self._dirty.add(key)
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        keys, self._dirty = self._dirty, set()
        self._send(keys)

    def _send(self, keys: Iterable[FleetKey]) -> None:
        fleets = {key: self._activator.local(key) for key in keys}
        if not fleets:
            return
        self._seq += 1
        data = peers.encode(peers.Report(self._replica, self._seq, fleets))
        wanted = set(self._addresses())
        for gone in set(self._channels) - wanted:
            channel = self._channels.pop(gone)
            self._spawn(channel.close())
        for address in wanted:
            self._spawn(self._post(self._channel(address), address, data))

    def _channel(self, address: str) -> grpc.aio.Channel:
        """The peer's channel, kept open between reports and counts."""
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address)
        return channel

    async def peer_calls_per_minute(self, key: FleetKey) -> int:
        """The fleet's calls in the last minute on every peer that answers in time."""
        data = peers.encode_fleet(key)
        counts = await asyncio.gather(*(self._count(address, data) for address in set(self._addresses())))
        return sum(counts)

    async def _count(self, address: str, data: bytes) -> int:
        call = self._channel(address).unary_unary(
            COUNT_METHOD, request_serializer=_same, response_deserializer=_same
        )
        try:
            return max(int(await call(data, timeout=_COUNT_TIMEOUT)), 0)
        except (grpc.aio.AioRpcError, ValueError) as error:
            log.debug("count from peer %s failed: %s", address, error)
            return 0

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, channel: grpc.aio.Channel, address: str, data: bytes) -> None:
        call = channel.unary_unary(METHOD, request_serializer=_same, response_deserializer=_same)
        try:
            await call(data, timeout=_SEND_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            log.debug("demand report to peer %s failed: %s", address, error.code())

    async def run(self) -> None:
        """Send until cancelled: changes as they happen, the busy fleets every heartbeat."""
        try:
            while True:
                await asyncio.sleep(self._heartbeat)
                self._send(self._activator.busy())
                self._activator.peers.expire(time.monotonic())
        finally:
            for task in list(self._tasks):
                task.cancel()
            for channel in self._channels.values():
                with contextlib.suppress(Exception):
                    await channel.close()
