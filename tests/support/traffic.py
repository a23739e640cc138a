"""Steady boto3 traffic for chaos tests: calls on a fixed schedule, none retried by boto3, each
recorded with its outcome (and that of one immediate retry when it failed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Call:
    started: float
    ended: float
    error: str | None
    retry_error: str | None = None  # the outcome of the one retry of a failed call


class Traffic:
    """``rate`` calls per second to one endpoint from ``workers`` threads, each with its own
    client from ``make_client`` (boto3 clients are not shared across threads)."""

    def __init__(
        self,
        make_client: Callable[[], Any],
        endpoint: str,
        body: bytes,
        content_type: str,
        *,
        rate: float = 20.0,
        workers: int = 6,
        check: Callable[[bytes], bool] = lambda _: True,
    ) -> None:
        self.calls: list[Call] = []
        self.rate = rate
        self._call = {"EndpointName": endpoint, "Body": body, "ContentType": content_type}
        self._check = check
        self._stop = threading.Event()
        self._slots = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(make_client,)) for _ in range(workers)]
        self._threads.append(threading.Thread(target=self._pace))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for _ in self._threads:
            self._slots.release()
        for thread in self._threads:
            thread.join()

    def in_flight_at(self, moment: float) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.started <= moment <= call.ended)

    def _pace(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._slots.release()
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _once(self, client: Any) -> str | None:
        try:
            response = client.invoke_endpoint(**self._call)
            if not self._check(response["Body"].read()):
                return "unexpected body"
        except Exception as failure:  # every failure is counted, whatever its kind
            return f"{type(failure).__name__}: {failure}"
        return None

    def _work(self, make_client: Callable[[], Any]) -> None:
        client = make_client()
        while True:
            self._slots.acquire()
            if self._stop.is_set():
                return
            started = time.monotonic()
            error = self._once(client)
            call = Call(started, time.monotonic(), error)
            if error is not None:
                call.retry_error = self._once(client)
            with self._lock:
                self.calls.append(call)
