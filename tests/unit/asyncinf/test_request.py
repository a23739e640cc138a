"""InvokeEndpointAsync validation (SageMaker's ValidationError naming the member), the record
queued in Redis, and the names of the result objects."""

from __future__ import annotations

import pytest

from sageport.asyncinf.request import (
    MAX_INLINE_BODY,
    AsyncRequest,
    parse_async_request,
    result_locations,
    split_s3_uri,
)
from sageport.net.awserrors import ApiError

INPUT = {"x-amzn-sagemaker-inputlocation": "s3://bucket/in/a.csv"}


def _refused(headers: dict[str, str], body: bytes = b"") -> str:
    with pytest.raises(ApiError) as caught:
        parse_async_request(headers, body)
    assert (caught.value.code, caught.value.status) == ("ValidationError", 400)
    return caught.value.message


def test_a_call_with_an_input_location_gets_the_defaults_and_a_generated_unique_id() -> None:
    first, second = parse_async_request(INPUT, b""), parse_async_request(INPUT, b"")
    assert first.input_location == "s3://bucket/in/a.csv"
    assert first.body is None
    assert (first.ttl_seconds, first.timeout_seconds) == (21600, 900)
    assert first.inference_id != second.inference_id
    assert len(first.inference_id) == 36


def test_every_member_is_carried() -> None:
    call = parse_async_request(
        {
            **INPUT,
            "x-amzn-sagemaker-content-type": "text/csv",
            "x-amzn-sagemaker-accept": "application/json",
            "x-amzn-sagemaker-custom-attributes": "trace=1",
            "x-amzn-sagemaker-inference-id": "my-id-1",
            "x-amzn-sagemaker-requestttlseconds": "60",
            "x-amzn-sagemaker-invocationtimeoutseconds": "3600",
        },
        b"",
    )
    assert (call.content_type, call.accept, call.custom_attributes) == (
        "text/csv",
        "application/json",
        "trace=1",
    )
    assert (call.inference_id, call.ttl_seconds, call.timeout_seconds) == ("my-id-1", 60, 3600)


def test_an_inline_body_up_to_128000_bytes_is_accepted() -> None:
    call = parse_async_request({}, b"x" * MAX_INLINE_BODY)
    assert call.body == b"x" * MAX_INLINE_BODY
    assert call.input_location is None


@pytest.mark.parametrize(
    ("headers", "body", "named"),
    [
        (INPUT, b"1,2", "Body and InputLocation are mutually exclusive"),
        ({}, b"", "Either Body or InputLocation must be provided"),
        ({"x-amzn-sagemaker-inputlocation": "https://bucket/key"}, b"", "'inputLocation'"),
        ({"x-amzn-sagemaker-inputlocation": "gs://bucket/key"}, b"", "'inputLocation'"),
        ({"x-amzn-sagemaker-inputlocation": "s3://bucket"}, b"", "'inputLocation'"),
        ({**INPUT, "x-amzn-sagemaker-requestttlseconds": "59"}, b"", "'requestTTLSeconds'"),
        ({**INPUT, "x-amzn-sagemaker-requestttlseconds": "21601"}, b"", "'requestTTLSeconds'"),
        ({**INPUT, "x-amzn-sagemaker-requestttlseconds": "soon"}, b"", "'requestTTLSeconds'"),
        ({**INPUT, "x-amzn-sagemaker-invocationtimeoutseconds": "0"}, b"", "'invocationTimeoutSeconds'"),
        ({**INPUT, "x-amzn-sagemaker-invocationtimeoutseconds": "3601"}, b"", "'invocationTimeoutSeconds'"),
        ({**INPUT, "x-amzn-sagemaker-inference-id": "x" * 65}, b"", "'inferenceId'"),
        ({**INPUT, "x-amzn-sagemaker-inference-id": " leading-space"}, b"", "'inferenceId'"),
        ({**INPUT, "x-amzn-sagemaker-s3outputpathextension": "s3://x"}, b"", "'s3OutputPathExtension'"),
        ({**INPUT, "x-amzn-sagemaker-filename": "a.b.c"}, b"", "'filename'"),
        ({**INPUT, "x-amzn-sagemaker-content-type": "t" * 1025}, b"", "'contentType'"),
        ({}, b"x" * (MAX_INLINE_BODY + 1), "'body'"),
    ],
)
def test_bad_requests_are_validation_errors_naming_the_member(
    headers: dict[str, str], body: bytes, named: str
) -> None:
    assert named in _refused(headers, body)


@pytest.mark.parametrize("slash", ["", "/"])
def test_result_locations_are_sagemakers_with_or_without_a_trailing_slash(slash: str) -> None:
    call = parse_async_request({**INPUT, "x-amzn-sagemaker-inference-id": "abc"}, b"")
    assert result_locations(call, f"s3://b/out{slash}", f"s3://b/fail{slash}") == (
        "s3://b/out/abc.out",
        "s3://b/fail/abc-error.out",
    )
    assert result_locations(call, f"s3://b/out{slash}", None) == ("s3://b/out/abc.out", None)


def test_output_path_extension_and_filename_name_the_output() -> None:
    call = parse_async_request(
        {
            **INPUT,
            "x-amzn-sagemaker-inference-id": "abc",
            "x-amzn-sagemaker-s3outputpathextension": "day/1",
            "x-amzn-sagemaker-filename": "result.json",
        },
        b"",
    )
    assert result_locations(call, "s3://b/out/", "s3://b/fail") == (
        "s3://b/out/day/1/result.json",
        "s3://b/fail/day/1/abc-error.out",
    )


def test_the_queued_record_reads_back_as_redis_returns_it() -> None:
    request = AsyncRequest(
        inference_id="abc",
        output_location="s3://b/o/abc.out",
        failure_location="s3://b/f/abc-error.out",
        received_ms=1_700_000_000_000,
        ttl_seconds=60,
        timeout_seconds=5,
        body=b"\x00\x01binary",
        content_type="application/octet-stream",
        custom_attributes="a=b",
    )
    as_redis = {
        key.encode(): value if isinstance(value, bytes) else value.encode()
        for key, value in request.to_fields().items()
    }
    assert AsyncRequest.from_fields(as_redis) == request
    with pytest.raises(ValueError, match="no"):
        AsyncRequest.from_fields({})


def test_split_s3_uri() -> None:
    assert split_s3_uri("s3://b/k/ey") == ("b", "k/ey")
    for bad in ("s3://b", "s3://b/", "http://b/k"):
        with pytest.raises(ValueError, match="s3:"):
            split_s3_uri(bad)
