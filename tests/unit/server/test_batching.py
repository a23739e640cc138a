"""The micro-batcher under real concurrency: every caller gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from sageport.server.batching import MicroBatcher, split_rows
from sageport.server.errors import ModelInvocationError, ModelNotLoadedError


class RecordingModel:
    """Predicts a row's first value times ten, records each call's batch size, costs 5 ms a call."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def predict(self, rows: np.ndarray) -> np.ndarray:
        with self._lock:
            self.batch_sizes.append(len(rows))
        time.sleep(0.005)
        return rows[:, 0] * 10


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(4) as executor:
        yield executor


async def test_concurrent_requests_are_coalesced_and_split_back(pool: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model.predict, pool, max_batch_size=16, max_wait_seconds=0.01)
    rng = random.Random(7)
    requests = []
    next_id = 0
    for _ in range(120):
        count = rng.randint(1, 4)
        requests.append(np.arange(next_id, next_id + count, dtype=np.float64).reshape(-1, 1))
        next_id += count

    results = await asyncio.gather(*(batcher.submit(rows) for rows in requests))
    await batcher.close()

    for rows, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result, rows[:, 0] * 10)
    assert sum(model.batch_sizes) == next_id
    assert max(model.batch_sizes) <= 16
    assert len(model.batch_sizes) < len(requests) / 3, f"hardly batched: {model.batch_sizes}"


async def test_a_lone_request_waits_at_most_max_wait(pool: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model.predict, pool, max_batch_size=64, max_wait_seconds=0.02)
    started = time.monotonic()
    result = await batcher.submit(np.array([[4.0]]))
    elapsed = time.monotonic() - started
    await batcher.close()
    np.testing.assert_array_equal(result, [40.0])
    assert 0.015 <= elapsed < 1.0


async def test_incompatible_shapes_are_predicted_separately(pool: ThreadPoolExecutor) -> None:
    calls: list[tuple[int, ...]] = []

    def predict(rows: np.ndarray) -> np.ndarray:
        calls.append(rows.shape)
        return rows.sum(axis=1)

    batcher = MicroBatcher(predict, pool, max_batch_size=32, max_wait_seconds=0.02)
    narrow = [np.ones((1, 2)) * i for i in range(3)]
    wide = [np.ones((1, 5)) * i for i in range(3)]
    results = await asyncio.gather(*(batcher.submit(rows) for rows in narrow + wide))
    await batcher.close()
    assert [float(r[0]) for r in results] == [0, 2, 4, 0, 5, 10]
    assert sorted(calls) == [(3, 2), (3, 5)]


async def test_a_failing_batch_fails_every_caller_in_it(pool: ThreadPoolExecutor) -> None:
    def predict(rows: np.ndarray) -> np.ndarray:
        raise ModelInvocationError("model exploded")

    batcher = MicroBatcher(predict, pool, max_batch_size=8, max_wait_seconds=0.01)
    outcomes = await asyncio.gather(
        *(batcher.submit(np.ones((1, 1))) for _ in range(5)), return_exceptions=True
    )
    await batcher.close()
    assert all(isinstance(o, ModelInvocationError) for o in outcomes)

    # ...and the batcher keeps serving afterwards.
    healthy = MicroBatcher(lambda rows: rows, pool, max_batch_size=8, max_wait_seconds=0.0)
    np.testing.assert_array_equal(await healthy.submit(np.ones((2, 1))), np.ones((2, 1)))
    await healthy.close()


def test_split_rows_checks_the_row_count() -> None:
    pieces = split_rows(np.arange(5), [2, 3])
    assert [p.tolist() for p in pieces] == [[0, 1], [2, 3, 4]]
    with pytest.raises(ModelInvocationError, match="4 rows for 5 input rows"):
        split_rows(np.arange(4), [2, 3])
    with pytest.raises(ModelInvocationError, match="scalar"):
        split_rows(3.0, [1])


async def test_closing_fails_requests_still_queued(pool: ThreadPoolExecutor) -> None:
    release = threading.Event()

    def slow(rows: np.ndarray) -> np.ndarray:
        release.wait(5)
        return rows

    batcher = MicroBatcher(slow, pool, max_batch_size=1, max_wait_seconds=0.0)
    running = asyncio.ensure_future(batcher.submit(np.ones((1, 1))))
    queued = asyncio.ensure_future(batcher.submit(np.ones((1, 1)) * 2))
    await asyncio.sleep(0.05)  # the first is in the model, the second waits for a slot
    closing = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.05)
    release.set()
    await closing
    np.testing.assert_array_equal(await running, [[1.0]])
    with pytest.raises(ModelNotLoadedError):
        await queued
