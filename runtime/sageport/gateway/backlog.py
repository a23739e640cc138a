"""Samples the queue of every async variant into the gateway's metrics every few seconds:
SageMaker's ApproximateBacklogSize, ...PerInstance, ApproximateAgeOfOldestRequest and
HasBacklogWithoutCapacity (see sageport.asyncinf.backlog)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from sageport.asyncinf.backlog import backlog
from sageport.contract import async_stream
from sageport.gateway.app import STANDALONE_NAMESPACE
from sageport.gateway.metrics import GatewayMetrics
from sageport.gateway.routing import RouteTable

log = logging.getLogger("sageport.gateway")


class BacklogSource(Protocol):
    async def backlog(self, stream: str) -> tuple[int, bytes | None]: ...


async def sample_once(table: RouteTable, queue: BacklogSource, metrics: GatewayMetrics) -> None:
    now_ms = int(time.time() * 1000)
    for name in table.names():
        endpoint = table.lookup(name)
        if endpoint is None or endpoint.async_paths is None:
            continue
        for variant in endpoint.variants:
            stream = async_stream(endpoint.namespace or STANDALONE_NAMESPACE, endpoint.name, variant.name)
            size, oldest = await queue.backlog(stream)
            sample = backlog(size, oldest, now_ms, len(variant.instances))
            labels = (endpoint.name, variant.name)
            metrics.async_backlog_size.labels(*labels).set(sample.size)
            metrics.async_backlog_size_per_instance.labels(*labels).set(sample.per_instance)
            metrics.async_age_of_oldest_request.labels(*labels).set(sample.age_of_oldest_seconds)
            metrics.async_has_backlog_without_capacity.labels(*labels).set(sample.without_capacity)


async def sample_forever(
    table: RouteTable, queue: BacklogSource, metrics: GatewayMetrics, every: float = 5.0
) -> None:
    while True:
        try:
            await sample_once(table, queue, metrics)
        except Exception as error:  # Redis away: the gauges keep their last values
            log.warning("sampling the async queues failed: %s", error)
        await asyncio.sleep(every)
