"""SigV4 against a key store of any key type; a verified key becomes the caller's principal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from sageport.net.auth import KeyStore, RequestParts, SigV4Authenticator
from sageport.net.awserrors import ApiError
from sageport_dev.wire import sigv4_signed

NOW = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
URL = "http://gw.example/endpoints/ep/invocations"
BODY = b'{"x": 1}'


@dataclass(frozen=True)
class Key:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    user: str = "someone"


def signed_parts(key_id: str, secret: str) -> RequestParts:
    request = sigv4_signed(URL, BODY, {}, key_id, secret, NOW, "sagemaker")
    headers = {"host": ["gw.example"]}
    headers.update({name.lower(): [value] for name, value in request.headers.items()})
    return RequestParts("POST", "/endpoints/ep/invocations", "", headers, BODY)


async def bearer(token: str) -> str:
    return f"token:{token}"


def authenticator(keys: KeyStore[Key]) -> SigV4Authenticator[Key, str]:
    return SigV4Authenticator(keys, lambda key: f"user:{key.user}", bearer, clock=lambda: NOW)


async def test_a_verified_key_becomes_the_callers_principal() -> None:
    keys = KeyStore([Key("AK1", "s1", user="alice"), Key("AK2", "s2", user="bob")])
    assert await authenticator(keys).authenticate(signed_parts("AK2", "s2")) == "user:bob"
    assert keys.secret("AK1") == "s1"
    assert "s1" not in repr(keys.get("AK1"))


async def test_bearer_tokens_go_to_the_callback() -> None:
    parts = RequestParts("POST", "/", "", {"authorization": ["Bearer abc"]}, b"")
    assert await authenticator(KeyStore()).authenticate(parts) == "token:abc"


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        ("AK1", "wrong", "InvalidSignatureException"),
        ("UNKNOWN", "s1", "UnrecognizedClientException"),
    ],
)
async def test_refusals_are_aws_errors(key_id: str, secret: str, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        await authenticator(KeyStore([Key("AK1", "s1")])).authenticate(signed_parts(key_id, secret))
    assert (refused.value.code, refused.value.status) == (code, 403)


async def test_keys_are_replaced_wholesale() -> None:
    keys = KeyStore([Key("AK1", "s1")])
    keys.replace([Key("AK2", "s2")])
    assert (len(keys), keys.get("AK1"), keys.secret("AK2")) == (1, None, "s2")
    with pytest.raises(ApiError, match="MissingAuthenticationToken"):
        await authenticator(keys).authenticate(RequestParts("POST", "/", "", {}, b""))
