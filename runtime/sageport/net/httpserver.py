"""An HTTP/1.1 server (the gateway's front): an asyncio protocol around httptools (llhttp).

Why not aiohttp's server: on this hot path it costs several times the CPU of the rest of a
proxied request (request/response objects, payload streams, writer machinery). The gateway needs
little: buffered request bodies with a hard size cap, buffered or chunked responses, keep-alive,
pipelined requests answered in order, ``Expect: 100-continue``, and a drain on shutdown.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools

log = logging.getLogger("sageport.net.http")

MAX_URL_BYTES = 8192
MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT_SECONDS = 75.0
# Stop reading from a client that pipelines more than this many requests ahead.
MAX_PIPELINED = 16


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    # Lower-cased name -> first value, and lower-cased name -> every value in order.
    headers: dict[str, str]
    header_values: dict[str, list[str]]
    version: str
    body: bytes = b""


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class BodyTooLargeError(Exception):
    def __init__(self, length: int | None) -> None:
        super().__init__(length)
        self.length = length


class StreamSink:
    """Lets a handler answer with a chunked body instead of returning a Response."""

    def __init__(self, connection: HttpProtocol) -> None:
        self._connection = connection
        self.started = False

    async def start(self, status: int, headers: dict[str, str]) -> None:
        self.started = True
        head = _status_line(status) + _header_lines(headers) + b"Transfer-Encoding: chunked\r\n\r\n"
        await self._connection.write(head)

    async def write(self, data: bytes) -> None:
        if data:
            await self._connection.write(b"%x\r\n" % len(data) + data + b"\r\n")

    async def end(self) -> None:
        await self._connection.write(b"0\r\n\r\n")


Handler = Callable[[Request, StreamSink], Awaitable[Response | None]]
# Called when a request cannot even be parsed into a Request (status, reason)
ErrorRenderer = Callable[[int, str], Response]


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = f"HTTP/1.1 {status} {reason}\r\n".encode()
    return line


_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}


def _header_lines(headers: dict[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


class ServerState:
    """Shared by all connections of one server: the handler and what draining needs."""

    def __init__(self, handler: Handler, render_error: ErrorRenderer, max_body_bytes: int) -> None:
        self.handler = handler
        self.render_error = render_error
        self.max_body_bytes = max_body_bytes
        self.connections: set[HttpProtocol] = set()
        self.active = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def request_started(self) -> None:
        self.active += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def drain(self, grace_seconds: float) -> None:
        """After the listener is closed: let requests in flight finish, then close connections."""
        self.draining = True
        for connection in list(self.connections):
            connection.close_if_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            log.warning("drain timeout: %d request(s) still in flight are cut off", self.active)
        for connection in list(self.connections):
            connection.close()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: collections.deque[tuple[Request, bool]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.closed = False
        self._writable: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._client_done = False
        # The 400 for unparsable bytes that followed complete requests still being answered.
        self._rejection: Response | None = None
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_values: dict[str, list[str]] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._rejected = False

    # ---- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same interface.
        self.transport = cast(asyncio.Transport, transport)
        self.state.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self._cancel_idle_timer()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request itself was complete and is answered as plain HTTP; whatever follows
            # is another protocol, so nothing more is read and the connection ends after it.
            self._rejected = True
            self._client_done = True
            if self.worker is None and not self.pending:
                self.close()
        except httptools.HttpParserError as error:
            # httptools wraps what a callback raises; the original is the context.
            cause = error.__context__
            if isinstance(cause, BodyTooLargeError):
                self._reject(413, _too_large_message(self.state.max_body_bytes, cause.length))
            else:
                self._reject(400, "Malformed HTTP request.")

    def eof_received(self) -> bool | None:
        # A client half-closing after its request still gets the answer, then we close.
        self._client_done = True
        if self.worker is None and not self.pending:
            self.close()
        return True

    # ---- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._cancel_idle_timer()
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            raise httptools.HttpParserError("URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        lower = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        values = self._header_values.get(lower)
        if values is None:
            self._headers[lower] = text
            self._header_values[lower] = [text]
        else:
            values.append(text)

    def on_headers_complete(self) -> None:
        declared = self._headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.state.max_body_bytes:
            raise BodyTooLargeError(int(declared))
        expect_continue = self._headers.get("expect", "").strip().lower() == "100-continue"
        if expect_continue and self.transport is not None and self.parser.get_http_version() == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.state.max_body_bytes:
            raise BodyTooLargeError(None)
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        if not path.startswith("/"):
            # Absolute-form target ("POST http://host/path"): keep only path and query.
            try:
                parsed = httptools.parse_url(self._url)
            except httptools.HttpParserInvalidURLError:
                raise httptools.HttpParserError("invalid URL") from None
            path = (parsed.path or b"/").decode("latin-1")
            query = (parsed.query or b"").decode("latin-1")
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            raw_path=path,
            raw_query=query,
            headers=self._headers,
            header_values=self._header_values,
            version=self.parser.get_http_version(),
            body=b"".join(self._body) if len(self._body) != 1 else self._body[0],
        )
        self.pending.append((request, self.parser.should_keep_alive()))
        self._body = []
        if len(self.pending) > MAX_PIPELINED and self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        if self.worker is None:
            self.worker = self.loop.create_task(self._serve())

    # ---- serving ---------------------------------------------------------------------------
    async def _serve(self) -> None:
        try:
            while self.pending and not self.closed:
                request, keep_alive = self.pending.popleft()
                if (
                    self._reading_paused
                    and len(self.pending) <= MAX_PIPELINED // 2
                    and self.transport is not None
                ):
                    self._reading_paused = False
                    self.transport.resume_reading()
                self.state.request_started()
                try:
                    await self._answer(request, keep_alive and not self._client_done)
                finally:
                    self.state.request_finished()
                if not keep_alive or self.state.draining or (self._client_done and not self.pending):
                    self.close()
                    return
        finally:
            self.worker = None
        if self._rejection is not None:
            self._write_rejection(self._rejection)
        elif self._client_done:
            self.close()
        else:
            self._arm_idle_timer()

    async def _answer(self, request: Request, keep_alive: bool) -> None:
        sink = StreamSink(self)
        try:
            response = await self.state.handler(request, sink)
        except ConnectionResetError:
            self.close()
            return
        except Exception:
            log.exception("handler failed")
            if sink.started:
                self.close()
                return
            response = self.state.render_error(500, "An internal error occurred.")
        if response is None:
            return
        head = _status_line(response.status) + _header_lines(response.headers)
        head += b"Content-Length: %d\r\n" % len(response.body)
        if not keep_alive or self.state.draining:
            head += b"Connection: close\r\n"
        head += b"\r\n"
        if len(response.body) <= 65536:
            await self.write(head + response.body)
        else:
            await self.write(head)
            await self.write(response.body)

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)
        if self._writable is not None and not self._writable.done():
            await self._writable

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or accepted, then close the connection.

        Complete requests received before the bad bytes are answered first, in order (a client
        pipelining one good request and garbage still gets its answer); nothing more is read.
        """
        self._rejected = True
        response = self.state.render_error(status, message)
        if self.worker is not None or self.pending:
            self._rejection = response  # written by _serve once the requests before it are answered
            return
        self._write_rejection(response)

    def _write_rejection(self, response: Response) -> None:
        if self.transport is not None and not self.transport.is_closing():
            head = _status_line(response.status) + _header_lines(response.headers)
            head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(response.body)
            self.transport.write(head + response.body)
        self.close()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        if not self.closed:
            self._idle_timer = self.loop.call_later(IDLE_TIMEOUT_SECONDS, self.close_if_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def close_if_idle(self) -> None:
        if self.worker is None and not self.pending:
            self.close()

    def close(self) -> None:
        self.closed = True
        self._cancel_idle_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _too_large_message(limit: int, length: int | None) -> str:
    size = f"{length} bytes" if length is not None else "The request body"
    return f"{size} exceeds the maximum request payload size of {limit} bytes."
