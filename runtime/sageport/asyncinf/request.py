"""InvokeEndpointAsync requests (pure): validation, the record queued in Redis, result naming.

The gateway validates a call with :func:`parse_async_request` (the botocore service model's
limits, SageMaker's ValidationError wording), names where its result will land with
:func:`result_locations`, and queues :meth:`AsyncRequest.to_fields`; the agent reads the record
back with :meth:`AsyncRequest.from_fields`. Both sides use this one module, so they cannot
disagree on a field.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sageport import contract
from sageport.net import awserrors

MAX_INLINE_BODY = 128_000  # bytes: the Body member's limit; larger inputs go through S3
TTL_RANGE = (60, contract.ASYNC_DEFAULT_TTL)  # the default is the longest
TIMEOUT_RANGE = (1, 3600)

_INFERENCE_ID = re.compile(r"\S[\x20-\x7e]*")
_INPUT_LOCATION = re.compile(r"(https|s3)://([^/]+)/?(.*)")
_EXTENSION = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
_FILENAME = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*")

# (header, member, min length, max length, pattern)
_TEXT_HEADERS: tuple[tuple[str, str, int, int, re.Pattern[str] | None], ...] = (
    ("x-amzn-sagemaker-content-type", "contentType", 0, 1024, None),
    ("x-amzn-sagemaker-accept", "accept", 0, 1024, None),
    ("x-amzn-sagemaker-custom-attributes", "customAttributes", 0, 1024, None),
    ("x-amzn-sagemaker-inference-id", "inferenceId", 1, 64, _INFERENCE_ID),
    ("x-amzn-sagemaker-inputlocation", "inputLocation", 1, 1024, _INPUT_LOCATION),
    ("x-amzn-sagemaker-s3outputpathextension", "s3OutputPathExtension", 1, 512, _EXTENSION),
    ("x-amzn-sagemaker-filename", "filename", 1, 32, _FILENAME),
)
_INT_HEADERS = (
    ("x-amzn-sagemaker-requestttlseconds", "requestTTLSeconds", TTL_RANGE),
    ("x-amzn-sagemaker-invocationtimeoutseconds", "invocationTimeoutSeconds", TIMEOUT_RANGE),
)


def _invalid(member: str, value: str | None, constraint: str) -> awserrors.ApiError:
    shown = f"Value '{value}' at" if value is not None else "Value at"
    return awserrors.validation_error(
        f"1 validation error detected: {shown} '{member}' failed to satisfy constraint: {constraint}"
    )


@dataclass(frozen=True)
class AsyncRequest:
    """One queued call: what the agent needs to run it and to write its result."""

    inference_id: str
    output_location: str  # the full s3:// URI of the result object
    failure_location: str | None  # the full s3:// URI of the failure object (None: no failure path)
    received_ms: int  # when the gateway accepted it (epoch milliseconds)
    ttl_seconds: int = contract.ASYNC_DEFAULT_TTL
    timeout_seconds: int = contract.ASYNC_DEFAULT_TIMEOUT
    input_location: str | None = None  # s3://bucket/key, or ...
    body: bytes | None = None  # ... the inline Body (at most MAX_INLINE_BODY bytes)
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None

    def to_fields(self) -> dict[str, str | bytes]:
        fields: dict[str, str | bytes] = {
            contract.ASYNC_ID_FIELD: self.inference_id,
            contract.ASYNC_OUTPUT_FIELD: self.output_location,
            contract.ASYNC_RECEIVED_FIELD: str(self.received_ms),
            contract.ASYNC_TTL_FIELD: str(self.ttl_seconds),
            contract.ASYNC_TIMEOUT_FIELD: str(self.timeout_seconds),
        }
        optional: tuple[tuple[str, str | bytes | None], ...] = (
            (contract.ASYNC_FAILURE_FIELD, self.failure_location),
            (contract.ASYNC_INPUT_FIELD, self.input_location),
            (contract.ASYNC_BODY_FIELD, self.body),
            (contract.ASYNC_CONTENT_TYPE_FIELD, self.content_type),
            (contract.ASYNC_ACCEPT_FIELD, self.accept),
            (contract.ASYNC_CUSTOM_ATTRIBUTES_FIELD, self.custom_attributes),
        )
        fields.update({name: value for name, value in optional if value is not None})
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> AsyncRequest:
        """The record as redis-py returns it (bytes keys and values); ValueError when malformed."""

        def text(name: str) -> str | None:
            value = fields.get(name.encode())
            return value.decode() if value is not None else None

        def required(name: str) -> str:
            value = text(name)
            if value is None:
                raise ValueError(f"the queued record has no {name}")
            return value

        return cls(
            inference_id=required(contract.ASYNC_ID_FIELD),
            output_location=required(contract.ASYNC_OUTPUT_FIELD),
            failure_location=text(contract.ASYNC_FAILURE_FIELD),
            received_ms=int(required(contract.ASYNC_RECEIVED_FIELD)),
            ttl_seconds=int(required(contract.ASYNC_TTL_FIELD)),
            timeout_seconds=int(required(contract.ASYNC_TIMEOUT_FIELD)),
            input_location=text(contract.ASYNC_INPUT_FIELD),
            body=fields.get(contract.ASYNC_BODY_FIELD.encode()),
            content_type=text(contract.ASYNC_CONTENT_TYPE_FIELD),
            accept=text(contract.ASYNC_ACCEPT_FIELD),
            custom_attributes=text(contract.ASYNC_CUSTOM_ATTRIBUTES_FIELD),
        )


@dataclass(frozen=True)
class AsyncCall:
    """A validated InvokeEndpointAsync call, before it is named and queued."""

    inference_id: str
    input_location: str | None
    body: bytes | None
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    ttl_seconds: int
    timeout_seconds: int
    output_extension: str | None
    filename: str | None


def parse_async_request(headers: Mapping[str, str], body: bytes, new_id: str | None = None) -> AsyncCall:
    """Validate the call's headers (lower-cased names) and body. A missing InferenceId becomes
    ``new_id`` or a fresh UUID, as SageMaker generates one."""
    for header, member, low, high, pattern in _TEXT_HEADERS:
        value = headers.get(header)
        if value is None:
            continue
        if not value.isascii():
            raise _invalid(member, None, "Member must contain only ASCII characters")
        if not low <= len(value) <= high:
            raise _invalid(member, None, f"Member must have length between {low} and {high}")
        if pattern is not None and pattern.fullmatch(value) is None:
            raise _invalid(
                member, value, f"Member must satisfy regular expression pattern: {pattern.pattern}"
            )
    numbers: dict[str, int] = {}
    for header, member, (low, high) in _INT_HEADERS:
        value = headers.get(header)
        if value is None:
            continue
        try:
            number = int(value)
        except ValueError:
            raise _invalid(member, value, "Member must be an integer") from None
        if number < low:
            raise _invalid(member, value, f"Member must have value greater than or equal to {low}")
        if number > high:
            raise _invalid(member, value, f"Member must have value less than or equal to {high}")
        numbers[member] = number
    location = headers.get("x-amzn-sagemaker-inputlocation")
    if location is not None and body:
        raise awserrors.validation_error(
            "Body and InputLocation are mutually exclusive: send the payload inline (Body, at most "
            f"{MAX_INLINE_BODY} bytes) or in S3 (InputLocation), not both."
        )
    if location is None and not body:
        raise awserrors.validation_error(
            "Either Body or InputLocation must be provided: InputLocation is the s3:// URI of the input "
            f"object; Body is the payload itself, at most {MAX_INLINE_BODY} bytes."
        )
    if location is not None and not location.startswith("s3://"):
        raise _invalid("inputLocation", location, "Member must be an s3:// URI (s3://bucket/key)")
    if location is not None and not location.removeprefix("s3://").partition("/")[2]:
        raise _invalid("inputLocation", location, "Member must name an object: s3://bucket/key")
    if len(body) > MAX_INLINE_BODY:
        raise _invalid(
            "body", None, f"Member must have length less than or equal to {MAX_INLINE_BODY}; "
            "put larger inputs in S3 and pass InputLocation"
        )  # fmt: skip
    return AsyncCall(
        inference_id=headers.get("x-amzn-sagemaker-inference-id") or new_id or str(uuid.uuid4()),
        input_location=location,
        body=body or None,
        content_type=headers.get("x-amzn-sagemaker-content-type"),
        accept=headers.get("x-amzn-sagemaker-accept"),
        custom_attributes=headers.get("x-amzn-sagemaker-custom-attributes"),
        ttl_seconds=numbers.get("requestTTLSeconds", contract.ASYNC_DEFAULT_TTL),
        timeout_seconds=numbers.get("invocationTimeoutSeconds", contract.ASYNC_DEFAULT_TIMEOUT),
        output_extension=headers.get("x-amzn-sagemaker-s3outputpathextension"),
        filename=headers.get("x-amzn-sagemaker-filename"),
    )


def _join(path: str, *parts: str | None) -> str:
    return "/".join([path.rstrip("/"), *(part.strip("/") for part in parts if part)])


def result_locations(call: AsyncCall, output_path: str, failure_path: str | None) -> tuple[str, str | None]:
    """SageMaker's OutputLocation (``<S3OutputPath>/<InferenceId>.out``) and FailureLocation
    (``<S3FailurePath>/<InferenceId>-error.out``), a trailing slash on a path or not; with
    S3OutputPathExtension and Filename, ``<S3OutputPath>/<extension>/<Filename>``."""
    output = _join(output_path, call.output_extension, call.filename or f"{call.inference_id}.out")
    failure = None
    if failure_path:
        failure = _join(failure_path, call.output_extension, f"{call.inference_id}-error.out")
    return output, failure


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ValueError(f"{uri} names no object (s3://bucket/key)")
    return bucket, key
