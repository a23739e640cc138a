"""Copies of requests to shadow variants, off the call path.

The caller's answer never waits for a copy: each is a task of its own, at most ``limit`` in
flight (beyond that a copy is dropped and counted), and whatever happens to it (a slow or
failing shadow, a connection refused) stays in the shadow's own metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class ShadowCopies:
    def __init__(self, limit: int, dropped: Callable[[str, str], None]) -> None:
        self._limit = limit
        self._dropped = dropped  # (endpoint, variant) of a copy not sent
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def send(self, endpoint: str, variant: str, call: Callable[[], Awaitable[None]]) -> None:
        """Start ``call`` (one copy to one shadow variant) unless too many copies are in flight."""
        if len(self._tasks) >= self._limit:
            self._dropped(endpoint, variant)
            return
        task = asyncio.get_running_loop().create_task(self._guarded(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except Exception as error:  # a copy's failure is the shadow's, never the caller's
            log.debug("shadow copy failed: %s", error)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
