"""Data capture: sampled requests and responses to S3 in SageMaker's capture format.

Each captured invocation is one JSON line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "5.1,3.5,1.4,0.2", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "[0]", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<request id>", "inferenceId": "<caller's InferenceId>",
                       "inferenceTime": "2026-01-01T12:00:00Z"},
     "eventVersion": "0"}

A payload whose content type (parameters such as ``charset`` left aside) is in the config's
``csvContentTypes`` or ``jsonContentTypes`` is written as text with encoding CSV or JSON; any
other, or one that is not UTF-8, as BASE64 (SageMaker's rule: without CaptureContentTypeHeader
everything is BASE64). ``inferenceId`` appears only when the caller sent one. Files are
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl``, as SageMaker
names them: the hour of the calls in it, the minute, second and millisecond of its first call.

Off the call path: :meth:`DataCapture.offer` only samples and appends to a bounded in-memory
buffer (no await, no I/O, no encoding: O(1) whatever the payload size). A background task
writes the buffer every ``flush_seconds``, sooner once ``flush_bytes`` are waiting, from a
thread of its own (boto3 blocks). A full buffer drops the call's capture, and an upload that
fails drops its records; both are counted (``sageport_data_capture_dropped_records``) and never
fail or slow the call. Capture is best effort, as a buffer in memory is: records not yet written
when the gateway stops are flushed once more during shutdown, within a time limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sageport.api.v1alpha1 import DataCaptureConfig, DataCaptureConfigSummary
from sageport.api.v1alpha1.endpoint_config import CaptureContentTypeHeader, CaptureOption
from sageport.contract import CaptureMode, CaptureStatus
from sageport.gateway.metrics import GatewayMetrics

log = logging.getLogger("sageport.gateway.capture")

EVENT_VERSION = "0"
BUFFER_FULL = "BufferFull"
UPLOAD_FAILED = "UploadFailed"
# Bytes counted per record besides its payloads, so that many tiny calls are bounded too.
RECORD_OVERHEAD = 512
# A file holds at most about this many payload bytes; a bigger batch is split.
FILE_BYTES = 16 << 20
_LOG_EVERY_SECONDS = 60.0
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps builds one per call


class Mode:
    """``captureData.*.mode`` values."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class Encoding:
    """``captureData.*.encoding`` values."""

    CSV = "CSV"
    JSON = "JSON"
    BASE64 = "BASE64"


@dataclass(frozen=True)
class CaptureSettings:
    """What the gateway needs to capture an endpoint's calls (from the Endpoint's
    ``status.dataCaptureConfig``, or a routes file's ``dataCaptureConfig``)."""

    percentage: float  # 0..100
    bucket: str
    prefix: str  # key prefix, no leading or trailing slash ("" for the bucket's root)
    inputs: bool
    outputs: bool
    kms_key_id: str | None = None
    csv_types: frozenset[str] = frozenset()
    json_types: frozenset[str] = frozenset()


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``; None if not an s3:// URI."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return (bucket, prefix.strip("/")) if bucket else None


