"""Malformed paths, headers and bodies thrown at a running gateway over raw sockets.

The gateway must answer every one of them with a well-formed response that is not a 5xx of its
own making, and must still be alive afterwards.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sageport_dev.wire import invoke_endpoint_bytes
from tests.integration.gateway.support import Process, runtime_client, start_gateway


@pytest.fixture(scope="module")
def open_gateway(gateway_files: dict[str, Path]) -> Iterator[Process]:
    process = start_gateway(["--routes", str(gateway_files["routes"]), "--no-auth"])
    yield process
    process.stop()


def _send(url: str, raw: bytes, half_close: bool = False) -> tuple[int, dict[str, str], bytes] | None:
    """Send raw bytes, read until the server closes. With ``half_close`` (the request's framing is
    itself fuzzed, so the server may still wait for body bytes) we signal end of input, and a
    server that then drops the connection without answering is acceptable: the client is gone."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data and half_close:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("content-length", "").isdigit():  # a second answer may follow the first
        body = body[: int(headers["content-length"])]
    return status, headers, body


_ENDPOINTS = st.sampled_from(["echo", "split", "direct", "missing", "bad_name", "x" * 70, "%00", "%ff", ""])
_OPERATIONS = st.sampled_from(["invocations", "invocations-response-stream", "async-invocations", "other"])
_SEGMENT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
_HEADER_NAMES = st.sampled_from(
    [
        "Content-Type",
        "Accept",
        "X-Amzn-SageMaker-Custom-Attributes",
        "X-Amzn-SageMaker-Target-Variant",
        "X-Amzn-SageMaker-Target-Container-Hostname",
        "X-Amzn-SageMaker-Inference-Id",
        "X-Amzn-SageMaker-Session-Id",
        "X-Amzn-SageMaker-Target-Model",
        "X-Amzn-SageMaker-Accept",
        "Authorization",
        "X-Amz-Date",
        "Content-Length",
        "Transfer-Encoding",
    ]
)
_HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80).map(
    lambda text: text.encode("latin-1")
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from([b"POST", b"GET", b"PUT", b"DELETE", b"POST"]),
    prefix=st.lists(_SEGMENT, max_size=2),
    endpoint=_ENDPOINTS | _SEGMENT,
    operation=_OPERATIONS,
    headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=5),
    body=st.binary(max_size=2048),
)
def test_malformed_requests_never_get_a_gateway_5xx(
    open_gateway: Process,
    method: bytes,
    prefix: list[str],
    endpoint: str,
    operation: str,
    headers: list[tuple[str, bytes]],
    body: bytes,
) -> None:
    path = "/" + "/".join([*prefix, "endpoints", endpoint, operation])
    lines = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: fuzz", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in headers]
    framing_fuzzed = any(name in ("Content-Length", "Transfer-Encoding") for name, _ in headers)
    if not framing_fuzzed:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    answer = _send(open_gateway.url, b"\r\n".join(lines) + b"\r\n\r\n" + body, half_close=framing_fuzzed)
    assert open_gateway.popen.poll() is None
    if answer is None:  # the declared body never came, and the client is gone
        return
    status, response_headers, response_body = answer
    assert status < 500, (status, response_body[:300])
    if status >= 400 and "x-amzn-errortype" in response_headers:
        assert json.loads(response_body)["message"]
    assert open_gateway.popen.poll() is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=_HEADER_VALUES, amz_date=_HEADER_VALUES)
def test_garbage_credentials_are_403(gateway: Process, authorization: bytes, amz_date: bytes) -> None:
    raw = (
        b"POST /endpoints/echo/invocations HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
        b"Authorization: "
        + authorization
        + b"\r\nX-Amz-Date: "
        + amz_date
        + b"\r\nContent-Length: 1\r\n\r\nx"
    )
    answer = _send(gateway.url, raw)
    assert answer is not None
    status, _headers, body = answer
    assert status in (400, 403), (status, body[:300])
    assert gateway.popen.poll() is None


@pytest.fixture(scope="module")
def signed_request(gateway: Process) -> bytes:
    """A real boto3-signed InvokeEndpoint for ``echo``, as bytes (fresh: within the skew window)."""
    (raw,) = invoke_endpoint_bytes(
        runtime_client(gateway.url), EndpointName="echo", Body=b'{"x": 1}', ContentType="application/json"
    )
    return raw


def _signed_spans(raw: bytes) -> list[tuple[int, int]]:
    """Where the signature covers the bytes: the path, the signed headers' values, the
    Authorization header's value, and the body (through its hash)."""
    head, _, _ = raw.partition(b"\r\n\r\n")
    spans = [(5, raw.index(b" HTTP/1.1"))]  # after "POST "
    offset = raw.index(b"\r\n") + 2
    for line in head.split(b"\r\n")[1:]:
        name, _, _ = line.partition(b": ")
        if name.lower() in (b"host", b"content-type", b"x-amz-date", b"authorization"):
            spans.append((offset + len(name) + 2, offset + len(line)))
        offset += len(line) + 2
    spans.append((len(head) + 4, len(raw)))
    return spans


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_signed_request_changed_where_it_is_signed_is_refused(
    gateway: Process, signed_request: bytes, data: st.DataObject
) -> None:
    spans = _signed_spans(signed_request)
    start, end = data.draw(st.sampled_from(spans), label="span")
    at = data.draw(st.integers(start, end - 1), label="position")
    # Printable ASCII (header values stay parseable), always a different byte; same length, so
    # Content-Length still frames the body.
    new = data.draw(st.integers(0x21, 0x7E).filter(lambda byte: byte != signed_request[at]), label="byte")
    tampered = signed_request[:at] + bytes([new]) + signed_request[at + 1 :]
    tampered = tampered.replace(b"\r\nHost:", b"\r\nConnection: close\r\nHost:", 1)
    answer = _send(gateway.url, tampered)
    assert answer is not None
    status, _headers, body = answer
    # 403 for a signature that no longer matches; 400/404 when the change breaks the request
    # before the signature is checked (an unknown operation, a malformed header).
    assert status in (400, 403, 404), (status, tampered[:400], body[:300])
    assert gateway.popen.poll() is None


def test_the_untampered_request_is_accepted(gateway: Process, signed_request: bytes) -> None:
    """The control for the test above: the same bytes, unchanged, are served."""
    answer = _send(gateway.url, signed_request.replace(b"\r\nHost:", b"\r\nConnection: close\r\nHost:", 1))
    assert answer is not None
    assert answer[0] == 200, answer
