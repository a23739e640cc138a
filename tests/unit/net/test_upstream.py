"""The upstream pool against a real socket peer that closes a kept-alive connection."""

from __future__ import annotations

import socket
import threading

from sageport.net.upstream import Target, UpstreamPool

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)


async def test_a_pooled_connection_the_peer_closed_is_not_reused() -> None:
    """A crashed model server's kernel closes its connections at once; the next request must
    open a new connection, not be written into the dead one (it could not be sent again)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    closed_first = threading.Event()
    connections: list[int] = []

    def serve() -> None:
        for number in (1, 2):
            conn, _ = listener.accept()
            connections.append(number)
            _read_request(conn)
            conn.sendall(RESPONSE)
            if number == 1:
                conn.close()  # like a killed process: FIN right after the response
                closed_first.set()
            else:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    pool = UpstreamPool()
    target = Target(f"http://127.0.0.1:{port}")
    first = await pool.post(target, "/invocations", {}, b"{}", 5.0)
    assert await first.read() == b"ok"
    first.release()
    closed_first.wait(5)
    # No await between the close and the next request: the loop has not seen the FIN yet.
    second = await pool.post(target, "/invocations", {}, b"{}", 5.0)
    assert await second.read() == b"ok"
    second.release()
    assert connections == [1, 2]
    pool.close()
    listener.close()
