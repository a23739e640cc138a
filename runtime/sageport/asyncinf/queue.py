"""The producer side of the queue: the gateway appends calls to a variant's Redis stream."""

from __future__ import annotations

import os
from typing import Any

from sageport import contract

# How long a queued call's InferenceId is remembered: a call appended again within this window
# (the gateway's Redis client retrying after a lost reply, a caller retrying with its own
# InferenceId) is not queued twice. Retries come within seconds; the window bounds the memory
# (a small key per call).
ONCE_SECONDS = 600

# Records the InferenceId and appends the call in one atomic step (a script runs alone in Redis,
# and with AOF both writes are in the file together or not at all): 1 when queued, 0 when it was.
_APPEND_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
  return 1
end
return 0
"""


def call_key(namespace: str, endpoint: str, inference_id: str) -> str:
    """The key remembering a queued InferenceId, per endpoint (a retry may draw another variant)."""
    return f"sageport:async-ids:{namespace}:{endpoint}:{inference_id}"


class RedisQueue:
    """Appends records to streams, creating each stream's consumer group first (at id 0, so the
    group's lag counts every entry: KEDA's redis-streams scaler reads it)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._grouped: set[str] = set()
        self._append_once = redis.register_script(_APPEND_ONCE)  # EVALSHA, EVAL after a restart

    @classmethod
    def from_env(cls) -> RedisQueue | None:
        """From SAGEPORT_REDIS_URL and SAGEPORT_REDIS_PASSWORD; None when no URL is set."""
        url = os.environ.get(contract.REDIS_URL_ENV)
        if not url:
            return None
        import redis.asyncio
        from redis import exceptions
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        password = os.environ.get(contract.REDIS_PASSWORD_ENV) or None
        # A write whose reply was lost is retried here (safe: append() queues a call once), so a
        # dropped connection costs the caller nothing; Redis down for longer is a 503.
        retry = Retry(
            ExponentialBackoff(cap=0.5, base=0.05),
            3,
            supported_errors=(exceptions.ConnectionError, exceptions.TimeoutError),
        )
        return cls(redis.asyncio.Redis.from_url(url, password=password, socket_keepalive=True, retry=retry))

    async def append(self, stream: str, fields: dict[str, str | bytes], once_key: str) -> bool:
        """Append the call unless ``once_key`` (call_key) was recorded in the last ONCE_SECONDS;
        True when it was appended now."""
        if stream not in self._grouped:
            try:
                await self.redis.xgroup_create(stream, contract.ASYNC_GROUP, id="0", mkstream=True)
            except Exception as error:
                if "BUSYGROUP" not in str(error):
                    raise
            self._grouped.add(stream)
        pairs = [item for pair in fields.items() for item in pair]
        queued = await self._append_once(keys=[stream, once_key], args=[ONCE_SECONDS, *pairs])
        return bool(queued)

    async def close(self) -> None:
        await self.redis.aclose()

    async def backlog(self, stream: str) -> tuple[int, bytes | None]:
        """The stream's length and its oldest entry's id (None when empty)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.xrange(stream, count=1)
            length, oldest = await pipe.execute()
        return int(length), oldest[0][0] if oldest else None
