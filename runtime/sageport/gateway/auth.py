"""Who may invoke what: SigV4 access keys (from a keys file or Kubernetes Secrets) and, in
Kubernetes mode, bearer tokens (checked by a callback the Kubernetes shell provides).

Secrets never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sageport.gateway import errors, sigv4

# Bodies above this are hashed in a worker thread so one large request does not stall the loop.
_HASH_OFF_LOOP_BYTES = 256 * 1024


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    # None means every endpoint / every namespace.
    endpoints: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None

    def allows(self, endpoint_name: str, namespace: str | None) -> bool:
        if self.endpoints is not None and endpoint_name not in self.endpoints:
            return False
        return self.namespaces is None or namespace is None or namespace in self.namespaces


class Principal(Protocol):
    @property
    def name(self) -> str: ...

    async def may_invoke(self, endpoint_name: str, namespace: str | None) -> bool: ...


@dataclass(frozen=True)
class KeyPrincipal:
    key: AccessKey

    @property
    def name(self) -> str:
        return f"key:{self.key.access_key_id}"

    async def may_invoke(self, endpoint_name: str, namespace: str | None) -> bool:
        return self.key.allows(endpoint_name, namespace)


@dataclass(frozen=True)
class AnonymousPrincipal:
    name: str = "anonymous"

    async def may_invoke(self, endpoint_name: str, namespace: str | None) -> bool:
        return True


@dataclass(frozen=True)
class RequestParts:
    """What authentication needs from a request: no aiohttp types, so it stays testable."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, Sequence[str]]  # lower-cased names
    body: bytes


class Authenticator(Protocol):
    async def authenticate(self, request: RequestParts) -> Principal: ...


class KeyStore:
    """Access keys by id; replaced wholesale when the keys file or the Secrets change."""

    def __init__(self, keys: Iterable[AccessKey] = ()) -> None:
        self._keys: dict[str, AccessKey] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[AccessKey]) -> None:
        self._keys = {key.access_key_id: key for key in keys}

    def get(self, access_key_id: str) -> AccessKey | None:
        return self._keys.get(access_key_id)

    def secret(self, access_key_id: str) -> str | None:
        key = self._keys.get(access_key_id)
        return key.secret_access_key if key is not None else None

    def __len__(self) -> int:
        return len(self._keys)


class NoAuth:
    async def authenticate(self, request: RequestParts) -> Principal:
        return AnonymousPrincipal()


BearerCheck = Callable[[str], Awaitable[Principal]]


async def payload_hash(body: bytes) -> str:
    if len(body) > _HASH_OFF_LOOP_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    return hashlib.sha256(body).hexdigest()


class SigV4Authenticator:
    """SigV4 against a KeyStore; optionally bearer tokens through ``bearer_check``."""

    def __init__(
        self,
        keys: KeyStore,
        bearer_check: BearerCheck | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._keys = keys
        self._bearer_check = bearer_check
        self._clock = clock

    async def authenticate(self, request: RequestParts) -> Principal:
        values = request.headers.get("authorization")
        if not values:
            raise errors.missing_authentication()
        authorization = values[0]
        if authorization[:7].lower() == "bearer ":
            if self._bearer_check is None:
                raise errors.incomplete_signature("Bearer tokens are not accepted by this gateway.")
            token = authorization[7:].strip()
            if not token:
                raise errors.missing_authentication()
            return await self._bearer_check(token)
        declared = sigv4.declared_payload_hash(request.headers)
        if declared == sigv4.UNSIGNED_PAYLOAD:
            digest = declared
        else:
            digest = await payload_hash(request.body)
            if declared is not None and declared != digest:
                raise errors.invalid_signature(
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
            raise errors.unrecognized_client()
        return KeyPrincipal(key)
