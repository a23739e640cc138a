"""Data capture in the gateway: SageMaker's record format, encodings, sampling, object names, the
bounded buffer and its writer (with a fake uploader; tests/integration/gateway/test_capture.py
writes to a real S3 server)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sageport.gateway import capture as capture_module
from sageport.gateway.capture import (
    BUFFER_FULL,
    UPLOAD_FAILED,
    Batch,
    Captured,
    CaptureSettings,
    DataCapture,
    S3Uploader,
    batches,
    capture_record,
    encode,
    object_key,
    settings_from_summary,
    split_s3_uri,
)
from sageport.gateway.config import ConfigError, parse_routes
from sageport.gateway.kubestate import build_routes, parse_endpoint
from sageport.gateway.metrics import GatewayMetrics

NOON = datetime(2026, 3, 4, 12, 5, 6, 789000, tzinfo=UTC).timestamp()
TEXT = CaptureSettings(
    percentage=100.0,
    bucket="bucket",
    prefix="capture/team",
    inputs=True,
    outputs=True,
    csv_types=frozenset({"text/csv"}),
    json_types=frozenset({"application/json"}),
)
SUMMARY = {
    "enableCapture": True,
    "captureStatus": "Started",
    "currentSamplingPercentage": 100,
    "destinationS3URI": "s3://bucket/capture/team/",
    "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
    "captureContentTypeHeader": {"csvContentTypes": ["text/csv"], "jsonContentTypes": ["application/json"]},
}


def _captured(settings: CaptureSettings = TEXT, *, at: float = NOON, **fields: Any) -> Captured:
    values: dict[str, Any] = {
        "endpoint": "iris",
        "variant": "AllTraffic",
        "event_id": "0f9d4c58-1b0e-4a4e-9a37-000000000001",
        "inference_id": None,
        "input_type": "text/csv",
        "input_body": b"5.1,3.5,1.4,0.2",
        "output_type": "application/json",
        "output_body": b"[0]",
    } | fields
    return Captured(settings, time=at, **values)


def test_record_is_sagemakers_capture_format() -> None:
    assert capture_record(_captured(inference_id="order-7")) == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "5.1,3.5,1.4,0.2",
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": "[0]",
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": "0f9d4c58-1b0e-4a4e-9a37-000000000001",
            "inferenceId": "order-7",
            "inferenceTime": "2026-03-04T12:05:06Z",
        },
        "eventVersion": "0",
    }


def test_without_an_inference_id_the_metadata_has_none() -> None:
    assert list(capture_record(_captured())["eventMetadata"]) == ["eventId", "inferenceTime"]


def test_capture_mode_input_or_output_alone() -> None:
    only_input = _captured(output_body=None)
    assert list(capture_record(only_input)["captureData"]) == ["endpointInput"]
    only_output = _captured(input_body=None)
    assert list(capture_record(only_output)["captureData"]) == ["endpointOutput"]


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/csv", b"1,2\n", ("1,2\n", "CSV")),
        ("Text/CSV; charset=utf-8", b"1,2", ("1,2", "CSV")),
        ("application/json", b'{"a": "\xc3\xa9"}', ('{"a": "\u00e9"}', "JSON")),
        ("application/x-npy", b"\x93NUMPY", (base64.b64encode(b"\x93NUMPY").decode(), "BASE64")),
        ("text/csv", b"\xff\xfe", (base64.b64encode(b"\xff\xfe").decode(), "BASE64")),  # not UTF-8
        (None, b"raw", (base64.b64encode(b"raw").decode(), "BASE64")),
    ],
)
def test_encoding_by_the_configured_content_types(
    content_type: str | None, body: bytes, expected: tuple[str, str]
) -> None:
    assert encode(body, content_type, TEXT) == expected


def test_without_capture_content_type_header_everything_is_base64() -> None:
    summary = {key: value for key, value in SUMMARY.items() if key != "captureContentTypeHeader"}
    settings = settings_from_summary(summary)
    assert settings is not None
    assert encode(b"1,2", "text/csv", settings) == (base64.b64encode(b"1,2").decode(), "BASE64")
    assert encode(b"{}", "application/json", settings) == ("e30=", "BASE64")


def test_no_content_type_observed_leaves_the_field_out() -> None:
    record = capture_record(_captured(input_type=None))
    assert "observedContentType" not in record["captureData"]["endpointInput"]


def test_object_key_is_endpoint_variant_hour_then_minute_second_millisecond_uuid() -> None:
    assert (
        object_key(TEXT, "iris", "AllTraffic", NOON, "u-1")
        == "capture/team/iris/AllTraffic/2026/03/04/12/05-06-789-u-1.jsonl"
    )
    bare = CaptureSettings(percentage=100.0, bucket="b", prefix="", inputs=True, outputs=False)
    assert object_key(bare, "e", "v", NOON, "u") == "e/v/2026/03/04/12/05-06-789-u.jsonl"


def test_s3_uris() -> None:
    assert split_s3_uri("s3://bucket") == ("bucket", "")
    assert split_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert split_s3_uri("https://bucket.s3.amazonaws.com/a") is None
    assert split_s3_uri("s3:///a") is None


def test_summary_to_settings() -> None:
    assert settings_from_summary(SUMMARY) == TEXT
    both = settings_from_summary({**SUMMARY, "captureOptions": [{"captureMode": "InputAndOutput"}]})
    assert both is not None
    assert (both.inputs, both.outputs) == (True, True)
    only = settings_from_summary({**SUMMARY, "captureOptions": [{"captureMode": "Output"}]})
    assert only is not None
    assert (only.inputs, only.outputs) == (False, True)
    kms = settings_from_summary({**SUMMARY, "kmsKeyID": "alias/capture", "currentSamplingPercentage": 5})
    assert kms is not None
    assert (kms.kms_key_id, kms.percentage) == ("alias/capture", 5.0)


@pytest.mark.parametrize(
    "summary",
    [
        None,
        "capture",
        {**SUMMARY, "captureStatus": "Stopped"},
        {**SUMMARY, "enableCapture": False},
        {**SUMMARY, "destinationS3URI": "https://b/p"},
        {**SUMMARY, "currentSamplingPercentage": "lots"},
        {**SUMMARY, "captureOptions": []},
    ],
)
def test_no_capture_from_a_stopped_or_malformed_summary(summary: Any) -> None:
    assert settings_from_summary(summary) is None


def test_batches_one_file_per_endpoint_variant_and_hour_in_order() -> None:
    later = NOON + 3600
    items = [
        _captured(event_id="1"),
        _captured(event_id="2", variant="Canary"),
        _captured(event_id="3", at=later),
        _captured(event_id="4"),
    ]
    names = iter(["a", "b", "c"])
    files = batches(items, unique=lambda: next(names))
    assert [(f.key, f.records) for f in files] == [
        ("capture/team/iris/AllTraffic/2026/03/04/12/05-06-789-a.jsonl", 2),
        ("capture/team/iris/Canary/2026/03/04/12/05-06-789-b.jsonl", 1),
        ("capture/team/iris/AllTraffic/2026/03/04/13/05-06-789-c.jsonl", 1),
    ]
    lines = files[0].body.decode().splitlines()
    assert [json.loads(line)["eventMetadata"]["eventId"] for line in lines] == ["1", "4"]
    assert lines[0] == json.dumps(capture_record(items[0]), separators=(",", ":"))
    assert files[0].body.endswith(b"\n")
    assert (files[0].bucket, files[0].endpoint, files[0].variant) == ("bucket", "iris", "AllTraffic")


def test_a_big_batch_is_split_into_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_module, "FILE_BYTES", 100)
    items = [_captured(input_body=b"x" * 60, output_body=b"") for _ in range(3)]
    assert [f.records for f in batches(items)] == [1, 1, 1]
    small = [_captured(input_body=b"x" * 30, output_body=b"") for _ in range(3)]
    assert [f.records for f in batches(small)] == [3]


# ---- the buffer and its writer -----------------------------------------------------------------


class FakeS3:
    def __init__(self, fail: bool = False) -> None:
        self.written: list[Batch] = []
        self.fail = fail

    def __call__(self, batch: Batch) -> None:
        if self.fail:
            raise ConnectionRefusedError("Could not connect to the endpoint URL")
        self.written.append(batch)


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics(CollectorRegistry())


def _value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _offer(capture: DataCapture, settings: CaptureSettings = TEXT, body: bytes = b"1,2", **kw: Any) -> None:
    capture.offer(
        settings, "iris", "AllTraffic", kw.get("event_id", "e"), None, "text/csv", body, "text/csv", b"0"
    )


def _draws(*values: float) -> Iterator[float]:
    yield from values


def test_sampling_at_the_percentage(metrics: GatewayMetrics) -> None:
    draws = _draws(0.05, 0.29, 0.30, 0.99, 0.10, 0.0)
    capture = DataCapture(metrics, FakeS3(), draw=lambda: next(draws))
    thirty = CaptureSettings(percentage=30.0, bucket="b", prefix="", inputs=True, outputs=True)
    for event in "abcde":
        _offer(capture, thirty, event_id=event)
    assert [c.event_id for c in capture._pending] == ["a", "b", "e"]
    never = CaptureSettings(percentage=0.0, bucket="b", prefix="", inputs=True, outputs=True)
    _offer(capture, never)
    assert len(capture._pending) == 3


def test_offer_keeps_references_and_encodes_nothing(metrics: GatewayMetrics) -> None:
    capture = DataCapture(metrics, FakeS3())
    body = b"x" * (1 << 20)
    _offer(capture, body=body)
    (kept,) = capture._pending
    assert kept.input_body is body  # no copy, no encoding on the call path
    only_output = CaptureSettings(percentage=100.0, bucket="b", prefix="", inputs=False, outputs=True)
    _offer(capture, only_output, body=body)
    assert capture._pending[-1].input_body is None


def test_a_full_buffer_drops_and_counts(metrics: GatewayMetrics) -> None:
    capture = DataCapture(metrics, FakeS3(), max_bytes=3 * (capture_module.RECORD_OVERHEAD + 100))
    for _ in range(5):
        _offer(capture, body=b"x" * 99)  # 99 + 1 byte output + overhead each
    assert len(capture._pending) == 3
    dropped = _value(
        metrics,
        "sageport_data_capture_dropped_records_total",
        endpoint="iris",
        variant="AllTraffic",
        reason=BUFFER_FULL,
    )
    assert dropped == 2
    assert _value(metrics, "sageport_data_capture_buffered_bytes") == 3 * (
        capture_module.RECORD_OVERHEAD + 100
    )


async def test_flush_writes_counts_and_frees_the_buffer(metrics: GatewayMetrics) -> None:
    s3 = FakeS3()
    capture = DataCapture(metrics, s3)
    for event in ("a", "b"):
        _offer(capture, event_id=event)
    await capture.flush()
    (batch,) = s3.written
    assert batch.records == 2
    assert batch.key.startswith("capture/team/iris/AllTraffic/")
    assert _value(metrics, "sageport_data_capture_records_total", endpoint="iris", variant="AllTraffic") == 2
    assert _value(metrics, "sageport_data_capture_buffered_bytes") == 0
    await capture.close()


async def test_a_failing_upload_is_counted_not_raised(
    metrics: GatewayMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    capture = DataCapture(metrics, FakeS3(fail=True))
    _offer(capture)
    await capture.flush()
    dropped = _value(
        metrics,
        "sageport_data_capture_dropped_records_total",
        endpoint="iris",
        variant="AllTraffic",
        reason=UPLOAD_FAILED,
    )
    assert dropped == 1
    assert _value(metrics, "sageport_data_capture_buffered_bytes") == 0
    assert "ConnectionRefusedError" in caplog.text
    await capture.close()


async def test_the_writer_flushes_by_size_and_on_close(metrics: GatewayMetrics) -> None:
    s3 = FakeS3()
    capture = DataCapture(
        metrics, s3, flush_seconds=3600, flush_bytes=2 * (capture_module.RECORD_OVERHEAD + 4)
    )
    capture.start()
    _offer(capture)
    _offer(capture)  # reaches flush_bytes: the writer wakes without waiting an hour
    for _ in range(100):
        if s3.written:
            break
        await asyncio.sleep(0.01)
    assert [b.records for b in s3.written] == [2]
    _offer(capture)
    await capture.close()  # the last record is written on the way out
    assert [b.records for b in s3.written] == [2, 1]


# ---- where the gateway learns an endpoint's capture ----------------------------------------------


def test_kubernetes_mode_reads_the_endpoint_status() -> None:
    obj = {
        "metadata": {"namespace": "ml", "name": "iris", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"endpointConfigName": "cfg"},
        "status": {
            "endpointStatus": "InService",
            "productionVariants": [{"variantName": "AllTraffic"}],
            "dataCaptureConfig": SUMMARY,
        },
    }
    parsed = parse_endpoint(obj)
    assert parsed.capture == TEXT
    (spec,), _ = build_routes([parsed], [])
    assert spec.capture == TEXT
    del obj["status"]["dataCaptureConfig"]  # type: ignore[attr-defined]
    assert parse_endpoint(obj).capture is None


def test_standalone_routes_file_takes_an_endpoint_configs_data_capture_config() -> None:
    capture = {
        "initialSamplingPercentage": 100,
        "destinationS3URI": "s3://bucket/capture/team",
        "captureOptions": [{"captureMode": "InputAndOutput"}],
        "captureContentTypeHeader": {
            "csvContentTypes": ["text/csv"],
            "jsonContentTypes": ["application/json"],
        },
    }
    variants = [{"name": "AllTraffic", "backends": ["http://127.0.0.1:1"]}]
    (spec,) = parse_routes({"endpoints": {"iris": {"variants": variants, "dataCaptureConfig": capture}}})
    assert spec.capture == TEXT
    (off,) = parse_routes(
        {
            "endpoints": {
                "iris": {"variants": variants, "dataCaptureConfig": {**capture, "enableCapture": False}}
            }
        }
    )
    assert off.capture is None
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        parse_routes(
            {
                "endpoints": {
                    "iris": {
                        "variants": variants,
                        "dataCaptureConfig": {**capture, "destinationS3URI": "/tmp"},
                    }
                }
            }
        )


def test_the_uploader_puts_the_file_with_sse_kms_when_a_key_is_set() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def put_object(self, **kwargs: Any) -> None:
            self.calls.append(kwargs)

    uploader, client = S3Uploader(), Client()
    uploader._client = client
    (batch,) = batches([_captured()])
    uploader(batch)
    kms = CaptureSettings(percentage=100.0, bucket="b", prefix="", inputs=True, outputs=True, kms_key_id="k")
    (encrypted,) = batches([_captured(kms)])
    uploader(encrypted)
    assert client.calls == [
        {"Bucket": "bucket", "Key": batch.key, "Body": batch.body},
        {
            "Bucket": "b",
            "Key": encrypted.key,
            "Body": encrypted.body,
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": "k",
        },
    ]
