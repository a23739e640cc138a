"""Parse and validate an incoming Runtime API request line and headers (pure).

Limits and patterns are the botocore service model's; boto3 checks almost none of them client
side, so the gateway is where a bad value becomes a ValidationError instead of reaching a model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

from sageport.contract import TARGET_CONTAINER_HEADER, TARGET_MODEL_HEADER
from sageport.net import awserrors

_TARGET_CONTAINER_LOWER = TARGET_CONTAINER_HEADER.lower()
_TARGET_MODEL_LOWER = TARGET_MODEL_HEADER.lower()

# InvokeEndpoint's request and response payloads: 6 MB, counted as 6 MiB (the service model's max).
MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_BYTES = MAX_BODY_BYTES
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
ENDPOINT_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_INFERENCE_COMPONENT_PATTERN = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
_SESSION_ID_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
# Any prefix is allowed before /endpoints/: boto3 keeps the path of endpoint_url as a prefix.
_ROUTE = re.compile(r"(?:/.*)?/endpoints/([^/]*)/(invocations|async-invocations|invocations-response-stream)")


class Operation(StrEnum):
    INVOKE = "invocations"
    INVOKE_ASYNC = "async-invocations"
    INVOKE_STREAM = "invocations-response-stream"


_OPERATIONS = {operation.value: operation for operation in Operation}


@dataclass(frozen=True)
class Invocation:
    operation: Operation
    endpoint_name: str
    target_variant: str | None
    target_container: str | None
    target_model: str | None
    # Headers to send to the model container, already renamed to the container contract.
    forward_headers: Mapping[str, str]


# Real-time call: header on the wire -> header for the container (same name).
_FORWARDED = (
    "Content-Type",
    "Accept",
    "X-Amzn-SageMaker-Custom-Attributes",
    TARGET_MODEL_HEADER,
    "X-Amzn-SageMaker-Target-Variant",
    TARGET_CONTAINER_HEADER,
    INFERENCE_ID_HEADER,
    "X-Amzn-SageMaker-Enable-Explanations",
    "X-Amzn-SageMaker-Inference-Component",
    "X-Amzn-SageMaker-Session-Id",
)
# The streaming call sends Accept as X-Amzn-SageMaker-Accept and has no TargetModel or
# EnableExplanations; the container still expects a plain Accept.
_FORWARDED_STREAM = tuple(
    name
    for name in _FORWARDED
    if name not in ("Accept", TARGET_MODEL_HEADER, "X-Amzn-SageMaker-Enable-Explanations")
)

# (header, min length, max length, pattern or None)
_LIMITS: tuple[tuple[str, int, int, re.Pattern[str] | None], ...] = (
    ("Content-Type", 0, 1024, None),
    ("Accept", 0, 1024, None),
    ("X-Amzn-SageMaker-Accept", 0, 1024, None),
    ("X-Amzn-SageMaker-Custom-Attributes", 0, 1024, None),
    (TARGET_MODEL_HEADER, 1, 1024, None),
    ("X-Amzn-SageMaker-Target-Variant", 0, 63, ENDPOINT_NAME_PATTERN),
    (TARGET_CONTAINER_HEADER, 0, 63, None),
    ("X-Amzn-SageMaker-Inference-Id", 1, 64, None),
    ("X-Amzn-SageMaker-Enable-Explanations", 1, 64, None),
    ("X-Amzn-SageMaker-Inference-Component", 0, 63, _INFERENCE_COMPONENT_PATTERN),
    ("X-Amzn-SageMaker-Session-Id", 0, 256, None),
)
_LIMITS_BY_NAME = {limit[0].lower(): limit for limit in _LIMITS}
# lower-cased header on the wire -> header name sent to the container
_FORWARD_AS = {name.lower(): name for name in _FORWARDED}
_FORWARD_STREAM_AS = {name.lower(): name for name in _FORWARDED_STREAM} | {
    "x-amzn-sagemaker-accept": "Accept"
}
_MEMBER_NAMES = {
    "Content-Type": "contentType",
    "Accept": "accept",
    "X-Amzn-SageMaker-Accept": "accept",
    "X-Amzn-SageMaker-Custom-Attributes": "customAttributes",
    TARGET_MODEL_HEADER: "targetModel",
    "X-Amzn-SageMaker-Target-Variant": "targetVariant",
    TARGET_CONTAINER_HEADER: "targetContainerHostname",
    "X-Amzn-SageMaker-Inference-Id": "inferenceId",
    "X-Amzn-SageMaker-Enable-Explanations": "enableExplanations",
    "X-Amzn-SageMaker-Inference-Component": "inferenceComponentName",
    "X-Amzn-SageMaker-Session-Id": "sessionId",
}


def match_route(raw_path: str) -> tuple[str, Operation] | None:
    """Split ``/…/endpoints/{name}/{operation}``; None for any other path."""
    match = _ROUTE.fullmatch(raw_path)
    if match is None:
        return None
    return unquote(match.group(1), errors="strict"), _OPERATIONS[match.group(2)]


def validate_endpoint_name(name: str) -> None:
    if len(name) > 63 or ENDPOINT_NAME_PATTERN.fullmatch(name) is None:
        raise awserrors.validation_error(
            f"1 validation error detected: Value '{name}' at 'endpointName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])* "
            "and have length less than or equal to 63"
        )


def _check_header(name: str, value: str, low: int, high: int, pattern: re.Pattern[str] | None) -> None:
    member = _MEMBER_NAMES[name]
    if not value.isascii() or not value.isprintable():
        raise awserrors.validation_error(
            f"1 validation error detected: Value at '{member}' failed to satisfy constraint: "
            "Member must contain only printable ASCII characters"
        )
    if not low <= len(value) <= high:
        raise awserrors.validation_error(
            f"1 validation error detected: Value at '{member}' failed to satisfy constraint: "
            f"Member must have length between {low} and {high}"
        )
    if pattern is not None and value and pattern.fullmatch(value) is None:
        raise awserrors.validation_error(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern.pattern}"
        )


def parse_invocation(raw_path: str, headers: Mapping[str, str]) -> Invocation:
    """``headers`` maps lower-cased header names to the (first) value received."""
    try:
        matched = match_route(raw_path)
    except UnicodeDecodeError:
        raise awserrors.validation_error("Endpoint name is not valid UTF-8.") from None
    if matched is None:
        raise awserrors.unknown_operation()
    endpoint_name, operation = matched
    validate_endpoint_name(endpoint_name)
    forwarding = _FORWARD_STREAM_AS if operation is Operation.INVOKE_STREAM else _FORWARD_AS
    forwarded: dict[str, str] = {}
    # One pass over what the client sent (usually fewer headers than we have limits for).
    for lower, value in headers.items():
        limit = _LIMITS_BY_NAME.get(lower)
        if limit is not None:
            _check_header(limit[0], value, limit[1], limit[2], limit[3])
        forward_as = forwarding.get(lower)
        if forward_as is not None and forward_as not in forwarded:
            forwarded[forward_as] = value
    if operation is Operation.INVOKE_STREAM and headers.get("x-amzn-sagemaker-session-id") == "NEW_SESSION":
        raise awserrors.validation_error(
            "NEW_SESSION is not supported by InvokeEndpointWithResponseStream; pass an existing session id."
        )
    session = headers.get("x-amzn-sagemaker-session-id")
    if session and session != "NEW_SESSION" and _SESSION_ID_PATTERN.fullmatch(session) is None:
        raise awserrors.validation_error(
            "1 validation error detected: Value at 'sessionId' failed to satisfy constraint: "
            "Member must be NEW_SESSION or match ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
        )
    return Invocation(
        operation=operation,
        endpoint_name=endpoint_name,
        target_variant=headers.get("x-amzn-sagemaker-target-variant") or None,
        target_container=headers.get(_TARGET_CONTAINER_LOWER) or None,
        target_model=headers.get(_TARGET_MODEL_LOWER) if operation is not Operation.INVOKE_STREAM else None,
        forward_headers=forwarded,
    )
