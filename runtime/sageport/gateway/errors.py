"""The SageMaker Runtime API's own errors: endpoint not found, and what a model's answer becomes.

The error type, its wire shape and the errors every AWS JSON service shares are in
:mod:`sageport.net.awserrors`.
"""

from __future__ import annotations

import json

from sageport.contract import TARGET_MODEL_MISSING_ERROR
from sageport.net.awserrors import ApiError, throttling, validation_error

# Cap on the model body echoed back in ModelError.OriginalMessage: enough to debug, and it keeps
# a misbehaving model from doubling the size of every error response.
ORIGINAL_MESSAGE_LIMIT = 64 * 1024


def payload_too_large(limit: int) -> ApiError:
    """SageMaker's answer to a request body over the limit: 413, no error type, so boto3 raises
    a ClientError whose code is "413", with this message."""
    return ApiError("413", 413, f"HTTP content length exceeded {limit} bytes.", typed=False)


def model_response_too_large(limit: int, container: str = "primary") -> ApiError:
    return ApiError(
        "ModelError",
        424,
        f"Received server error from {container} and could not load the entire response body: "
        f"the response exceeds the maximum payload size of {limit} bytes.",
    )


def gateway_throttled(limit: int) -> ApiError:
    return throttling(
        f"Rate exceeded: the gateway has {limit} requests in flight (its maxInFlight); retry the request."
    )


def endpoint_not_found(endpoint_name: str, account: str) -> ApiError:
    return validation_error(f"Endpoint {endpoint_name} of account {account} not found.")


def model_not_ready(message: str) -> ApiError:
    return ApiError("ModelNotReadyException", 429, message)


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


def from_model_response(
    status: int, error_type_header: str | None, body: bytes, container: str = "primary"
) -> ApiError:
    """The error for a non-2xx answer from a model container.

    "Still loading" becomes ModelNotReadyException (429, which boto3 retries): a container 429
    (the multi-model agent), an ``x-amzn-ErrorType: ModelNotReady…`` header, or sageport-server's
    503 with a ``ModelNotReadyError`` JSON body. Everything else is ModelError (424, not retried).
    """
    not_ready = status == 429 or (error_type_header or "").startswith("ModelNotReady")
    message = ""
    if status == 400 and TARGET_MODEL_MISSING_ERROR.encode() in body:
        document = _json_object(body)
        if document.get("type") == TARGET_MODEL_MISSING_ERROR:
            return validation_error(str(document.get("message") or "TargetModel not found."))
    if not not_ready and status == 503 and b"ModelNotReadyError" in body:
        document = _json_object(body)
        if document.get("type") == "ModelNotReadyError":
            not_ready = True
            message = str(document.get("message") or "")
    if not_ready:
        text = message or body[:1024].decode("utf-8", errors="replace")
        return model_not_ready(text or "Model is not ready yet.")
    return model_error_from_response(status, body, container)


def _json_object(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


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
