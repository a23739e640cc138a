"""SigV4 authentication against a store of access keys, and optionally bearer tokens.

What a key grants is the caller's business: the store holds any key type with an id and a
secret, and a verified key becomes the caller's principal type through ``principal``. The
gateway maps a key to what it may invoke; a control-plane API would map it to a Kubernetes
identity. Secrets never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from sageport.net import awserrors, sigv4

# Bodies above this are hashed in a worker thread so one large request does not stall the loop.
_HASH_OFF_LOOP_BYTES = 256 * 1024


class SecretKey(Protocol):
    """What a key store needs of a key (a frozen dataclass with these fields fits)."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...


KeyT = TypeVar("KeyT", bound=SecretKey)
PrincipalT = TypeVar("PrincipalT")


@dataclass(frozen=True)
class RequestParts:
    """What authentication needs from a request: no server types, so it stays testable."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, Sequence[str]]  # lower-cased names
    body: bytes


class KeyStore(Generic[KeyT]):
    """Access keys by id; replaced wholesale when their source (a file, Secrets) changes."""

    def __init__(self, keys: Iterable[KeyT] = ()) -> None:
        self._keys: dict[str, KeyT] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[KeyT]) -> None:
        self._keys = {key.access_key_id: key for key in keys}

    def get(self, access_key_id: str) -> KeyT | None:
        return self._keys.get(access_key_id)

    def secret(self, access_key_id: str) -> str | None:
        key = self._keys.get(access_key_id)
        return key.secret_access_key if key is not None else None

    def __len__(self) -> int:
        return len(self._keys)


async def payload_hash(body: bytes) -> str:
    if len(body) > _HASH_OFF_LOOP_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    return hashlib.sha256(body).hexdigest()


class SigV4Authenticator(Generic[KeyT, PrincipalT]):
    """SigV4 against a KeyStore; optionally bearer tokens through ``bearer_check``.

    Raises :class:`~sageport.net.awserrors.ApiError` (403, or what ``bearer_check`` raises).
    """

    def __init__(
        self,
        keys: KeyStore[KeyT],
        principal: Callable[[KeyT], PrincipalT],
        bearer_check: Callable[[str], Awaitable[PrincipalT]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._keys = keys
        self._principal = principal
        self._bearer_check = bearer_check
        self._clock = clock

    async def authenticate(self, request: RequestParts) -> PrincipalT:
        values = request.headers.get("authorization")
        if not values:
            raise awserrors.missing_authentication()
        authorization = values[0]
        if authorization[:7].lower() == "bearer ":
            if self._bearer_check is None:
                raise awserrors.incomplete_signature("Bearer tokens are not accepted by this server.")
            token = authorization[7:].strip()
            if not token:
                raise awserrors.missing_authentication()
            return await self._bearer_check(token)
        declared = sigv4.declared_payload_hash(request.headers)
        if declared == sigv4.UNSIGNED_PAYLOAD:
            digest = declared
        else:
            digest = await payload_hash(request.body)
            if declared is not None and declared != digest:
                raise awserrors.invalid_signature(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                )
        signed = sigv4.SignedRequest(
            method=request.method,
            raw_path=request.raw_path,
            raw_query=request.raw_query,
            headers=request.headers,
            payload_hash=digest,
        )
        access_key_id = sigv4.verify(signed, authorization, self._keys.secret, self._clock())
        key = self._keys.get(access_key_id)
        if key is None:  # removed between the two reads
            raise awserrors.unrecognized_client()
        return self._principal(key)
