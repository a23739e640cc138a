"""A minimal HTTPS client for the harness's own API calls (health, nodes, service accounts).

The harness avoids the ``kubernetes`` package: it costs over a second to import, and the
few calls made here are plain JSON over mutual TLS.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ApiServerClient:
    """Calls the apiserver at ``url`` as the holder of ``cert``/``key``, trusting only ``ca``."""

    def __init__(self, url: str, *, ca: Path, cert: Path, key: Path) -> None:
        self.url = url.rstrip("/")
        self._context = ssl.create_default_context(cafile=str(ca))
        self._context.load_cert_chain(str(cert), str(key))

    def request(self, method: str, path: str, body: Any = None) -> ApiResponse:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS, context=self._context) as response:
                return ApiResponse(status=response.status, body=response.read())
        except urllib.error.HTTPError as error:
            return ApiResponse(status=error.code, body=error.read())

    def get(self, path: str) -> ApiResponse:
        return self.request("GET", path)


def probe(url: str, *, context: ssl.SSLContext | None = None) -> bool:
    """True if ``url`` answers 200 right now; any connection error counts as not yet."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def insecure_context() -> ssl.SSLContext:
    """For the health ports of the controller manager and scheduler, which serve self-signed certs."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
