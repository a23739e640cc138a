"""SageMaker's control-plane errors, as the awsJson 1.1 protocol carries them.

botocore's JSON parser takes the error code from ``__type`` in the body (not from the
``x-amzn-ErrorType`` header the REST protocols use) and the message from ``message``; both are
sent, so the modelled classes (``client.exceptions.ResourceNotFound``...) are raised and the
waiters' ``ValidationException`` matchers fire.
"""

from __future__ import annotations

import json

from sageport.controlapi.names import Account, Kind
from sageport.net.awserrors import ApiError

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def validation(message: str) -> ApiError:
    return ApiError("ValidationException", 400, message)


def not_found(kind: Kind, account: Account, name: str) -> ApiError:
    """``Could not find endpoint "arn:aws:sagemaker:...:endpoint/name".`` (SageMaker's text)."""
    return validation(f'Could not find {kind.noun} "{account.arn(kind, name)}".')


def already_exists(kind: Kind, account: Account, name: str) -> ApiError:
    return validation(f'Cannot create already existing {kind.noun} "{account.arn(kind, name)}".')


def access_denied(user: str | None, operation: str, resource: str, reason: str) -> ApiError:
    """AWS's text ("User: ... is not authorized to perform: sagemaker:X on resource: arn because
    ..."), the user being the Kubernetes identity the call acted as and the reason RBAC's."""
    who = user or "the gateway's ServiceAccount"
    return ApiError(
        "AccessDeniedException",
        400,
        f"User: {who} is not authorized to perform: sagemaker:{operation} on resource: {resource} "
        f"because {reason}",
    )


def job_not_found(name: str) -> ApiError:
    """A missing job on Describe: ValidationException, which the transform_job_completed_or_stopped
    waiter takes as failure, with the text SageMaker uses for its jobs."""
    return validation(f"Could not find requested job with name {name}")


def job_in_use(arn: str) -> ApiError:
    """A duplicate job name (CreateTransformJob models ResourceInUse; SageMaker's jobs word it so)."""
    return resource_in_use(
        "Transform job names must be unique within an AWS account and region, and a transform job "
        f"with this name already exists ({arn})"
    )


def resource_not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFound", 400, message)


def resource_in_use(message: str) -> ApiError:
    return ApiError("ResourceInUse", 400, message)


def resource_limit_exceeded(message: str) -> ApiError:
    return ApiError("ResourceLimitExceeded", 400, message)


def unknown_operation(target: str) -> ApiError:
    return ApiError("UnknownOperationException", 400, f"The requested operation {target} is not recognized.")


def serialization(message: str) -> ApiError:
    return ApiError("SerializationException", 400, message)


def render(error: ApiError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an error in the awsJson 1.1 shape."""
    payload: dict[str, object] = {"__type": error.code, "message": error.message}
    payload.update(error.extra)
    headers = {
        "Content-Type": JSON_CONTENT_TYPE,
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": error.code,
    }
    return error.status, headers, json.dumps(payload).encode()