def media_type(content_type: str | None) -> str:
    """``Text/CSV; charset=utf-8`` -> ``text/csv``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _settings(
    percentage: int,
    destination: str,
    kms_key_id: str | None,
    options: Sequence[CaptureOption] | None,
    header: CaptureContentTypeHeader | None,
) -> CaptureSettings | None:
    location = split_s3_uri(destination)
    if location is None:
        return None
    modes = {option.capture_mode for option in options or ()}
    both = CaptureMode.INPUT_AND_OUTPUT in modes
    inputs, outputs = both or CaptureMode.INPUT in modes, both or CaptureMode.OUTPUT in modes
    if not (inputs or outputs):
        return None
    header = header or CaptureContentTypeHeader()
    return CaptureSettings(
        percentage=float(percentage),
        bucket=location[0],
        prefix=location[1],
        inputs=inputs,
        outputs=outputs,
        kms_key_id=kms_key_id or None,
        csv_types=frozenset(media_type(t) for t in header.csv_content_types or ()),
        json_types=frozenset(media_type(t) for t in header.json_content_types or ()),
    )


def settings_from_summary(raw: Any) -> CaptureSettings | None:
    """An Endpoint's ``status.dataCaptureConfig`` (the operator's summary of the serving config):
    settings when capture is Started, else None. Malformed input is None, never an error."""
    if not isinstance(raw, Mapping):
        return None
    try:
        summary = DataCaptureConfigSummary.model_validate(raw)
    except ValidationError:
        return None
    if not summary.enable_capture or summary.capture_status is not CaptureStatus.STARTED:
        return None
    return _settings(
        summary.current_sampling_percentage,
        summary.destination_s3_uri,
        summary.kms_key_id,
        summary.capture_options,
        summary.capture_content_type_header,
    )


def settings_from_config(config: DataCaptureConfig) -> CaptureSettings | None:
    """An EndpointConfig-shaped ``dataCaptureConfig`` (standalone routes file)."""
    if config.enable_capture is False:
        return None
    return _settings(
        config.initial_sampling_percentage,
        config.destination_s3_uri,
        config.kms_key_id,
        config.capture_options,
        config.capture_content_type_header,
    )


class Captured:
    """One sampled invocation, as the call path hands it over: references, nothing encoded."""

    __slots__ = (
        "endpoint",
        "event_id",
        "inference_id",
        "input_body",
        "input_type",
        "output_body",
        "output_type",
        "settings",
        "time",
        "variant",
    )

    def __init__(
        self,
        settings: CaptureSettings,
        endpoint: str,
        variant: str,
        event_id: str,
        inference_id: str | None,
        time: float,
        input_type: str | None,
        input_body: bytes | None,
        output_type: str | None,
        output_body: bytes | None,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.variant = variant
        self.event_id = event_id
        self.inference_id = inference_id
        self.time = time
        self.input_type = input_type
        self.input_body = input_body
        self.output_type = output_type
        self.output_body = output_body


def encode(body: bytes, content_type: str | None, settings: CaptureSettings) -> tuple[str, str]:
    """``(data, encoding)``: text for the configured CSV and JSON types, else base64."""
    kind = media_type(content_type)
    encoding = (
        Encoding.CSV if kind in settings.csv_types else Encoding.JSON if kind in settings.json_types else None
    )
    if encoding is not None:
        try:
            return body.decode("utf-8"), encoding
        except UnicodeDecodeError:
            pass  # not text after all: keep every byte
    return base64.b64encode(body).decode("ascii"), Encoding.BASE64


def _payload(body: bytes, content_type: str | None, mode: str, settings: CaptureSettings) -> dict[str, str]:
    data, encoding = encode(body, content_type, settings)
    payload = {"observedContentType": content_type} if content_type else {}
    return {**payload, "mode": mode, "data": data, "encoding": encoding}


def inference_time(seconds: float) -> str:
    return _second(int(seconds))


@functools.lru_cache(maxsize=256)  # the calls of one batch share a few seconds
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_record(captured: Captured) -> dict[str, Any]:
    """The JSON line of one captured invocation (SageMaker's capture format, eventVersion 0)."""
    data: dict[str, Any] = {}
    if captured.input_body is not None:
        data["endpointInput"] = _payload(
            captured.input_body, captured.input_type, Mode.INPUT, captured.settings
        )
    if captured.output_body is not None:
        data["endpointOutput"] = _payload(
            captured.output_body, captured.output_type, Mode.OUTPUT, captured.settings
        )
    metadata = {"eventId": captured.event_id}
    if captured.inference_id:
        metadata["inferenceId"] = captured.inference_id
    metadata["inferenceTime"] = inference_time(captured.time)
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}


def object_key(settings: CaptureSettings, endpoint: str, variant: str, first: float, unique: str) -> str:
    """``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<unique>.jsonl``."""
    when = datetime.fromtimestamp(first, UTC)
    name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{unique}.jsonl"
    path = f"{endpoint}/{variant}/{when:%Y/%m/%d/%H}/{name}"
    return f"{settings.prefix}/{path}" if settings.prefix else path


