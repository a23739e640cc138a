"""The async inference agent: consumes its variant's Redis stream, runs each call on its own pod's
model, writes the result to S3, then acknowledges.

At-least-once with idempotent results: an entry is acknowledged (and deleted, so the stream's
length is the backlog) only after its output or failure object is written. An agent killed
mid-call leaves its entries pending; another agent claims them (XAUTOCLAIM) once they have been
idle for ``reclaim_idle`` seconds. A live agent keeps the entries it works on fresh by claiming
them again every ``heartbeat`` seconds (XCLAIM JUSTID), so long calls are never stolen. A
redelivered call whose result object exists is never run again: it is notified from what that
object records (an agent that died between the write and the notification), then acknowledged.

Memory stays bounded whatever the input size: inputs and answers up to ``_IN_MEMORY`` bytes are
held, larger ones spooled through files (``spool_dir``, an emptyDir); S3 reads stream
(sageport.storage.objects), large results go up through boto3's multipart upload, and the model
call streams the file (aiohttp; the shared upstream pool of sageport.net sends only in-memory
bodies).
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
from sageport.asyncinf.notify import RESPONSE_IN_NOTIFICATION, Notifier, notification
from sageport.asyncinf.request import AsyncRequest, split_s3_uri
from sageport.storage.objects import ObjectStore, S3Error

log = logging.getLogger("sageport.asyncinf")

_CHUNK = 1 << 16
_IN_MEMORY = 1 << 20  # inputs and answers up to this size are held in memory, larger ones spooled


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


class Agent:
    def __init__(
        self,
        redis: Any,
        s3: Any,
        objects: ObjectStore,
        settings: AgentSettings,
        metrics: AgentMetrics,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.s3 = s3  # boto3, for multipart uploads of large results
        self.objects = objects
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier
        self.clock = clock
        self._in_flight: dict[bytes, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        # maxConcurrentInvocationsPerInstance bounds the calls at the model; twice as many are
        # taken from the queue, so one call's S3 writes and acknowledgement overlap the next
        # one's model call instead of leaving the model idle (more than doubled the rate).
        self._model_slots = asyncio.Semaphore(settings.concurrency)
        self._capacity = 2 * settings.concurrency
        self._ack_batch: list[bytes] = []
        self._ack_flush: asyncio.Future[None] | None = None

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
            free = self._capacity - len(self._in_flight)
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
            if self._capacity - len(self._in_flight) <= 0:
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

    async def _hand_back(self, entry_id: bytes) -> None:
        """Make an entry this agent took but will not run claimable at once: its idle time set to
        reclaim_idle, another agent's next XAUTOCLAIM takes it (not a minute later)."""
        with contextlib.suppress(Exception):  # else it is reclaimed after reclaim_idle anyway
            await self.redis.xclaim(
                self.settings.stream, contract.ASYNC_GROUP, self.settings.consumer, 0, [entry_id],
                idle=int(self.settings.reclaim_idle * 1000), justid=True,
            )  # fmt: skip

    async def _acknowledge(self, entry_id: bytes) -> None:
        """XACK and XDEL in one MULTI, for every call finishing in the same turn of the loop: one
        Redis round trip for a batch."""
        self._ack_batch.append(entry_id)
        if self._ack_flush is None:
            self._ack_flush = asyncio.ensure_future(self._flush_acks())
        await asyncio.shield(self._ack_flush)

    async def _flush_acks(self) -> None:
        await asyncio.sleep(0)  # the other calls finishing now join this batch
        ids, self._ack_batch, self._ack_flush = self._ack_batch, [], None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.settings.stream, contract.ASYNC_GROUP, *ids)
            pipe.xdel(self.settings.stream, *ids)
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
            result, content = await self._run(request, redelivered)
        except _AbandonedError:
            log.info("call %s not started before stopping; handed back to the queue", request.inference_id)
            await self._hand_back(entry_id)
            return
        except Exception:
            # S3 or Redis unreachable: leave the entry pending, to be run again once reclaimed.
            log.exception("call %s could not be completed; it stays queued", request.inference_id)
            return
        # Notified before the acknowledgement: an agent dying in between leaves the call pending,
        # and its redelivery finds the result written and notifies from it (never runs it again).
        await self._notify(request, result, content)
        try:
            await self._acknowledge(entry_id)
        except Exception as error:  # its result is written: a redelivery only notifies and acknowledges
            log.warning("acknowledging call %s failed: %s", request.inference_id, error)
        self.metrics.total_processing_time.observe(self.clock() - started)

    async def _run(self, request: AsyncRequest, redelivered: bool) -> tuple[outcome.Outcome, bytes | None]:
        """Run the call and write its result; for a call answered already, the outcome its result
        object records. Only a redelivered entry can have been answered (a first delivery never
        ran), so only its result objects are looked for. Also the result object's content when it
        was held in memory (for notifications that include it)."""
        now_ms = int(self.clock() * 1000)
        found: tuple[dict[str, str] | None, dict[str, str] | None] = (None, None)
        if redelivered:
            found = await self._results(request)
        decision = outcome.triage(request, now_ms, found[0] is not None, found[1] is not None)
        if decision is outcome.Triage.ANSWERED:
            log.info("call %s was answered already; notifying from its result", request.inference_id)
            result = outcome.recorded(found[0] is not None, found[0] or found[1] or {})
            return result, await self._recorded_content(request, result, found[0] or found[1] or {})
        self.metrics.time_in_backlog.observe(max(now_ms - request.received_ms, 0) / 1000)
        if decision is outcome.Triage.EXPIRED:
            self.metrics.expired_requests.inc()
            result = outcome.expired(request, now_ms)
            await self._write_failure(request, result, None)
            return result, result.failure_body
        with _Spool(self.settings.spool_dir) as spool:
            source: bytes | str | None = request.body
            if request.input_location is not None:
                try:
                    source = await self._download(request.input_location, spool.path("input"))
                except S3Error as error:
                    if not error.not_found:
                        raise
                    self.metrics.request_download_failures.inc()
                    result = outcome.input_missing(request.input_location, "no such object")
                    await self._write_failure(request, result, None)
                    return result, result.failure_body
            assert source is not None
            result, answer = await self._invoke(request, source, spool)
            if result.success:
                assert answer is not None  # a success is a model's answer
                await self._upload(answer, request.output_location, result.content_type, {})
                self.metrics.invocations_processed.inc()
            else:
                await self._write_failure(request, result, answer)
            if not result.success and result.failure_body is not None:
                return result, result.failure_body
            return result, answer if isinstance(answer, bytes) else None

    def _includes_response(self, result: outcome.Outcome) -> bool:
        if result.success:
            return self.settings.include_response_in_success
        return self.settings.include_response_in_error

    async def _recorded_content(
        self, request: AsyncRequest, result: outcome.Outcome, headers: dict[str, str]
    ) -> bytes | None:
        """A found result object's content, when its notification is to include it (and may)."""
        if not self._includes_response(result):
            return None
        if int(headers.get("content-length", RESPONSE_IN_NOTIFICATION + 1)) > RESPONSE_IN_NOTIFICATION:
            return None
        uri = request.output_location if result.success else request.failure_location
        assert uri is not None
        with _Spool(self.settings.spool_dir) as spool:
            return await self.objects.get(*split_s3_uri(uri), spool.path("result"), RESPONSE_IN_NOTIFICATION)

    async def _results(self, request: AsyncRequest) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """The headers of the output and the failure object, None for one that is absent."""
        output = await self.objects.head(*split_s3_uri(request.output_location))
        failure = None
        if output is None and request.failure_location is not None:
            failure = await self.objects.head(*split_s3_uri(request.failure_location))
        return output, failure

    async def _download(self, uri: str, spill_path: str) -> bytes | str:
        """The input: in memory when small, else streamed into ``spill_path`` (returned)."""
        started = time.perf_counter()
        try:
            body = await self.objects.get(*split_s3_uri(uri), spill_path, _IN_MEMORY)
        except S3Error as error:
            if not error.not_found:
                self.metrics.request_download_failures.inc()
            raise
        self.metrics.request_download_latency.observe(time.perf_counter() - started)
        return body if body is not None else spill_path

    def _put_from(self, path: str, bucket: str, key: str, extra: dict[str, Any]) -> None:
        """boto3's transfer manager: multipart with bounded memory, for results too large to hold."""
        self.s3.upload_file(path, bucket, key, ExtraArgs=extra)

    async def _upload(
        self, answer: bytes | str, uri: str, content_type: str | None, metadata: dict[str, str]
    ) -> None:
        bucket, key = split_s3_uri(uri)
        started = time.perf_counter()
        try:
            if isinstance(answer, bytes):
                await self.objects.put(bucket, key, answer, content_type, metadata)
            else:
                extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
                if metadata:
                    extra["Metadata"] = metadata
                await asyncio.to_thread(self._put_from, answer, bucket, key, extra)
        except Exception:
            self.metrics.response_upload_failures.inc()
            raise
        self.metrics.response_upload_latency.observe(time.perf_counter() - started)

    async def _write_failure(
        self, request: AsyncRequest, result: outcome.Outcome, model_answer: bytes | str | None
    ) -> None:
        self.metrics.invocation_failures.inc()
        log.info("call %s failed: %s", request.inference_id, result.reason)
        if request.failure_location is None:  # SageMaker: without S3FailurePath only the notification tells
            return
        metadata = outcome.result_metadata(result)
        if result.failure_body is not None:
            await self._upload(result.failure_body, request.failure_location, "text/plain", metadata)
        elif model_answer is not None:
            await self._upload(model_answer, request.failure_location, result.content_type, metadata)

    async def _invoke(
        self, request: AsyncRequest, source: bytes | str, spool: _Spool
    ) -> tuple[outcome.Outcome, bytes | str | None]:
        """POST the input to the model (a spooled input streamed from its file) and read its
        answer: in memory up to _IN_MEMORY bytes, else spooled (the file's path). The outcome,
        with the model's content type, and the answer."""
        assert self._session is not None
        headers = {"X-Amzn-SageMaker-Inference-Id": request.inference_id}
        for name, value in (
            ("Content-Type", request.content_type),
            ("Accept", request.accept),
            ("X-Amzn-SageMaker-Custom-Attributes", request.custom_attributes),
        ):
            if value is not None:
                headers[name] = value
        try:
            async with contextlib.AsyncExitStack() as files:
                data: Any = source
                if not isinstance(source, bytes):  # streamed from the spool file by aiohttp
                    data = files.enter_context(open(source, "rb"))  # noqa: ASYNC230, SIM115
                    headers["Content-Length"] = str(os.stat(source).st_size)
                url = self.settings.model_url + contract.INVOCATIONS_PATH
                timeout = aiohttp.ClientTimeout(total=request.timeout_seconds)
                await files.enter_async_context(self._model_slots)
                if self._stopping.is_set():  # the pod is going: its model too; leave it queued
                    raise _AbandonedError(request.inference_id)
                started = time.perf_counter()
                async with self._session.post(url, data=data, headers=headers, timeout=timeout) as answer:
                    body, head = await _read_bounded(answer, spool)
                    status, content_type = answer.status, answer.headers.get("Content-Type")
        except TimeoutError:
            self.metrics.model_errors(None)
            return outcome.timed_out(request), None
        except (aiohttp.ClientError, OSError) as error:
            self.metrics.model_errors(None)
            return outcome.model_unreachable(str(error) or type(error).__name__), None
        self.metrics.model_latency.observe(time.perf_counter() - started)
        result = replace(outcome.from_model(status, head), content_type=content_type)
        if not result.success:
            self.metrics.model_errors(status)
        return result, body

    async def _notify(self, request: AsyncRequest, result: outcome.Outcome, content: bytes | None) -> None:
        topic = self.settings.success_topic if result.success else self.settings.error_topic
        if topic is None or self.notifier is None:
            return
        message = notification(
            endpoint=self.settings.endpoint,
            request=request,
            result=result,
            now=self.clock(),
            body=content if self._includes_response(result) else None,
        )
        if not await self.notifier.send(topic, request.inference_id, message):
            self.metrics.notification_failures.inc()


