"""A small HTTP/1.1 client for the hop to model instances, with keep-alive connection pools.

Why not aiohttp's client: on the hot path it costs several times more CPU per request than the
rest of the gateway together (request/response objects, tracing hooks, timers). The upstream
side only ever sends ``POST /invocations`` with a known body to servers we route to, so a
protocol object with httptools' (llhttp) response parser is enough, and it keeps the added
latency within budget. Responses are buffered or streamed; bodies are never re-chunked here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools


class UpstreamError(Exception):
    pass


class ConnectFailedError(UpstreamError):
    """Nothing was sent: safe to try another instance."""


class UpstreamBrokenError(UpstreamError):
    """The connection failed or the response was malformed after the request was sent."""


class UpstreamTimeoutError(UpstreamError):
    pass


class UpstreamTooLargeError(UpstreamError):
    """The response body is over the caller's limit; the connection is closed, not read to its end."""


class Target:
    """Where one instance listens, parsed once from its base URL."""

    __slots__ = ("host", "host_header", "key", "path_prefix", "port", "ssl")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.ssl = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.ssl else 80)
        self.host_header = parts.netloc
        self.path_prefix = parts.path.rstrip("/")
        self.key = (self.ssl, self.host, self.port)


class Response:
    """A response whose headers have arrived; the body is read with ``read()`` or ``iter_chunks()``."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: dict[str, str] = {}

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, within the deadline given to ``post``; at most ``limit`` bytes."""
        connection = self._connection
        declared = self.headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            connection.close()
            raise UpstreamTooLargeError(f"the response declares {declared} bytes, over {limit}")
        while not connection.complete:
            if connection.failure is not None:
                raise connection.failure
            if limit is not None and connection.body_bytes > limit:
                connection.close()
                raise UpstreamTooLargeError(f"the response is over {limit} bytes")
            await connection.wait_for_data(None)
        if limit is not None and connection.body_bytes > limit:
            raise UpstreamTooLargeError(f"the response is over {limit} bytes")
        return b"".join(connection.chunks)

    async def iter_chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; the deadline is replaced by an idle timeout per chunk."""
        connection = self._connection
        connection.cancel_deadline()
        while True:
            if connection.chunks:
                yield connection.chunks.popleft()
                continue
            if connection.complete:
                return
            if connection.failure is not None:
                raise connection.failure
            await connection.wait_for_data(idle_timeout)

    def release(self) -> None:
        """Hand the connection back to the pool if the exchange finished cleanly, else close it."""
        self._connection.finish()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, key: tuple[bool, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.response: Response | None = None
        self.headers_ready: asyncio.Future[None] | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.body_bytes = 0
        self.complete = False
        self.failure: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._keep_alive = True

    def dropped_by_peer(self) -> bool:
        """An idle connection with something to read has been closed or reset by the model
        (a crashed pod's kernel does so at once), even if the loop has not noticed yet. A
        request written to it would fail, and as InvokeEndpoint is not idempotent, could not
        be sent again: so check before reuse (one poll, no wait), as urllib3 does."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same interface.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamBrokenError("unexpected protocol upgrade from the model"))
        except httptools.HttpParserError as error:
            self._fail(UpstreamBrokenError(f"malformed response from the model: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None and not self.complete:
            # A body delimited by connection close ends here.
            with contextlib.suppress(httptools.HttpParserError):
                self.parser.feed_data(b"")
            if not self.complete:
                self._fail(
                    UpstreamBrokenError("the model closed the connection before the response was complete")
                )

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.body_bytes += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.cancel_deadline()
        self._wake()

    # exchange
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self, timeout: float) -> None:
        self._deadline = None
        self._fail(UpstreamTimeoutError(f"no complete response from the model within {timeout:g} seconds"))

    def _fail(self, failure: UpstreamError) -> None:
        self.cancel_deadline()
        if self.failure is None:
            self.failure = failure
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(failure)
        self._wake()
        self.close()

    async def wait_for_data(self, idle_timeout: float | None) -> None:
        waiter = self._waiter = self.pool.loop.create_future()
        timer = None
        if idle_timeout is not None:
            timer = self.pool.loop.call_later(
                idle_timeout,
                self._fail,
                UpstreamTimeoutError(f"no data from the model for {idle_timeout:g} seconds"),
            )
        try:
            await waiter
        except BaseException:
            self.close()
            raise
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def send(self, head: bytes, body: bytes, timeout: float) -> None:
        assert self.transport is not None
        self.response = Response(self)
        self.headers_ready = self.pool.loop.create_future()
        self._deadline = self.pool.loop.call_later(timeout, self._deadline_passed, timeout)
        if len(body) <= 65536:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)

    def finish(self) -> None:
        self.cancel_deadline()
        if self.complete and self._keep_alive and not self.closed and self.failure is None:
            self._reset()  # the parser itself carries on with the next response on this connection
            self.pool.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(self, connect_timeout: float = 2.0, keepalive_timeout: float = 15.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.keepalive_timeout = keepalive_timeout
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._ssl_context: ssl.SSLContext | None = None

    def put_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.key, []).append(connection)

    async def _acquire(self, target: Target) -> _Connection:
        idle = self._idle.get(target.key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if connection.dropped_by_peer():
                connection.close()
                continue
            if now - connection.idle_since > self.keepalive_timeout:
                connection.close()
                continue
            return connection
        context = None
        if target.ssl:
            context = self._ssl_context = self._ssl_context or ssl.create_default_context()
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Connection(self, target.key), target.host, target.port, ssl=context
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as error:
            raise ConnectFailedError(f"cannot connect to {target.host}:{target.port}: {error}") from None
        return protocol

    async def post(
        self, target: Target, path: str, headers: Mapping[str, str], body: bytes, deadline: float
    ) -> Response:
        """Send the request and wait for the response headers. ``deadline`` bounds the whole
        exchange (headers and body), in seconds, unless the body is then streamed with ``iter_chunks``."""
        return await self.request("POST", target, path, headers, body, deadline)

    async def request(
        self, method: str, target: Target, path: str, headers: Mapping[str, str], body: bytes, deadline: float
    ) -> Response:
        """``post`` with another method (the router's ``GET /ping`` of each container)."""
        connection = await self._acquire(target)
        lines = [f"{method} {target.path_prefix}{path} HTTP/1.1", f"Host: {target.host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        connection.send("\r\n".join(lines).encode("latin-1"), body, deadline)
        assert connection.headers_ready is not None
        assert connection.response is not None
        try:
            await connection.headers_ready
        except BaseException:
            connection.cancel_deadline()
            connection.close()
            raise
        return connection.response

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