def _size(captured: Captured) -> int:
    return len(captured.input_body or b"") + len(captured.output_body or b"")


@dataclass(frozen=True)
class Batch:
    """One capture file to write: its place, its body, and whose records it holds."""

    bucket: str
    key: str
    kms_key_id: str | None
    body: bytes
    endpoint: str
    variant: str
    records: int


def batches(
    captured: Iterable[Captured], unique: Callable[[], str] = lambda: str(uuid.uuid4())
) -> list[Batch]:
    """Capture files for ``captured``: one per destination, endpoint, variant and hour (in order
    of arrival), split once a file holds about ``FILE_BYTES`` of payload."""
    groups: dict[tuple[Any, ...], list[list[Captured]]] = {}
    filled: dict[tuple[Any, ...], int] = {}  # payload bytes in each group's last file
    for item in captured:
        settings = item.settings
        hour = int(item.time // 3600)
        group = (settings.bucket, settings.prefix, settings.kms_key_id, item.endpoint, item.variant, hour)
        files = groups.setdefault(group, [[]])
        size = _size(item)
        if files[-1] and filled[group] + size > FILE_BYTES:
            files.append([])
            filled[group] = 0
        files[-1].append(item)
        filled[group] = filled.get(group, 0) + size
    result = []
    for files in groups.values():
        for records in files:
            first = records[0]
            lines = [_COMPACT.encode(capture_record(r)) for r in records]
            result.append(
                Batch(
                    bucket=first.settings.bucket,
                    key=object_key(first.settings, first.endpoint, first.variant, first.time, unique()),
                    kms_key_id=first.settings.kms_key_id,
                    body=("\n".join(lines) + "\n").encode(),
                    endpoint=first.endpoint,
                    variant=first.variant,
                    records=len(records),
                )
            )
    return result


Uploader = Callable[[Batch], None]


class S3Uploader:
    """Writes a batch with ``put_object`` (blocking: runs on the capture thread only). The client
    is the data plane's (sageport.storage.s3: AWS_ENDPOINT_URL_S3 and AWS credentials from the
    environment), made on first use, with short timeouts: a slow S3 costs records, not memory."""

    def __init__(self) -> None:
        self._client: Any = None

    def __call__(self, batch: Batch) -> None:
        if self._client is None:
            from sageport.storage.s3 import s3_client

            self._client = s3_client(max_attempts=2, connect_timeout=2.0, read_timeout=10.0)
        extra = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": batch.kms_key_id} if batch.kms_key_id else {}
        )
        self._client.put_object(Bucket=batch.bucket, Key=batch.key, Body=batch.body, **extra)


