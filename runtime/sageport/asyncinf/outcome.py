"""What becomes of a queued call (pure): the agent's decisions, apart from its I/O.

A call goes: queued -> (already answered | expired | run) -> input read (or missing) -> model
called -> result written (output or failure object) -> notified -> acknowledged. Each arrow that
decides something is a function here, so the unit tests cover every branch without Redis or S3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, unquote

from sageport.asyncinf.request import AsyncRequest

# The share of a model's error body echoed into a notification's failureReason (the whole body
# goes to the failure object).
REASON_LIMIT = 1024
# A failure object keeps its notification's failureReason in this user metadata (S3's
# x-amz-meta-*), so a call answered by an agent that died before notifying is notified from it.
REASON_METADATA = "failure-reason"
_METADATA_LIMIT = 1800  # S3 allows 2 KB of user metadata in all


class Triage(Enum):
    ANSWERED = "answered"  # a result object exists already: a redelivery; acknowledge only
    EXPIRED = "expired"  # waited in the queue beyond RequestTTLSeconds
    RUN = "run"


def triage(request: AsyncRequest, now_ms: int, output_exists: bool, failure_exists: bool) -> Triage:
    """Writes are keyed by InferenceId, so a result already there means this call (or a retry of
    it) was answered: running it again could only leave a second, different result."""
    if output_exists or failure_exists:
        return Triage.ANSWERED
    if now_ms - request.received_ms > request.ttl_seconds * 1000:
        return Triage.EXPIRED
    return Triage.RUN


@dataclass(frozen=True)
class Outcome:
    """The end of a call: success (the model's body goes to OutputLocation with its content
    type) or failure (``failure_body`` goes to FailureLocation; ``reason`` to the notification)."""

    success: bool
    reason: str | None = None
    # For failures the agent writes itself (expiry, timeout, missing input); None: the model's
    # own error body is written.
    failure_body: bytes | None = None
    content_type: str | None = None  # the model's, for the output object and the notification


def expired(request: AsyncRequest, now_ms: int) -> Outcome:
    waited = (now_ms - request.received_ms) / 1000
    reason = (
        f"ClientError: The request expired: it waited {waited:.0f} seconds in the queue, beyond its "
        f"RequestTTLSeconds ({request.ttl_seconds})."
    )
    return Outcome(False, reason, reason.encode())


def input_missing(location: str, detail: str) -> Outcome:
    reason = f"ClientError: The input object {location} could not be read: {detail}"
    return Outcome(False, reason, reason.encode())


def timed_out(request: AsyncRequest) -> Outcome:
    reason = (
        f"ClientError: The model did not answer within InvocationTimeoutSeconds ({request.timeout_seconds})."
    )
    return Outcome(False, reason, reason.encode())


def model_unreachable(detail: str) -> Outcome:
    reason = f"ServerError: The model could not be reached: {detail}"
    return Outcome(False, reason, reason.encode())


def from_model(status: int, body_head: bytes) -> Outcome:
    """The model answered: 2xx is a result; anything else a failure whose object holds the
    model's body, as SageMaker uploads "failure model responses" to S3."""
    if 200 <= status < 300:
        return Outcome(True)
    kind = "client" if 400 <= status < 500 else "server"
    message = body_head[:REASON_LIMIT].decode("utf-8", errors="replace")
    return Outcome(
        False, f'ClientError: Received {kind} error ({status}) from model with message "{message}".'
    )


def result_metadata(result: Outcome) -> dict[str, str]:
    """User metadata written with the result object: a failure's reason, percent-encoded (S3
    metadata is ASCII)."""
    if result.success or not result.reason:
        return {}
    return {REASON_METADATA: quote(result.reason, safe=" ()'\",.:;=/-_")[:_METADATA_LIMIT]}


def recorded(success: bool, headers: Mapping[str, str]) -> Outcome:
    """The outcome a result object already in S3 stands for (its HEAD's headers, lower-cased
    names): the call was answered by an agent that may have died before notifying."""
    if success:
        return Outcome(True, content_type=headers.get("content-type"))
    reason = headers.get(f"x-amz-meta-{REASON_METADATA}")
    return Outcome(
        False, unquote(reason) if reason else "ServerError: The call failed; see its failure object."
    )
