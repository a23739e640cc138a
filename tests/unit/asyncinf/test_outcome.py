"""The agent's decisions: what a queued call becomes (answered already, expired, output or
failure), and the SageMaker notification body of each end."""

from __future__ import annotations

import pytest

from sageport.asyncinf import outcome
from sageport.asyncinf.notify import notification
from sageport.asyncinf.outcome import Triage, triage
from sageport.asyncinf.request import AsyncRequest

RECEIVED = 1_700_000_000_000
REQUEST = AsyncRequest(
    inference_id="abc",
    output_location="s3://b/o/abc.out",
    failure_location="s3://b/f/abc-error.out",
    received_ms=RECEIVED,
    ttl_seconds=60,
    timeout_seconds=5,
    input_location="s3://b/in/x.csv",
    content_type="text/csv",
)


@pytest.mark.parametrize(
    ("waited_ms", "output", "failure", "expected"),
    [
        (0, False, False, Triage.RUN),
        (60_000, False, False, Triage.RUN),  # exactly the TTL: still in time
        (60_001, False, False, Triage.EXPIRED),
        (10, True, False, Triage.ANSWERED),  # a redelivery after the output was written
        (10, False, True, Triage.ANSWERED),
        (999_999, True, False, Triage.ANSWERED),  # answered wins over expired: never two results
    ],
)
def test_triage(waited_ms: int, output: bool, failure: bool, expected: Triage) -> None:
    assert triage(REQUEST, RECEIVED + waited_ms, output, failure) is expected


def test_model_answers() -> None:
    assert outcome.from_model(200, b"[1]") == outcome.Outcome(True)
    client = outcome.from_model(400, b"bad input: expected 4 features")
    assert not client.success
    assert client.failure_body is None
    assert client.reason == (
        'ClientError: Received client error (400) from model with message "bad input: expected 4 features".'
    )
    assert "server error (503)" in (outcome.from_model(503, b"").reason or "")


def test_failures_the_agent_writes_itself_say_why() -> None:
    expired = outcome.expired(REQUEST, RECEIVED + 90_000)
    assert expired.failure_body is not None
    assert b"RequestTTLSeconds (60)" in expired.failure_body
    assert b"waited 90 seconds" in expired.failure_body
    timed_out = outcome.timed_out(REQUEST)
    assert timed_out.failure_body == (timed_out.reason or "").encode()
    assert "InvocationTimeoutSeconds (5)" in (timed_out.reason or "")
    missing = outcome.input_missing("s3://b/in/x.csv", "no such object")
    assert "s3://b/in/x.csv" in (missing.reason or "")
    assert not missing.success


def test_success_notification_is_sagemakers_inference_result() -> None:
    done = outcome.Outcome(True, content_type="application/json")
    assert notification(endpoint="ep", request=REQUEST, result=done, now=RECEIVED / 1000 + 1.5) == {
        "awsRegion": "local",
        "eventTime": "2023-11-14T22:13:21.500Z",
        "receivedTime": "2023-11-14T22:13:20.000Z",
        "invocationStatus": "Completed",
        "requestParameters": {
            "endpointName": "ep",
            "contentType": "text/csv",
            "inputLocation": "s3://b/in/x.csv",
        },
        "responseParameters": {"outputLocation": "s3://b/o/abc.out", "contentType": "application/json"},
        "inferenceId": "abc",
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }


def test_error_notification_names_the_failure_location_and_reason() -> None:
    failed = outcome.from_model(500, b"boom")
    message = notification(endpoint="ep", request=REQUEST, result=failed, now=RECEIVED / 1000)
    assert message["invocationStatus"] == "Failed"
    assert message["responseParameters"] == {"failureLocation": "s3://b/f/abc-error.out"}
    assert message["failureReason"] == failed.reason
    assert "boom" in message["failureReason"]


def test_a_failure_reason_survives_its_objects_metadata() -> None:
    reason = 'ClientError: Received client error (400) from model with message "bad row: é\n".'
    failure = outcome.Outcome(False, reason)
    metadata = outcome.result_metadata(failure)
    (value,) = metadata.values()
    assert value.isascii()  # S3 user metadata is one ASCII header
    assert "\n" not in value
    headers = {f"x-amz-meta-{name}": value for name, value in metadata.items()}
    assert outcome.recorded(False, headers).reason == reason
    assert outcome.result_metadata(outcome.Outcome(True)) == {}


def test_a_result_found_in_s3_stands_for_its_outcome() -> None:
    found = outcome.recorded(True, {"content-type": "text/csv"})
    assert (found.success, found.content_type) == (True, "text/csv")
    bare = outcome.recorded(False, {})  # a failure object written without the reason
    assert not bare.success
    assert "failure object" in (bare.reason or "")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[0]\n", {"content": "[0]\n", "encoding": "UTF-8"}),
        (b"\xff\x00", {"content": "/wA=", "encoding": "BASE64"}),
        (b"z" * (128 * 1024), {"content": "z" * (128 * 1024), "encoding": "UTF-8"}),  # 128 KB: still in
        (b"z" * (128 * 1024 + 1), None),  # above: only in S3
    ],
)
def test_a_notification_includes_an_answer_up_to_128_kb(body: bytes, expected: object) -> None:
    done = outcome.Outcome(True, content_type="text/csv")
    message = notification(endpoint="ep", request=REQUEST, result=done, now=RECEIVED / 1000, body=body)
    assert message["responseParameters"].get("responseBody") == expected