class _Thread:
    """One daemon thread running blocking jobs in order. Not a ThreadPoolExecutor: Python joins
    those at exit, and an upload hanging on a dead S3 would then hold the gateway's shutdown."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, job: Callable[[], _Flushed]) -> asyncio.Future[_Flushed]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Flushed] = loop.create_future()
        self._jobs.put((loop, future, job))
        return future

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            loop, future, job = item
            try:
                outcome: tuple[Any, Any] = (job(), None)
            except BaseException as error:
                outcome = (None, error)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled: the caller stopped waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass
class _Flushed:
    written: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[tuple[str, str], int] = field(default_factory=dict)
    error: str | None = None


class DataCapture:
    """The gateway's capture buffer and its writer (one per gateway process)."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        uploader: Uploader | None = None,
        *,
        max_bytes: int = 32 << 20,
        flush_seconds: float = 5.0,
        flush_bytes: int = 4 << 20,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.metrics = metrics
        self.uploader = uploader or S3Uploader()
        self.max_bytes = max_bytes
        self.flush_seconds = flush_seconds
        self.flush_bytes = flush_bytes
        self._draw = draw
        self._pending: deque[Captured] = deque()
        self._pending_bytes = 0
        self._uploading_bytes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Its own thread: a hanging S3 must not hold the loop's default executor, which the
        # Kubernetes watch read-throughs and token reviews use.
        self._thread = _Thread("capture")
        self._dropped: dict[tuple[str, str], Any] = {}
        self._last_warning = 0.0
        metrics.data_capture_buffered_bytes.set_function(lambda: self._pending_bytes + self._uploading_bytes)

    # ---- the call path ---------------------------------------------------------------------
    def offer(
        self,
        settings: CaptureSettings,
        endpoint: str,
        variant: str,
        event_id: str,
        inference_id: str | None,
        input_type: str | None,
        input_body: bytes,
        output_type: str | None,
        output_body: bytes,
    ) -> None:
        """Sample one answered invocation and keep it for the writer: O(1), never blocks, never
        raises for a full buffer (it drops and counts instead)."""
        if settings.percentage < 100.0 and self._draw() * 100.0 >= settings.percentage:
            return
        kept_input = input_body if settings.inputs else None
        kept_output = output_body if settings.outputs else None
        size = (
            RECORD_OVERHEAD
            + (len(kept_input) if kept_input is not None else 0)
            + (len(kept_output) if kept_output is not None else 0)
        )
        if self._pending_bytes + self._uploading_bytes + size > self.max_bytes:
            self._drop(endpoint, variant)
            return
        self._pending.append(
            Captured(settings, endpoint, variant, event_id, inference_id, time.time(),
                     input_type, kept_input, output_type, kept_output)
        )  # fmt: skip
        self._pending_bytes += size
        if self._pending_bytes >= self.flush_bytes:
            self._wake.set()

    def _drop(self, endpoint: str, variant: str) -> None:
        counter = self._dropped.get((endpoint, variant))
        if counter is None:
            if len(self._dropped) > 4096:  # endpoints come and go; don't grow forever
                self._dropped.clear()
            counter = self._dropped[(endpoint, variant)] = self.metrics.data_capture_dropped.labels(
                endpoint, variant, BUFFER_FULL
            )
        counter.inc()

    # ---- the writer ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a bug must not end capture for the rest of the process
                log.exception("data capture flush failed")

    async def flush(self) -> None:
        """Write everything buffered so far (from the capture thread) and count the outcome."""
        if not self._pending:
            return
        taken, self._pending = list(self._pending), deque()
        size, self._pending_bytes = self._pending_bytes, 0
        self._uploading_bytes += size
        try:
            flushed = await self._thread.run(lambda: self._write(taken))
        finally:
            self._uploading_bytes -= size
        if flushed.error is not None:
            now = time.monotonic()
            if now - self._last_warning >= _LOG_EVERY_SECONDS:
                self._last_warning = now
                lost = sum(flushed.failed.values())
                log.warning("data capture: %d record(s) not written to S3: %s", lost, flushed.error)

    def _write(self, captured: list[Captured]) -> _Flushed:
        """On the capture thread: encode, upload, count. Every failure is a count, not a raise."""
        flushed = _Flushed()
        for batch in batches(captured):
            key = (batch.endpoint, batch.variant)
            try:
                self.uploader(batch)
            except Exception as error:
                flushed.failed[key] = flushed.failed.get(key, 0) + batch.records
                # The error's type and message name the bucket or the endpoint, never a secret.
                flushed.error = f"s3://{batch.bucket}/{batch.key}: {type(error).__name__}: {error}"
                self.metrics.data_capture_dropped.labels(*key, UPLOAD_FAILED).inc(batch.records)
            else:
                flushed.written[key] = flushed.written.get(key, 0) + batch.records
                self.metrics.data_capture_records.labels(*key).inc(batch.records)
        return flushed

    async def close(self, last_flush_seconds: float = 5.0) -> None:
        """Stop the writer after one last flush of what is buffered (at most ``last_flush_seconds``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.wait_for(self.flush(), last_flush_seconds)
        except TimeoutError:
            log.warning("data capture: the last flush did not finish within %.0f s", last_flush_seconds)
        self._thread.stop()
