"""Data capture on real pods: examples/data-capture applied, boto3 calls through the gateway, and
the capture files in the stack's S3 server within a minute, in SageMaker's exact shape."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from sageport_dev import stack
from tests.e2e.conftest import Deployed
from tests.e2e.test_endpoints import _wait_ready
from tests.support.capture import EXAMPLE_CAPTURE_SUMMARY

pytestmark = pytest.mark.timeout(600)

EXAMPLE = stack.REPO / "examples" / "data-capture"
ENDPOINT = "iris-capture"
BUCKET, PREFIX = "sageport-models", f"capture/{ENDPOINT}/AllTraffic/"
ROWS = [b"5.1,3.5,1.4,0.2\n", b"6.7,3.0,5.2,2.3\n", b"5.9,3.0,4.2,1.5\n"]
KEY = re.compile(
    re.escape(PREFIX) + r"(?P<hour>\d{4}/\d{2}/\d{2}/\d{2})/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$"
)
ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}


def _records(
    deployed: Deployed, wanted: set[str], timeout: float = 60.0
) -> dict[str, tuple[str, dict[str, Any]]]:
    """eventId -> (object key, record) for the calls in ``wanted``, polled for ``timeout`` s
    (the prefix is shared with earlier runs: only this run's event ids count)."""
    s3 = deployed.s3.client()
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
                for line in body.splitlines():
                    record = json.loads(line)
                    if record["eventMetadata"]["eventId"] in wanted:
                        found[record["eventMetadata"]["eventId"]] = (item["Key"], record)
        if set(found) == wanted or time.monotonic() > deadline:
            return found
        time.sleep(2)


def test_capture_files_appear_within_a_minute_in_sagemakers_shape(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, stack.example_objects(EXAMPLE))
    _wait_ready(deployed, ns, ENDPOINT, key, body=ROWS[0])
    endpoint = json.loads(deployed.kubectl("get", "endpoints.sageport.io", ENDPOINT, "-n", ns, "-o", "json"))
    assert endpoint["status"]["dataCaptureConfig"] == EXAMPLE_CAPTURE_SUMMARY

    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    calls: dict[str, tuple[bytes, bytes, str | None, str | None]] = {}  # eventId -> (input, output, type, id)
    started = time.time()
    for index, row in enumerate(ROWS):
        inference_id = f"e2e-{index}" if index % 2 == 0 else None
        extra = {"InferenceId": inference_id} if inference_id else {}
        response = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=row, **extra)
        answer = response["Body"].read()
        calls[response["ResponseMetadata"]["RequestId"]] = (
            row,
            answer,
            response.get("ContentType"),
            inference_id,
        )
    ended = time.time()

    records = _records(deployed, set(calls))
    assert set(records) == set(calls), f"captured {len(records)} of {len(calls)} calls within a minute"
    hours = {f"{datetime.fromtimestamp(t, UTC):%Y/%m/%d/%H}" for t in (started, ended)}
    for event_id, (object_key, record) in records.items():
        match = KEY.match(object_key)
        assert match, object_key
        assert match["hour"] in hours
        row, answer, output_type, inference_id = calls[event_id]
        assert list(record) == ["captureData", "eventMetadata", "eventVersion"]
        assert record["eventVersion"] == "0"
        assert record["captureData"]["endpointInput"] == {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": row.decode(),
            "encoding": "CSV",
        }
        output = record["captureData"]["endpointOutput"]
        observed = ["observedContentType"] if output_type else []  # left out when none was sent
        assert list(output) == [*observed, "mode", "data", "encoding"]
        assert (output.get("observedContentType"), output["mode"]) == (output_type, "OUTPUT")
        encoding = ENCODINGS.get((output_type or "").split(";")[0].strip().lower(), "BASE64")
        assert output["encoding"] == encoding
        data = base64.b64decode(output["data"]) if encoding == "BASE64" else output["data"].encode()
        assert data == answer
        metadata = record["eventMetadata"]
        assert list(metadata) == ["eventId", *(["inferenceId"] if inference_id else []), "inferenceTime"]
        assert metadata.get("inferenceId") == inference_id
        when = datetime.strptime(metadata["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert int(started) - 1 <= when.timestamp() <= ended + 1
