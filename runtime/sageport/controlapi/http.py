"""The control-plane API on the gateway's HTTP server: ``POST /`` with ``X-Amz-Target``.

Authentication is the gateway's (SigV4 against the same access keys, signing name
``sagemaker``); ``scope_of`` tells from the principal the one namespace the caller acts in and
the Kubernetes identity every call is made as, or refuses it (an :class:`ApiError`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sageport.contract import AMZ_TARGET_HEADER
from sageport.controlapi import errors
from sageport.controlapi.names import Account
from sageport.controlapi.service import Caller, ControlApi, region_of
from sageport.net.auth import RequestParts
from sageport.net.awserrors import ApiError, access_denied, internal_failure
from sageport.net.httpserver import Request, Response

log = logging.getLogger("sageport.controlapi")


class Authenticator(Protocol):
    async def authenticate(self, request: RequestParts) -> Any: ...


@dataclass(frozen=True)
class Scope:
    """Where a caller acts and as whom (a Kubernetes username; None: the gateway itself)."""

    namespace: str
    user: str | None


def refused(reason: str) -> ApiError:
    """A caller that may not use the control plane at all."""
    return access_denied(f"This identity may not use the SageMaker control-plane API: {reason}")


class ControlApiServer:
    def __init__(
        self,
        api: ControlApi,
        authenticator: Authenticator,
        scope_of: Callable[[Any], Scope],
        account_id: str,
        default_region: str = "us-east-1",
    ) -> None:
        self.api = api
        self.authenticator = authenticator
        self.scope_of = scope_of
        self.account_id = account_id
        self.default_region = default_region

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get(AMZ_TARGET_HEADER, "")
        started = time.perf_counter()
        try:
            principal = await self.authenticator.authenticate(
                RequestParts(
                    request.method, request.raw_path, request.raw_query, request.header_values, request.body
                )
            )
            scope = self.scope_of(principal)
            region = region_of(request.headers.get("authorization"), self.default_region)
            caller = Caller(scope.namespace, Account(region, self.account_id), scope.user)
            result = await self.api.call(target, request.body, caller)
        except ApiError as error:
            log.info("%s answered %s: %s", target, error.code, error.message)
            return self._error(error, request_id)
        except Exception:
            log.exception("%s failed", target)
            return self._error(internal_failure(), request_id)
        log.debug("%s in %.1f ms", target, (time.perf_counter() - started) * 1000)
        body = json.dumps(result).encode()
        return Response(200, {"Content-Type": errors.JSON_CONTENT_TYPE, "x-amzn-RequestId": request_id}, body)

    @staticmethod
    def _error(error: ApiError, request_id: str) -> Response:
        status, headers, body = errors.render(error, request_id)
        return Response(status, headers, body)