class _AbandonedError(Exception):
    """A call taken from the queue but not yet at the model when the agent was told to stop."""


class _Spool:
    """A call's spool directory, made only when something is too large to hold in memory."""

    def __init__(self, parent: str | None) -> None:
        self.parent = parent
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def path(self, name: str) -> str:
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(dir=self.parent)
        return os.path.join(self._directory.name, name)

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._directory is not None:
            self._directory.cleanup()


async def _read_bounded(answer: aiohttp.ClientResponse, spool: _Spool) -> tuple[bytes | str, bytes]:
    """The model's answer in memory up to _IN_MEMORY bytes, else spooled to a file (its path);
    and its first REASON_LIMIT bytes (a failure's reason)."""
    if answer.content_length is not None and answer.content_length <= _IN_MEMORY:
        body = await answer.read()
        return body, body[: outcome.REASON_LIMIT]
    chunks: list[bytes] = []
    size = 0
    path = spool.path("output")
    sink = None
    try:
        async for chunk in answer.content.iter_chunked(_CHUNK):
            if sink is None:
                chunks.append(chunk)
                size += len(chunk)
                if size <= _IN_MEMORY:
                    continue
                sink = open(path, "wb")  # noqa: ASYNC230, SIM115 - the local spool; closed below
                head = b"".join(chunks)[: outcome.REASON_LIMIT]
                sink.writelines(chunks)
                chunks = []
            else:
                sink.write(chunk)
    finally:
        if sink is not None:
            sink.close()
    if sink is None:
        body = b"".join(chunks)
        return body, body[: outcome.REASON_LIMIT]
    return path, head
