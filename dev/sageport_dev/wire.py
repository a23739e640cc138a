"""boto3's sagemaker-runtime client as tests and benchmarks make it, and the exact bytes it
would send for a call, captured instead of sent.

For the bytes, boto3 builds and signs the request (serialiser, SigV4 signer, its own headers);
a handler on ``before-send`` takes it just before it would go on the wire. For replaying real
boto3 requests without boto3's CPU cost (benchmarks) and for tampering with signed requests byte
by byte (tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

REGION = "us-east-1"


def runtime_client(
    url: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    attempts: int | None = None,
    read_timeout: float | None = None,
    pool: int | None = None,
) -> Any:
    """A ``sagemaker-runtime`` client for ``url`` signing with the key. ``attempts`` caps the
    tries (1: no retry), ``pool`` the connections; None leaves botocore's default."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    options: dict[str, Any] = {}
    if attempts is not None:
        options["retries"] = {"total_max_attempts": attempts, "mode": "standard"}
    if read_timeout is not None:
        options["read_timeout"] = read_timeout
    if pool is not None:
        options["max_pool_connections"] = pool
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(**options) if options else None,
    )


def control_client(
    url: str, access_key_id: str, secret_access_key: str, *, attempts: int | None = None
) -> Any:
    """boto3's ``sagemaker`` (control-plane) client for ``url`` signing with the key."""
    import boto3
    from botocore.config import Config

    retries = {"retries": {"total_max_attempts": attempts, "mode": "standard"}} if attempts else {}
    return boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(**retries) if retries else None,
    )


class _CapturedRequestError(Exception):
    def __init__(self, request: Any) -> None:
        self.request = request


def invoke_endpoint_bytes(client: Any, count: int = 1, path: str | None = None, **call: Any) -> list[bytes]:
    """``count`` invoke_endpoint requests (each with its own invocation id), as HTTP/1.1 bytes.

    ``call`` are invoke_endpoint's arguments; ``path`` replaces the request path and leaves
    everything else as boto3 made it (the signature then no longer matches: for servers that do
    not check it). ``client`` must not retry (``total_max_attempts=1``).
    """

    def capture(request: Any, **_: Any) -> None:
        raise _CapturedRequestError(request)

    event = "before-send.sagemaker-runtime.InvokeEndpoint"
    client.meta.events.register(event, capture)
    try:
        captured = []
        for _ in range(count):
            try:
                client.invoke_endpoint(**call)
            except _CapturedRequestError as done:
                request = done.request
            else:
                raise RuntimeError("boto3 sent the request instead of handing it over")
            split = urlsplit(request.url)
            # http.client adds these two when botocore sends.
            lines = [
                f"POST {path or split.path} HTTP/1.1",
                f"Host: {split.netloc}",
                "Accept-Encoding: identity",
            ]
            lines += [
                f"{name}: {value.decode() if isinstance(value, bytes) else value}"
                for name, value in request.headers.items()
            ]
            captured.append(("\r\n".join(lines) + "\r\n\r\n").encode() + request.body)
        return captured
    finally:
        client.meta.events.unregister(event, capture)


def parse_error(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """What boto3's sagemaker-runtime client reads from an error response (InvokeEndpoint's
    parser): ``{"Error": {"Code": ..., "Message": ...}, ...}``."""
    import botocore.session  # type: ignore[import-untyped]
    from botocore.parsers import RestJSONParser  # type: ignore[import-untyped]

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpoint")
    return RestJSONParser().parse(  # type: ignore[no-any-return]
        {"status_code": status, "headers": {k.lower(): v for k, v in headers.items()}, "body": body},
        operation.output_shape,
    )


def sigv4_signed(
    url: str, body: bytes, headers: Mapping[str, str], key_id: str, secret: str, now: datetime, service: str
) -> Any:
    """botocore's AWSRequest for a POST to ``url``, SigV4-signed by botocore itself at ``now``."""
    import botocore.auth  # type: ignore[import-untyped]
    import botocore.awsrequest  # type: ignore[import-untyped]
    import botocore.credentials  # type: ignore[import-untyped]

    request = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret), service, REGION)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: now.replace(tzinfo=None)
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    return request
