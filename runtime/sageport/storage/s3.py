"""The S3 client every data-plane component uses: endpoint and credentials from the environment.

``AWS_ENDPOINT_URL_S3`` (else ``AWS_ENDPOINT_URL``) points it at an S3-compatible server; the
credentials come from boto3's own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a web
identity token, instance metadata). The model fetcher and the gateway's data capture share it.
"""

from __future__ import annotations

import os
from typing import Any


def s3_client(
    *, max_attempts: int = 5, connect_timeout: float = 60.0, read_timeout: float = 60.0, pool: int = 10
) -> Any:
    """A boto3 S3 client (blocking: call it from a thread, never on an event loop); ``pool``
    connections (botocore's default 10), for as many threads using it at once."""
    # Imported here: paths that never touch S3 should not pay for importing botocore.
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=pool,
        ),
    )
