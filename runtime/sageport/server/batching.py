"""Dynamic batching: concurrent requests' inputs are stacked, predicted once, and split back.

A batch closes when it holds ``max_batch_size`` rows or ``max_wait`` has passed since its
first request arrived. Requests whose arrays cannot be stacked (other trailing shape or
dtype kind) are predicted in their own group within the same round, never mixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from sageport.server.errors import ModelInvocationError, ModelNotLoadedError

log = logging.getLogger(__name__)

PredictFn = Callable[[Any], Any]


@dataclass
class _Pending:
    rows: np.ndarray
    future: asyncio.Future[Any]


def _group_key(rows: np.ndarray) -> tuple[tuple[int, ...], str]:
    return tuple(rows.shape[1:]), rows.dtype.kind


def split_rows(prediction: Any, counts: list[int]) -> list[Any]:
    """Cut a batched prediction back into one piece per request (pure)."""
    if isinstance(prediction, list | tuple) and not isinstance(prediction, np.ndarray):
        prediction = np.asarray(prediction)
    total = sum(counts)
    if not hasattr(prediction, "__len__") or len(prediction) != total:
        got = len(prediction) if hasattr(prediction, "__len__") else "a scalar"
        raise ModelInvocationError(f"batched prediction has {got} rows for {total} input rows")
    pieces, start = [], 0
    for count in counts:
        pieces.append(prediction[start : start + count])
        start += count
    return pieces


def _fail_unloaded(pending: _Pending) -> None:
    if not pending.future.done():
        pending.future.set_exception(ModelNotLoadedError("the model was unloaded before this request ran"))


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_seconds: float,
        max_concurrent_batches: int = 1,
    ) -> None:
        self._predict = predict
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max_concurrent_batches)
        self._collector: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches_run = 0  # observable for tests and metrics

    async def submit(self, rows: np.ndarray) -> Any:
        """Queue ``rows`` (instances along axis 0) and wait for their slice of a batched prediction."""
        if self._collector is None or self._collector.done():
            self._collector = asyncio.get_running_loop().create_task(self._collect())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(rows, future))
        return await future

    async def close(self) -> None:
        """Stop collecting; batches already running finish, requests still queued fail."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(
                    ModelNotLoadedError("the model was unloaded before this request ran")
                )

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Pending | None = None
        batch: list[_Pending] = []
        try:
            while True:
                first = carry if carry is not None else await self._queue.get()
                carry = None
                batch, rows = [first], len(first.rows)
                deadline = loop.time() + self.max_wait_seconds
                while rows < self.max_batch_size:
                    try:
                        item = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        try:
                            item = await asyncio.wait_for(self._queue.get(), remaining)
                        except TimeoutError:
                            break
                    if rows + len(item.rows) > self.max_batch_size:
                        carry = item  # it starts the next batch instead of overflowing this one
                        break
                    batch.append(item)
                    rows += len(item.rows)
                # Wait for a free slot before dispatching; requests keep queueing meanwhile, so a
                # busy model naturally gets fuller batches.
                await self._slots.acquire()
                task = loop.create_task(self._run(batch))
                batch = []
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        except asyncio.CancelledError:
            # Closed: what this collector holds will never run; tell the callers.
            for pending in [*batch, *([carry] if carry is not None else [])]:
                _fail_unloaded(pending)
            raise

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            groups: dict[tuple[tuple[int, ...], str], list[_Pending]] = {}
            for item in batch:
                groups.setdefault(_group_key(item.rows), []).append(item)
            for members in groups.values():
                await self._run_group(members)
        finally:
            self._slots.release()

    async def _run_group(self, members: list[_Pending]) -> None:
        live = [m for m in members if not m.future.done()]  # a caller may have gone away
        if not live:
            return
        stacked = live[0].rows if len(live) == 1 else np.concatenate([m.rows for m in live])
        counts = [len(m.rows) for m in live]
        loop = asyncio.get_running_loop()
        self.batches_run += 1
        try:
            prediction = await loop.run_in_executor(self._executor, self._predict, stacked)
            pieces = split_rows(prediction, counts)
        except Exception as exc:
            for member in live:
                if not member.future.done():
                    member.future.set_exception(exc)
            return
        for member, piece in zip(live, pieces, strict=True):
            if not member.future.done():
                member.future.set_result(piece)
