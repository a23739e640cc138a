"""The batch transform driver: one worker of a TransformJob, next to the model container.

It lists the job's input, takes its share of the objects (``objects.shard``), waits for ``GET
/ping``, asks ``GET /execution-parameters``, then per object: reads it whole, splits and batches
it (``pipeline.prepare``), sends the batches to ``POST /invocations`` with at most
``MaxConcurrentTransforms`` requests in flight for the whole worker, assembles the responses in
input order and writes the output object in one go (a single PUT, or a multipart upload that is
only visible once complete), so no partial ``.out`` is ever visible. An object whose record the
model rejects is not written; the others go on and are kept, and the job then fails naming it
(sagemaker-semantics.md §1.7).

A worker that runs again after its pod died (``retry`` > 0) skips the objects whose output this
job already wrote: each output carries the job's uid as S3 user metadata, so an output left by an
earlier job at the same path is never mistaken for one, and only the object that was in flight
when the pod died is transformed again.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from sageport.api.v1alpha1 import TransformJobSpec
from sageport.batch.objects import (
    InputError,
    InputObject,
    manifest_objects,
    no_objects_message,
    output_location,
    parse_s3_uri,
    prefix_objects,
    shard,
)
from sageport.batch.params import Parameters, resolve
from sageport.batch.pipeline import Prepared, finish, prepare
from sageport.contract import (
    EXECUTION_PARAMETERS_PATH,
    INVOCATIONS_PATH,
    PING_PATH,
    TRANSFORM_OUTPUT_METADATA,
    TransformJobStatus,
)
from sageport.net.upstream import Target, UpstreamError, UpstreamPool
from sageport.storage.objects import ObjectStore

log = logging.getLogger(__name__)

# FailureReason is at most 1024 characters in SageMaker's API.
FAILURE_REASON_LIMIT = 1024
_RETRY_BASE_SECONDS = 0.2
MULTIPART_THRESHOLD = 8 * 2**20  # boto3's own default
_ON_LOOP = 2**20  # objects up to this size are split and assembled on the event loop
_T = TypeVar("_T")


class ModelError(Exception):
    """The model container answered a batch with an error, after the retries it was due."""


@dataclass
class Result:
    """What the worker did; its JSON is the pod's termination message (the operator's input)."""

    status: TransformJobStatus = TransformJobStatus.COMPLETED
    failure_reason: str | None = None
    objects: int = 0
    failed_objects: list[str] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0
    skipped: int = 0  # objects a previous run of this worker had written already
    # From the first object read to the last output written: the transform itself, without
    # listing the input or waiting for the model to answer /ping (what throughput is measured on).
    transform_seconds: float = 0.0

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "transformJobStatus": self.status,
            "objects": self.objects,
            "failedObjects": self.failed_objects[:20],
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "transformSeconds": round(self.transform_seconds, 3),
        }
        if self.skipped:
            body["skippedObjects"] = self.skipped
        if self.failure_reason:
            body["failureReason"] = self.failure_reason[:FAILURE_REASON_LIMIT]
        return json.dumps(body)


@dataclass
class Driver:
    spec: TransformJobSpec
    index: int
    s3: Any
    model_url: str = "http://127.0.0.1:8080"
    ping_timeout: float = 1800.0
    clock: Callable[[], float] = time.monotonic
    result: Result = field(default_factory=Result)
    job_uid: str | None = None  # written on every output; a retry skips outputs carrying it
    retry: int = 0  # how many runs of this worker's index failed before this one

    @property
    def count(self) -> int:
        return self.spec.transform_resources.instance_count

    async def run(self) -> Result:
        started = self.clock()
        try:
            mine = await asyncio.to_thread(self._my_objects)
            self.result.objects = len(mine)
            log.info("worker %d of %d: %d objects", self.index, self.count, len(mine))
            if mine:
                await self._wait_for_ping()
                params = resolve(self.spec, await asyncio.to_thread(self._execution_parameters))
                log.info(
                    "MaxConcurrentTransforms=%d, MaxPayloadInMB=%d, BatchStrategy=%s",
                    params.max_concurrent_transforms,
                    params.max_payload_in_mb,
                    params.batch_strategy,
                )
                async with aiohttp.ClientSession() as session:
                    # Made before the clock starts: its set-up (credentials, TLS context) takes
                    # tens of milliseconds, once per worker, like the boto3 client's.
                    objects = ObjectStore(session, self.s3)
                    transforming = self.clock()
                    try:
                        await self._transform_all(mine, params, objects)
                    finally:
                        self.result.transform_seconds = self.clock() - transforming
        except (InputError, ValueError) as error:
            self._fail(f"ClientError: {error}")
        except ModelError as error:
            self._fail(f"AlgorithmError: {error}")
        finally:
            self.result.seconds = self.clock() - started
        return self.result

    def _fail(self, reason: str) -> None:
        self.result.status = TransformJobStatus.FAILED
        if self.result.failure_reason is None:
            self.result.failure_reason = reason

    # --- input ----------------------------------------------------------------------------------

    def _my_objects(self) -> list[InputObject]:
        source = self.spec.transform_input.data_source.s3_data_source
        if source.s3_data_type == "S3Prefix":
            bucket, prefix = parse_s3_uri(source.s3_uri)
            listing: list[tuple[str, int]] = []
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                listing.extend((item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", []))
            objects = prefix_objects(source.s3_uri, listing)
        elif source.s3_data_type == "ManifestFile":
            bucket, key = parse_s3_uri(source.s3_uri)
            manifest = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            objects = manifest_objects(manifest, source.s3_uri)
        else:
            raise InputError(f"S3DataType {source.s3_data_type} is not supported by batch transform")
        if not objects:
            raise InputError(no_objects_message(source.s3_uri))
        return shard(objects, self.index, self.count)

    # --- the model container --------------------------------------------------------------------

    async def _wait_for_ping(self) -> None:
        deadline = self.clock() + self.ping_timeout
        while True:
            status = await asyncio.to_thread(self._get_status, PING_PATH)
            if status == 200:
                return
            if self.clock() > deadline:
                raise ModelError("Model container failed to respond to ping")
            await asyncio.sleep(0.5)

    def _get_status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.model_url + path, timeout=2) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def _execution_parameters(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.model_url + EXECUTION_PARAMETERS_PATH, timeout=10) as reply:
                offered = json.loads(reply.read())
        except (OSError, ValueError):
            return None  # not offered (404), or not JSON: the job's values and the defaults apply
        log.info("the container offers %s", offered)
        return offered if isinstance(offered, dict) else None

    # --- transforming ---------------------------------------------------------------------------

    async def _transform_all(self, mine: list[InputObject], params: Parameters, objects: ObjectStore) -> None:
        run = _Run(
            params,
            UpstreamPool(),
            Target(self.model_url),
            objects,
            _Slots.of(params.max_concurrent_transforms),
        )

        async def one(item: InputObject) -> None:
            try:
                records = await self._transform(item, run)
                self.result.records += records  # after the await: `+=` reads before awaiting
            except (InputError, ValueError) as error:
                self._object_failed(item, f"ClientError: {error}")
            except ModelError as error:
                self._object_failed(item, str(error))

        try:
            await asyncio.gather(*(one(item) for item in mine))
        finally:
            run.pool.close()

    def _object_failed(self, item: InputObject, reason: str) -> None:
        log.error("%s: %s", item.uri, reason)
        self.result.failed_objects.append(item.uri)
        self._fail(f"{item.uri}: {reason}")

    async def _transform(self, item: InputObject, run: _Run) -> int:
        bucket, key = output_location(self.spec.transform_output.s3_output_path, item.relative)
        async with run.slots.held:
            if self.retry and self.job_uid and await self._written_by_this_job(run.objects, bucket, key):
                log.info(
                    "%s: s3://%s/%s was written by an earlier run of this job, skipped",
                    *(item.uri, bucket, key),
                )
                self.result.skipped += 1
                return 0
            prepared, responses = await self._through_model(item, run)
            small = sum(map(len, responses)) <= _ON_LOOP and not run.params.processing.active
            output = await _call(small, finish, prepared, responses, run.params)
            await self._write(run.objects, bucket, key, output)
        log.info("%s -> s3://%s/%s (%d records)", item.uri, bucket, key, prepared.count)
        return prepared.count

    async def _through_model(self, item: InputObject, run: _Run) -> tuple[Prepared, list[bytes]]:
        """The object read, split and sent to the model: its batches and the responses, in order.

        Its read-ahead slot frees once its last batch is at the model, not once its output is
        written, so the next object is read while the model works and this one is written (with
        the slot held to the end, the model waited on S3 between objects: x0.67 of a plain client
        with 20 small objects)."""
        params = run.params
        await run.slots.ahead.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                run.slots.ahead.release()

        try:
            data = await run.objects.read(item.bucket, item.key)
            prepared = await _call(len(data) <= _ON_LOOP and not params.gzip, prepare, data, params)
            del data
            headers = {}
            if params.content_type:
                headers["Content-Type"] = params.content_type
            if params.accept:
                headers["Accept"] = params.accept
            left = len(prepared.batches)

            async def call(body: bytes) -> bytes:
                nonlocal left
                async with run.slots.in_flight:
                    left -= 1
                    if not left:
                        release()
                    return await self._invoke(run.pool, run.target, headers, body, params)

            tasks = [asyncio.ensure_future(call(sent.body)) for sent in prepared.batches]
            try:
                responses = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
        finally:
            release()
        return prepared, responses

    async def _invoke(
        self, pool: UpstreamPool, target: Target, headers: dict[str, str], body: bytes, params: Parameters
    ) -> bytes:
        attempt = 0
        while True:
            try:
                response = await pool.post(
                    target, INVOCATIONS_PATH, headers, body, params.invocations_timeout_seconds
                )
                try:
                    content = await response.read()
                finally:
                    response.release()
                if response.status < 300:
                    return content
                problem = f"ClientError: {response.status}: {content[:300].decode('utf-8', 'replace')}"
                retryable = response.status >= 500
            except UpstreamError as error:
                problem, retryable = f"{type(error).__name__}: {error}", True
            if not retryable or attempt >= params.invocations_max_retries:
                raise ModelError(problem)
            attempt += 1
            await asyncio.sleep(_RETRY_BASE_SECONDS * 2 ** (attempt - 1))

    async def _write(self, objects: ObjectStore, bucket: str, key: str, output: bytes) -> None:
        # One PUT below the multipart threshold, on the event loop; boto3's multipart upload in a
        # thread above it: either way the object appears whole or not at all.
        metadata = {TRANSFORM_OUTPUT_METADATA: self.job_uid} if self.job_uid else {}
        if len(output) < MULTIPART_THRESHOLD:
            await objects.put(bucket, key, output, None, metadata)
        else:
            await asyncio.to_thread(
                self.s3.upload_fileobj, io.BytesIO(output), bucket, key, ExtraArgs={"Metadata": metadata}
            )

    async def _written_by_this_job(self, objects: ObjectStore, bucket: str, key: str) -> bool:
        head = await objects.head(bucket, key)
        return head is not None and head.get(f"x-amz-meta-{TRANSFORM_OUTPUT_METADATA}") == self.job_uid


@dataclass
class _Slots:
    """How much a worker holds at once: ``in_flight`` requests at the model
    (MaxConcurrentTransforms); ``ahead`` objects read whose batches are not all at the model yet;
    ``held`` objects in all (read ahead, at the model, being assembled or written), so slow S3
    writes hold the reads back instead of piling finished objects up in memory."""

    in_flight: asyncio.Semaphore
    ahead: asyncio.Semaphore
    held: asyncio.Semaphore

    @classmethod
    def of(cls, concurrency: int) -> _Slots:
        return cls(
            asyncio.Semaphore(concurrency),
            asyncio.Semaphore(concurrency + 1),
            asyncio.Semaphore(2 * (concurrency + 1)),
        )


@dataclass
class _Run:
    """What the objects of one worker share while they are transformed."""

    params: Parameters
    pool: UpstreamPool
    target: Target
    objects: ObjectStore
    slots: _Slots


async def _call(on_loop: bool, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` on the event loop when ``on_loop`` (a small object: splitting 1 MiB
    takes less than a thread hop costs), else in a thread."""
    if on_loop:
        return function(*args)
    return await asyncio.to_thread(function, *args)
