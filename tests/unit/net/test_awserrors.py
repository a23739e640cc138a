from __future__ import annotations

import pytest

from sageport.net import awserrors
from sageport_dev.wire import parse_error


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (awserrors.validation_error("bad"), "ValidationError", 400),
        (awserrors.service_unavailable("none"), "ServiceUnavailable", 503),
        (awserrors.internal_failure(), "InternalFailure", 500),
        (awserrors.invalid_signature("sig"), "InvalidSignatureException", 403),
    ],
)
def test_botocore_reads_code_and_message(error: awserrors.ApiError, code: str, status: int) -> None:
    parsed = parse_error(*awserrors.render_error(error, "req-1"))
    assert parsed["Error"] == {"Code": code, "Message": error.message}
    assert error.status == status
