"""Who may invoke what: access keys scoped to endpoints and namespaces (from a keys file or
Kubernetes Secrets) and, in Kubernetes mode, bearer tokens (checked by a callback the
Kubernetes shell provides). SigV4 itself and the key store are :mod:`sageport.net.auth`.

Secrets never appear in reprs, logs or error messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sageport.net.auth import KeyStore, RequestParts, SigV4Authenticator


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    # None means every endpoint / every namespace.
    endpoints: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    # Where the key's control-plane calls (CreateEndpoint...) act: its Secret's namespace, or the
    # one namespace a system-namespace key names. None: the key has no control-plane namespace.
    home_namespace: str | None = None
    # The Kubernetes identity the key's control-plane calls act as: a ServiceAccount in
    # ``home_namespace``, impersonated. None: the key may invoke but not use the control plane.
    service_account: str | None = None

    @property
    def kubernetes_user(self) -> str | None:
        """The username Kubernetes knows the key's ServiceAccount by."""
        if self.service_account is None or self.home_namespace is None:
            return None
        return f"system:serviceaccount:{self.home_namespace}:{self.service_account}"

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


class Authenticator(Protocol):
    async def authenticate(self, request: RequestParts) -> Principal: ...


BearerCheck = Callable[[str], Awaitable[Principal]]


class NoAuth:
    async def authenticate(self, request: RequestParts) -> Principal:
        return AnonymousPrincipal()


def sigv4_authenticator(keys: KeyStore[AccessKey], bearer_check: BearerCheck | None = None) -> Authenticator:
    """SigV4 against the access keys (each becomes a KeyPrincipal), and bearer tokens if given."""
    return SigV4Authenticator[AccessKey, Principal](keys, KeyPrincipal, bearer_check)
