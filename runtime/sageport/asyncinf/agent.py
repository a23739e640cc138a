"""The async inference agent: consumes its variant's Redis stream, runs each call on its own pod's
model, writes the result to S3, then acknowledges.

At-least-once with idempotent results: an entry is acknowledged (and deleted, so the stream's
length is the backlog) only after its output or failure object is written. An agent killed
mid-call leaves its entries pending; another agent claims them (XAUTOCLAIM) once they have been
idle for ``reclaim_idle`` seconds. A live agent keeps the entries it works on fresh by claiming
them again every ``heartbeat`` seconds (XCLAIM JUSTID), so long calls are never stolen. A
redelivered call whose result object exists is acknowledged without running again.

Memory stays bounded whatever the input size: input and output are spooled through files
(``spool_dir``, an emptyDir), S3 transfers are boto3's chunked ones, and the model call streams
the file (aiohttp; the shared upstream pool of sageport.net sends only in-memory bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from sageport import contract
from sageport.asyncinf import outcome
from sageport.asyncinf.metrics import AgentMetrics
from sageport.asyncinf.notify import Notifier, notification
from sageport.asyncinf.request import AsyncRequest, split_s3_uri

log = logging.getLogger("sageport.asyncinf")

_CHUNK = 1 << 16
_SINGLE_PUT = 8 << 20  # boto3's multipart threshold


@dataclass(frozen=True)
class AgentSettings:
    stream: str
    consumer: str
    model_url: str  # the pod's own served port, e.g. http://127.0.0.1:8080
    endpoint: str
    concurrency: int = 1  # maxConcurrentInvocationsPerInstance
    spool_dir: str | None = None
    reclaim_idle: float = 60.0
    heartbeat: float = 10.0
    block_ms: int = 2000
    success_topic: str | None = None
    error_topic: str | None = None
    include_response_in_success: bool = False
    include_response_in_error: bool = False


def _not_found(error: Exception) -> bool:
    response = getattr(error, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


class Agent:
    def __init__(
        self,
        redis: Any,
        s3: Any,
        settings: AgentSettings,
        metrics: AgentMetrics,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.s3 = s3
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier
        self.clock = clock
        self._in_flight: dict[bytes, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    # ---- the loop ------------------------------------------------------------------------
    async def ensure_group(self) -> None:
        try:  # at 0, not $: a group made at $ on a non-empty stream loses its lag (infra §2)
            await self.redis.xgroup_create(self.settings.stream, contract.ASYNC_GROUP, id="0", mkstream=True)
        except Exception as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def wait_for_model(self, patience: float = 3600.0) -> None:
        """The model answers GET /ping: before that every call would fail."""
        assert self._session is not None
        deadline = time.monotonic() + patience
        while not self._stopping.is_set():
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                url = self.settings.model_url + contract.PING_PATH
                async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError("the model did not answer /ping")
            await asyncio.sleep(0.5)

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            await self.wait_for_model()
            await self.ensure_group()
            log.info("consuming %s as %s, %d at a time", self.settings.stream, self.settings.consumer,
                     self.settings.concurrency)  # fmt: skip
            background = [asyncio.create_task(self._heartbeats()), asyncio.create_task(self._reclaims())]
            try:
                await self._consume()
            finally:
                for task in background:
                    task.cancel()
                if self._in_flight:  # finish what was started (the pod's grace period bounds it)
                    await asyncio.wait(list(self._in_flight.values()))
        finally:
            await self._session.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            free = self.settings.concurrency - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(list(self._in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                answer = await self.redis.xreadgroup(
                    contract.ASYNC_GROUP, self.settings.consumer, {self.settings.stream: ">"},
                    count=free, block=self.settings.block_ms,
                )  # fmt: skip
            except Exception as error:  # Redis restarting: wait, then read again
                if "NOGROUP" in str(error):
                    await self.ensure_group()
                    continue
                log.warning("reading the queue failed: %s", error)
                await asyncio.sleep(1.0)
                continue
            for _, entries in answer or ():
                for entry_id, fields in entries:
                    self._start(entry_id, fields)

    def _start(self, entry_id: bytes, fields: dict[bytes, bytes], redelivered: bool = False) -> None:
        if entry_id in self._in_flight or not fields:  # a claim of one we run, or a deleted entry
            return
        task = asyncio.create_task(self._process(entry_id, fields, redelivered))
        self._in_flight[entry_id] = task
        task.add_done_callback(lambda _: self._in_flight.pop(entry_id, None))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            ids = list(self._in_flight)
            if ids:
                with contextlib.suppress(Exception):  # a missed beat only risks a duplicate run
                    await self.redis.xclaim(
                        self.settings.stream,
                        contract.ASYNC_GROUP,
                        self.settings.consumer,
                        0,
                        ids,
                        justid=True,
                    )

    async def _reclaims(self) -> None:
        while True:
            try:
                await self.reclaim()
            except Exception as error:
                log.warning("reclaiming stuck entries failed: %s", error)
            await asyncio.sleep(max(self.settings.reclaim_idle / 4, 1.0))

    async def reclaim(self) -> int:
        """Claim the entries of dead consumers (idle beyond reclaim_idle) and run them; returns
        how many were claimed."""
        cursor: bytes | str = "0-0"
        claimed = 0
        while True:
            if self.settings.concurrency - len(self._in_flight) <= 0:
                return claimed
            answer = await self.redis.xautoclaim(
                self.settings.stream, contract.ASYNC_GROUP, self.settings.consumer,
                int(self.settings.reclaim_idle * 1000), cursor, count=100,
            )  # fmt: skip
            cursor, entries = answer[0], answer[1]
            deleted = answer[2] if len(answer) > 2 else []
            if deleted:  # claimed ids whose entries are gone: nothing left to run
                await self.redis.xack(self.settings.stream, contract.ASYNC_GROUP, *deleted)
            for entry_id, fields in entries:
                if fields:
                    log.info("reclaimed entry %s of a consumer gone quiet", entry_id)
                    claimed += 1
                    self._start(entry_id, fields, redelivered=True)
            if cursor in (b"0-0", "0-0"):
                return claimed

    async def _acknowledge(self, entry_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.settings.stream, contract.ASYNC_GROUP, entry_id)
            pipe.xdel(self.settings.stream, entry_id)
            await pipe.execute()

    # ---- one call ------------------------------------------------------------------------
    async def _process(self, entry_id: bytes, fields: dict[bytes, bytes], redelivered: bool) -> None:
        started = self.clock()
        try:
            request = AsyncRequest.from_fields(fields)
        except ValueError as error:
            log.error("dropping malformed queue entry %s: %s", entry_id, error)
            await self._acknowledge(entry_id)
            return
        try:
            result = await self._run(request, redelivered)
        except Exception:
            # S3 or Redis unreachable: leave the entry pending, to be run again once reclaimed.
            log.exception("call %s could not be completed; it stays queued", request.inference_id)
            return
        if result is not None:
            await self._notify(request, result)
        try:
            await self._acknowledge(entry_id)
        except Exception as error:  # its result is written: a redelivery only acknowledges it
            log.warning("acknowledging call %s failed: %s", request.inference_id, error)
        self.metrics.total_processing_time.observe(self.clock() - started)

    async def _run(self, request: AsyncRequest, redelivered: bool) -> outcome.Outcome | None:
        """Run the call and write its result; None when it had been answered already. Only a
        redelivered entry can have been answered (a first delivery never ran), so only its result
        objects are looked for."""
        now_ms = int(self.clock() * 1000)
        exists = await asyncio.to_thread(self._results_exist, request) if redelivered else (False, False)
        decision = outcome.triage(request, now_ms, *exists)
        if decision is outcome.Triage.ANSWERED:
            log.info("call %s was answered already; acknowledging", request.inference_id)
            return None
        self.metrics.time_in_backlog.observe(max(now_ms - request.received_ms, 0) / 1000)
        if decision is outcome.Triage.EXPIRED:
            self.metrics.expired_requests.inc()
            result = outcome.expired(request, now_ms)
            await self._write_failure(request, result, None)
            return result
        with tempfile.TemporaryDirectory(dir=self.settings.spool_dir) as spool:
            source = request.body
            if request.input_location is not None:
                source_path = os.path.join(spool, "input")
                try:
                    await self._download(request.input_location, source_path)
                except Exception as error:
                    if not _not_found(error):
                        raise
                    self.metrics.request_download_failures.inc()
                    result = outcome.input_missing(request.input_location, "no such object")
                    await self._write_failure(request, result, None)
                    return result
            response_path = os.path.join(spool, "output")
            result = await self._invoke(request, source if source is not None else source_path, response_path)
            if result.success:
                await self._upload(response_path, request.output_location, result.content_type)
                self.metrics.invocations_processed.inc()
            else:
                await self._write_failure(request, result, response_path)
            return result

    def _results_exist(self, request: AsyncRequest) -> tuple[bool, bool]:
        return self._exists(request.output_location), bool(
            request.failure_location and self._exists(request.failure_location)
        )

    def _exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except Exception as error:
            if _not_found(error):
                return False
            raise
        return True

    async def _download(self, uri: str, path: str) -> None:
        bucket, key = split_s3_uri(uri)
        started = time.perf_counter()
        await asyncio.to_thread(self._get_into, bucket, key, path)
        self.metrics.request_download_latency.observe(time.perf_counter() - started)

    def _get_into(self, bucket: str, key: str, path: str) -> None:
        """GetObject streamed into ``path`` in chunks (no transfer manager: cheap for small inputs,
        and one stream for large ones)."""
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with open(path, "wb") as sink:
            for chunk in body.iter_chunks(_CHUNK * 16):
                sink.write(chunk)

    def _put_from(self, path: str, bucket: str, key: str, extra: dict[str, str]) -> None:
        """One PutObject from the file for results up to a multipart part; multipart above."""
        if os.stat(path).st_size <= _SINGLE_PUT:
            with open(path, "rb") as source:
                self.s3.put_object(Bucket=bucket, Key=key, Body=source, **extra)
        else:
            self.s3.upload_file(path, bucket, key, ExtraArgs=extra)

    async def _upload(self, path: str, uri: str, content_type: str | None) -> None:
        bucket, key = split_s3_uri(uri)
        extra = {"ContentType": content_type} if content_type else {}
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._put_from, path, bucket, key, extra)
        except Exception:
            self.metrics.response_upload_failures.inc()
            raise
        self.metrics.response_upload_latency.observe(time.perf_counter() - started)

    async def _write_failure(
        self, request: AsyncRequest, result: outcome.Outcome, model_body: str | None
    ) -> None:
        self.metrics.invocation_failures.inc()
        log.info("call %s failed: %s", request.inference_id, result.reason)
        if request.failure_location is None:  # SageMaker: without S3FailurePath only the notification tells
            return
        if result.failure_body is not None:
            bucket, key = split_s3_uri(request.failure_location)
            await asyncio.to_thread(
                self.s3.put_object, Bucket=bucket, Key=key, Body=result.failure_body, ContentType="text/plain"
            )
        elif model_body is not None:
            await self._upload(model_body, request.failure_location, result.content_type)

    async def _invoke(
        self, request: AsyncRequest, source: bytes | str, response_path: str
    ) -> outcome.Outcome:
        """POST the input to the model, streaming it from its file, and the answer into
        ``response_path``; the outcome and the model's content type."""
        assert self._session is not None
        headers = {"X-Amzn-SageMaker-Inference-Id": request.inference_id}
        for name, value in (
            ("Content-Type", request.content_type),
            ("Accept", request.accept),
            ("X-Amzn-SageMaker-Custom-Attributes", request.custom_attributes),
        ):
            if value is not None:
                headers[name] = value
        started = time.perf_counter()
        head = b""
        try:
            with contextlib.ExitStack() as files:
                data: Any = source
                if not isinstance(source, bytes):  # streamed from the spool file by aiohttp
                    data = files.enter_context(open(source, "rb"))  # noqa: ASYNC230
                    headers["Content-Length"] = str(os.stat(source).st_size)
                url = self.settings.model_url + contract.INVOCATIONS_PATH
                timeout = aiohttp.ClientTimeout(total=request.timeout_seconds)
                async with self._session.post(url, data=data, headers=headers, timeout=timeout) as answer:
                    # The spool is a local emptyDir: opening it does not wait on the network.
                    with open(response_path, "wb") as sink:  # noqa: ASYNC230
                        async for chunk in answer.content.iter_chunked(_CHUNK):
                            if len(head) < outcome.REASON_LIMIT:
                                head += chunk[: outcome.REASON_LIMIT]
                            sink.write(chunk)
                    status, content_type = answer.status, answer.headers.get("Content-Type")
        except TimeoutError:
            self.metrics.model_errors(None)
            return outcome.timed_out(request)
        except (aiohttp.ClientError, OSError) as error:
            self.metrics.model_errors(None)
            return outcome.model_unreachable(str(error) or type(error).__name__)
        self.metrics.model_latency.observe(time.perf_counter() - started)
        result = replace(outcome.from_model(status, head), content_type=content_type)
        if not result.success:
            self.metrics.model_errors(status)
        return result

    async def _notify(self, request: AsyncRequest, result: outcome.Outcome) -> None:
        topic = self.settings.success_topic if result.success else self.settings.error_topic
        if topic is None or self.notifier is None:
            return
        message = notification(
            endpoint=self.settings.endpoint,
            request=request,
            result=result,
            now=self.clock(),
        )
        if not await self.notifier.send(topic, request.inference_id, message):
            self.metrics.notification_failures.inc()
