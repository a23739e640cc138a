"""The producer side of the queue: the gateway appends calls to a variant's Redis stream."""

from __future__ import annotations

import os
from typing import Any

from sageport import contract


class RedisQueue:
    """Appends records to streams, creating each stream's consumer group first (at id 0, so the
    group's lag counts every entry: KEDA's redis-streams scaler reads it)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._grouped: set[str] = set()

    @classmethod
    def from_env(cls) -> RedisQueue | None:
        """From SAGEPORT_REDIS_URL and SAGEPORT_REDIS_PASSWORD; None when no URL is set."""
        url = os.environ.get(contract.REDIS_URL_ENV)
        if not url:
            return None
        import redis.asyncio

        password = os.environ.get(contract.REDIS_PASSWORD_ENV) or None
        return cls(redis.asyncio.Redis.from_url(url, password=password, socket_keepalive=True))

    async def append(self, stream: str, fields: dict[str, str | bytes]) -> None:
        if stream not in self._grouped:
            try:
                await self.redis.xgroup_create(stream, contract.ASYNC_GROUP, id="0", mkstream=True)
            except Exception as error:
                if "BUSYGROUP" not in str(error):
                    raise
            self._grouped.add(stream)
        await self.redis.xadd(stream, fields)

    async def close(self) -> None:
        await self.redis.aclose()

    async def backlog(self, stream: str) -> tuple[int, bytes | None]:
        """The stream's length and its oldest entry's id (None when empty)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.xrange(stream, count=1)
            length, oldest = await pipe.execute()
        return int(length), oldest[0][0] if oldest else None
