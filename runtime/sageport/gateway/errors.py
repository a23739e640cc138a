"""SageMaker Runtime error shapes, built so botocore raises the matching exception class.

botocore picks the exception class from the ``x-amzn-ErrorType`` header and reads the message
from ``message``/``Message`` in a JSON body; an empty body on 4xx/5xx degrades to a generic
``ClientError``. So every error we send carries both, and nothing else decides the shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

# Cap on the model body echoed back in ModelError.OriginalMessage: enough to debug, and it keeps
# a misbehaving model from doubling the size of every error response.
ORIGINAL_MESSAGE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ApiError(Exception):
    """An error answered to the client in SageMaker's shape."""

    code: str
    status: int
    message: str
    extra: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationError", 400, message)


def endpoint_not_found(endpoint_name: str, account: str) -> ApiError:
    return validation_error(f"Endpoint {endpoint_name} of account {account} not found.")


def model_not_ready(message: str) -> ApiError:
    return ApiError("ModelNotReadyException", 429, message)


def service_unavailable(message: str) -> ApiError:
    return ApiError("ServiceUnavailable", 503, message)


def internal_failure(message: str = "An internal error occurred.") -> ApiError:
    return ApiError("InternalFailure", 500, message)


def unknown_operation() -> ApiError:
    return ApiError("UnknownOperationException", 404, "The requested operation is not recognized.")


def model_error_from_response(status: int, body: bytes, container: str = "primary") -> ApiError:
    """The model answered non-2xx: 424 so boto3 does not retry, with the original status and body."""
    original = body[:ORIGINAL_MESSAGE_LIMIT].decode("utf-8", errors="replace")
    kind = "client" if 400 <= status < 500 else "server"
    message = f'Received {kind} error ({status}) from {container} with message "{original}".'
    return ApiError(
        "ModelError",
        424,
        message,
        {"OriginalStatusCode": status, "OriginalMessage": original},
    )


def from_model_response(status: int, error_type_header: str | None, body: bytes) -> ApiError:
    """The error for a non-2xx answer from a model container.

    "Still loading" becomes ModelNotReadyException (429, which boto3 retries): a container 429
    (the multi-model agent), an ``x-amzn-ErrorType: ModelNotReady…`` header, or sageport-server's
    503 with a ``ModelNotReadyError`` JSON body. Everything else is ModelError (424, not retried).
    """
    not_ready = status == 429 or (error_type_header or "").startswith("ModelNotReady")
    message = ""
    if not not_ready and status == 503 and b"ModelNotReadyError" in body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("type") == "ModelNotReadyError":
            not_ready = True
            message = str(document.get("message") or "")
    if not_ready:
        text = message or body[:1024].decode("utf-8", errors="replace")
        return model_not_ready(text or "Model is not ready yet.")
    return model_error_from_response(status, body)


def model_timeout(container: str = "primary", seconds: float = 60.0) -> ApiError:
    return ApiError(
        "ModelError",
        424,
        f"Your invocation timed out while waiting for a response from container {container} "
        f"after {seconds:g} seconds.",
    )


def model_broken_response(container: str = "primary") -> ApiError:
    return ApiError(
        "ModelError",
        424,
        f"Received server error from {container} and could not load the entire response body.",
    )


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
    headers = {
        "Content-Type": "application/json",
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": error.code,
    }
    return error.status, headers, json.dumps(payload).encode()
