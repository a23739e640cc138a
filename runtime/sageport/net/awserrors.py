"""AWS error shapes for JSON services, built so botocore raises the matching exception class.

botocore picks the exception class from the ``x-amzn-ErrorType`` header and reads the message
from ``message``/``Message`` in a JSON body; an empty body on 4xx/5xx degrades to a generic
``ClientError``. So every error we send carries both, and nothing else decides the shape.

Here: the error type and its serialisation, and the errors every AWS JSON service shares
(validation, authentication, authorisation, availability). An API's own errors (the Runtime
API's ModelError...) are built by that API's package with :class:`ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApiError(Exception):
    """An error answered to the client in AWS's shape."""

    code: str
    status: int
    message: str
    extra: Mapping[str, object] = field(default_factory=dict)
    # False: no x-amzn-ErrorType, so botocore names the error by its HTTP status, as it does
    # for the errors AWS's front door answers before the service sees the request (413).
    typed: bool = True

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationError", 400, message)


def service_unavailable(message: str) -> ApiError:
    return ApiError("ServiceUnavailable", 503, message)


def throttling(message: str) -> ApiError:
    """400 ThrottlingException: boto3 retries it (legacy and standard modes)."""
    return ApiError("ThrottlingException", 400, message)


def internal_failure(message: str = "An internal error occurred.") -> ApiError:
    return ApiError("InternalFailure", 500, message)


def unknown_operation() -> ApiError:
    return ApiError("UnknownOperationException", 404, "The requested operation is not recognized.")


# Authentication and authorisation failures, in the shapes AWS's JSON services use.
def missing_authentication() -> ApiError:
    return ApiError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")


def invalid_signature(message: str) -> ApiError:
    return ApiError("InvalidSignatureException", 403, message)


def incomplete_signature(message: str) -> ApiError:
    return ApiError("IncompleteSignatureException", 403, message)


def unrecognized_client() -> ApiError:
    return ApiError(
        "UnrecognizedClientException", 403, "The security token included in the request is invalid."
    )


def access_denied(message: str) -> ApiError:
    return ApiError("AccessDeniedException", 403, message)


def render_error(error: ApiError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and JSON body for an error response."""
    payload: dict[str, object] = {"message": error.message, "Message": error.message}
    payload.update(error.extra)
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id}
    if error.typed:
        headers["x-amzn-ErrorType"] = error.code
    return error.status, headers, json.dumps(payload).encode()
