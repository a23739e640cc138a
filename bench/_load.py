"""The load generator the benchmarks share: keep-alive HTTP/1.1 on raw asyncio sockets.

Each of ``concurrency`` connections sends a request, reads the whole answer, and sends the
next, until the window closes (a closed loop, like ``concurrency`` callers each waiting for
its previous call). Its own cost per call is a few tens of microseconds, far below any server
measured with it, so the figures are the servers', not the client's. Requests are replayed as
given (a list is cycled through), answers are checked by status and, when asked, by body.
Also here: pinning a server's threads to CPUs, which both benchmarks do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop


@dataclass
class Result:
    latencies_ms: list[float]
    seconds: float
    errors: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies_ms)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds


def merge(results: Sequence[Result]) -> Result:
    """Rounds of one path as one sample (their latencies pooled, their times added)."""
    return Result(
        [value for result in results for value in result.latencies_ms],
        sum(result.seconds for result in results),
        sum(result.errors for result in results),
    )


def request_bytes(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
    return int(lowered[at + 17 : lowered.find(b"\r\n", at + 2)])


async def _connection(
    address: tuple[str, int],
    requests: Sequence[bytes],
    offset: int,
    until: float,
    expected: bytes | None,
    latencies: list[float],
    errors: list[bytes],
) -> None:
    reader, writer = await asyncio.open_connection(*address)
    clock = time.perf_counter
    index = offset
    try:
        while clock() < until:
            started = clock()
            writer.write(requests[index % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            payload = await reader.readexactly(_content_length(head))
            latencies.append((clock() - started) * 1e3)
            if head[9:12] != b"200" or (expected is not None and payload != expected):
                errors.append(head[:200] + payload[:200])
            index += 1
    finally:
        writer.close()


async def _measure(
    address: tuple[str, int],
    requests: Sequence[bytes],
    concurrency: int,
    seconds: float,
    expected: bytes | None,
    warm_up: float,
) -> Result:
    async def window(length: float, latencies: list[float], errors: list[bytes]) -> float:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _connection(address, requests, offset, started + length, expected, latencies, errors)
                for offset in range(concurrency)
            )
        )
        return time.perf_counter() - started

    if warm_up:
        await window(warm_up, [], [])
    latencies: list[float] = []
    errors: list[bytes] = []
    elapsed = await window(seconds, latencies, errors)
    return Result(latencies, elapsed, len(errors))


def measure(
    address: tuple[str, int],
    requests: Sequence[bytes],
    concurrency: int,
    seconds: float,
    expected: bytes | None = None,
    warm_up: float = 0.0,
) -> Result:
    """Load ``address`` for ``seconds`` after ``warm_up`` seconds not counted."""
    return uvloop.run(_measure(address, requests, concurrency, seconds, expected, warm_up))


def fetch(address: tuple[str, int], request: bytes) -> tuple[bytes, bytes]:
    """One request, its (head, body): for what a benchmark expects its answers to be."""

    async def once() -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            return head, await reader.readexactly(_content_length(head))
        finally:
            writer.close()

    return uvloop.run(once())


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a running process (affinity is per thread, and pools already exist)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(task.name), cpus)
