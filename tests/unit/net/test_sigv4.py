from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from sageport.net import sigv4
from sageport.net.awserrors import ApiError
from sageport_dev.wire import sigv4_signed

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG"
NOW = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)


def sign(url: str, body: bytes, headers: dict[str, str], secret: str = SECRET, service: str = "sagemaker"):  # type: ignore[no-untyped-def]
    return sigv4_signed(url, body, headers, KEY_ID, secret, NOW, service)


def received(request, url: str, body: bytes) -> tuple[sigv4.SignedRequest, str]:  # type: ignore[no-untyped-def]
    parts = urlsplit(url)
    headers: dict[str, list[str]] = {"host": [parts.netloc]}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    import hashlib

    signed = sigv4.SignedRequest(
        method="POST",
        raw_path=parts.path,
        raw_query=parts.query,
        headers=headers,
        payload_hash=hashlib.sha256(body).hexdigest(),
    )
    return signed, request.headers["Authorization"]


def lookup(key: str) -> str | None:
    return SECRET if key == KEY_ID else None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/endpoints/my-endpoint/invocations",
        "http://gw.example/prefix/endpoints/ep/invocations-response-stream",
        "http://gw/endpoints/with%20space/invocations",
        "http://gw/endpoints/ep/invocations?b=2&a=1&a=0",
        "http://gw/a/./b/../endpoints/ep//invocations",
    ],
)
def test_botocore_signatures_verify(url: str) -> None:
    body = b'{"instances": [1, 2]}'
    headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "  a   b  "}
    signed, authorization = received(sign(url, body, headers), url, body)
    assert sigv4.verify(signed, authorization, lookup, NOW) == KEY_ID


def test_wrong_secret_is_rejected() -> None:
    url = "http://gw/endpoints/ep/invocations"
    signed, authorization = received(sign(url, b"x", {}, secret="other"), url, b"x")
    with pytest.raises(ApiError) as caught:
        sigv4.verify(signed, authorization, lookup, NOW)
    assert caught.value.code == "InvalidSignatureException"
    assert caught.value.status == 403
    assert "other" not in caught.value.message


def test_tampered_body_is_rejected() -> None:
    url = "http://gw/endpoints/ep/invocations"
    signed, authorization = received(sign(url, b"x", {}), url, b"y")
    with pytest.raises(ApiError, match="does not match"):
        sigv4.verify(signed, authorization, lookup, NOW)


def test_unknown_key_is_unrecognized_client() -> None:
    url = "http://gw/endpoints/ep/invocations"
    signed, authorization = received(sign(url, b"x", {}), url, b"x")
    with pytest.raises(ApiError) as caught:
        sigv4.verify(signed, authorization, lambda key: None, NOW)
    assert caught.value.code == "UnrecognizedClientException"


@pytest.mark.parametrize("skew", [timedelta(minutes=16), -timedelta(minutes=16)])
def test_skew_over_15_minutes_is_expired(skew: timedelta) -> None:
    url = "http://gw/endpoints/ep/invocations"
    signed, authorization = received(sign(url, b"x", {}), url, b"x")
    with pytest.raises(ApiError, match="expired"):
        sigv4.verify(signed, authorization, lookup, NOW + skew)
    assert sigv4.verify(signed, authorization, lookup, NOW + skew / 16 * 14) == KEY_ID


def test_other_service_scope_is_rejected() -> None:
    url = "http://gw/endpoints/ep/invocations"
    signed, authorization = received(sign(url, b"x", {}, service="s3"), url, b"x")
    with pytest.raises(ApiError, match="service"):
        sigv4.verify(signed, authorization, lookup, NOW)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/20261122/us-east-1/sagemaker/aws4_request",
        "AWS4-HMAC-SHA256 garbage",
        "Basic abc",
    ],
)
def test_malformed_authorization_is_403(authorization: str) -> None:
    signed = sigv4.SignedRequest("POST", "/", "", {"host": ["gw"], "x-amz-date": ["20261122T010203Z"]}, "0")
    with pytest.raises(ApiError) as caught:
        sigv4.verify(signed, authorization, lookup, NOW)
    assert caught.value.status == 403


def test_canonical_path_matches_botocore() -> None:
    assert sigv4.canonical_path("/endpoints/a%20b/invocations") == "/endpoints/a%2520b/invocations"
    assert sigv4.canonical_path("") == "/"
    assert sigv4.canonical_path("/a/../b/./c//") == "/b/c/"
