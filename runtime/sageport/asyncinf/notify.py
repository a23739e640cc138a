"""Notifications of finished calls: SageMaker's SNS message body, POSTed to a topic URL.

A topic here is an ``http(s)://`` URL (SageMaker's is an SNS topic ARN): the agent POSTs the
JSON body SageMaker publishes, retrying with exponential backoff, before it acknowledges the
call, so a webhook that fails a few times still gets exactly one notification per call.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
from typing import Any

import aiohttp

from sageport.asyncinf.outcome import Outcome
from sageport.asyncinf.request import AsyncRequest

log = logging.getLogger("sageport.asyncinf")

# IncludeInferenceResponseIn: answers up to 128 KB travel in the notification, larger ones only
# in S3 (SageMaker's limit).
RESPONSE_IN_NOTIFICATION = 128 * 1024


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def notification(
    *,
    endpoint: str,
    request: AsyncRequest,
    result: Outcome,
    now: float,
    region: str = "local",
    body: bytes | None = None,
) -> dict[str, Any]:
    """SageMaker's InferenceResult message (eventVersion 1.0) for one finished call; with
    ``body`` (IncludeInferenceResponseIn), the result object's content in
    ``responseParameters.responseBody``: UTF-8 text as is, anything else base64, and nothing
    above RESPONSE_IN_NOTIFICATION bytes."""
    parameters: dict[str, Any] = {"endpointName": endpoint}
    if request.content_type:
        parameters["contentType"] = request.content_type
    if request.input_location:
        parameters["inputLocation"] = request.input_location
    response: dict[str, Any] = {}
    if result.success:
        response["outputLocation"] = request.output_location
        if result.content_type:
            response["contentType"] = result.content_type
    elif request.failure_location:
        response["failureLocation"] = request.failure_location
    if body is not None and len(body) <= RESPONSE_IN_NOTIFICATION:
        try:
            response["responseBody"] = {"content": body.decode("utf-8"), "encoding": "UTF-8"}
        except UnicodeDecodeError:
            response["responseBody"] = {"content": base64.b64encode(body).decode(), "encoding": "BASE64"}
    message: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _iso(now),
        "receivedTime": _iso(request.received_ms / 1000),
        "invocationStatus": "Completed" if result.success else "Failed",
        "requestParameters": parameters,
        "responseParameters": response,
        "inferenceId": request.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if not result.success:
        message["failureReason"] = result.reason
    return message


class Notifier:
    """POSTs notifications; ``attempts`` tries, ``first_delay`` doubling between them."""

    def __init__(self, session: aiohttp.ClientSession, attempts: int = 6, first_delay: float = 1.0) -> None:
        self.session = session
        self.attempts = attempts
        self.first_delay = first_delay

    async def send(self, url: str, inference_id: str, message: dict[str, Any]) -> bool:
        body = json.dumps(message).encode()
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.session.post(
                    url, data=body, headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as answer:  # fmt: skip
                    await answer.read()
                    if answer.status < 300:
                        return True
                    problem = f"HTTP {answer.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                problem = str(error) or type(error).__name__
            log.warning(
                "notification of %s to %s failed (attempt %d): %s", inference_id, url, attempt, problem
            )
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        return False
