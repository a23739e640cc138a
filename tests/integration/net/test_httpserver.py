"""The shared HTTP/1.1 server (the gateway's front), in process, spoken to over raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sageport.net.httpserver import HttpProtocol, Request, Response, ServerState, StreamSink


async def echo(request: Request, sink: StreamSink) -> Response | None:
    if request.raw_path == "/stream":
        await sink.start(200, {"Content-Type": "text/plain"})
        for part in (b"a", b"bb", b"ccc"):
            await sink.write(part)
        await sink.end()
        return None
    if request.raw_path == "/slow":
        await asyncio.sleep(0.3)
    if request.raw_path == "/boom":
        raise RuntimeError("handler bug")
    body = f"{request.method} {request.raw_path}?{request.raw_query} {len(request.body)}".encode()
    return Response(200, {"Content-Type": "text/plain"}, body)


def render_error(status: int, message: str) -> Response:
    return Response(
        status, {"Content-Type": "application/json", "x-amzn-ErrorType": "ValidationError"}, b"{}"
    )


@pytest.fixture
async def server() -> AsyncIterator[tuple[ServerState, int]]:
    state = ServerState(echo, render_error, max_body_bytes=1000)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: HttpProtocol(state), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield state, port
    listener.close()
    await state.drain(1.0)


async def exchange(port: int, raw: bytes, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(-1), 5) if read_until_close else b""
    writer.close()
    return data


async def test_keep_alive_and_pipelining_answer_in_order(server: tuple[ServerState, int]) -> None:
    _, port = server
    raw = (
        b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /two?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = await exchange(port, raw)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b"POST /slow? 3") < data.index(b"POST /two?q=1 2") < data.index(b"GET /three? 0")
    assert data.rstrip().endswith(b"GET /three? 0")


async def test_streamed_response_is_chunked(server: tuple[ServerState, int]) -> None:
    _, port = server
    data = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in data
    assert data.endswith(b"1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", b"413"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n"
            + b"x" * 2000
            + b"\r\n0\r\n\r\n",
            b"413",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"400"),
    ],
)
async def test_refused_requests_get_4xx_and_close(
    server: tuple[ServerState, int], raw: bytes, status: bytes
) -> None:
    _, port = server
    data = await exchange(port, raw)
    assert data.startswith(b"HTTP/1.1 " + status + b" "), data[:100]
    assert b"Connection: close" in data


@pytest.mark.parametrize("first", ["/ok", "/slow"])
async def test_requests_before_unparsable_bytes_are_still_answered(
    server: tuple[ServerState, int], first: str
) -> None:
    """A complete request followed by garbage on the same connection (one packet): the request
    is answered, then the garbage gets its 400, then the connection closes."""
    _, port = server
    raw = (
        f"POST {first} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n".encode()
        + b"\xd1\x919+ garbage\r\n\r\n"
    )
    data = await exchange(port, raw)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert f"POST {first}? 1".encode() in data
    second = data.index(b"HTTP/1.1 400 ")
    assert second > data.index(f"POST {first}? 1".encode())
    assert b"Connection: close" in data[second:]


async def test_upgrade_requests_are_answered_as_plain_http(server: tuple[ServerState, int]) -> None:
    _, port = server
    data = await exchange(
        port, b"GET /u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in data


async def test_handler_bug_is_500_and_server_survives(server: tuple[ServerState, int]) -> None:
    _, port = server
    data = await exchange(port, b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 ")
    data = await exchange(port, b"GET /ok HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ")


async def test_expect_continue(server: tuple[ServerState, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    assert (await asyncio.wait_for(reader.readuntil(b"POST /e? 2"), 2)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_drain_waits_for_requests_in_flight(server: tuple[ServerState, int]) -> None:
    state, port = server
    reply = asyncio.create_task(
        exchange(port, b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    )
    await asyncio.sleep(0.1)
    await state.drain(5.0)
    data = await reply
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in data
