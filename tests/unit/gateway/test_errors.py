from __future__ import annotations

import json

import pytest

from sageport.contract import TARGET_MODEL_MISSING_ERROR
from sageport.gateway import errors
from sageport.net.awserrors import ApiError, render_error
from sageport_dev.wire import parse_error


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (errors.model_error_from_response(500, b"boom"), "ModelError", 424),
        (errors.model_timeout(), "ModelError", 424),
        (errors.model_not_ready("loading"), "ModelNotReadyException", 429),
    ],
)
def test_botocore_reads_code_and_message(error: ApiError, code: str, status: int) -> None:
    parsed = parse_error(*render_error(error, "req-1"))
    assert parsed["Error"] == {"Code": code, "Message": error.message}
    assert error.status == status


def test_model_error_carries_original_status_and_message() -> None:
    error = errors.model_error_from_response(400, b'{"detail": "bad input"}')
    status, headers, body = render_error(error, "rid")
    payload = json.loads(body)
    assert status == 424
    assert headers["x-amzn-ErrorType"] == "ModelError"
    assert headers["x-amzn-RequestId"] == "rid"
    assert payload["OriginalStatusCode"] == 400
    assert payload["OriginalMessage"] == '{"detail": "bad input"}'
    assert "client error (400)" in payload["message"]


def test_original_message_is_capped() -> None:
    error = errors.model_error_from_response(500, b"x" * (errors.ORIGINAL_MESSAGE_LIMIT * 2))
    assert len(str(error.extra["OriginalMessage"])) == errors.ORIGINAL_MESSAGE_LIMIT


@pytest.mark.parametrize(
    ("status", "header", "body", "code"),
    [
        (429, None, b"loading", "ModelNotReadyException"),
        (503, None, b'{"code": 503, "type": "ModelNotReadyError", "message": "model m is still loading"}',
         "ModelNotReadyException"),
        (500, "ModelNotReadyException", b"", "ModelNotReadyException"),
        (503, None, b"overloaded", "ModelError"),
        (503, None, b'{"type": "ModelNotReadyError"', "ModelError"),
        (400, None, b"bad", "ModelError"),
    ],
)  # fmt: skip
def test_model_answers_are_classified(status: int, header: str | None, body: bytes, code: str) -> None:
    error = errors.from_model_response(status, header, body)
    assert error.code == code
    if code == "ModelNotReadyException":
        assert error.status == 429
        assert error.message


def test_a_model_error_names_the_container_it_came_from() -> None:
    assert "from primary with" in errors.from_model_response(500, None, b"boom").message
    named = errors.from_model_response(500, None, b"boom", "featurizer")
    assert (named.code, named.status) == ("ModelError", 424)
    assert named.message == 'Received server error (500) from featurizer with message "boom".'


def test_a_missing_target_model_is_a_validation_error_not_a_model_error() -> None:
    body = json.dumps(
        {"code": 400, "type": TARGET_MODEL_MISSING_ERROR, "message": "Failed to download model data"}
    )
    error = errors.from_model_response(400, None, body.encode())
    assert (error.code, error.status, error.message) == (
        "ValidationError",
        400,
        "Failed to download model data",
    )
    other = errors.from_model_response(400, None, b'{"type": "PayloadError", "message": "bad csv"}')
    assert (other.code, other.status) == ("ModelError", 424)
