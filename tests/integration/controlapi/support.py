"""The control-plane tests' access keys: each names a ServiceAccount made here with a Role."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sageport_dev import stack
from sageport_dev.handle import KubeCluster
from tests.integration.gateway.support import Process
from tests.support.kube import apply

REGION = "eu-west-1"


def key_client(gateway: Process, kube_cluster: KubeCluster, namespace: str, *, service_account: str | None,
                verbs: tuple[str, ...] = stack.ALL_VERBS, name: str = "control-key") -> Any:  # fmt: skip
    """boto3's ``sagemaker`` client with a new access key in ``namespace`` whose Secret names
    ``service_account`` (made here, bound to a Role with ``verbs`` on the sageport.io kinds)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    key = stack.AccessKey("AKID" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24))
    identity = stack.api_identity(service_account, verbs) if service_account else []
    apply(kube_cluster, [*identity, stack.access_key_secret(name, key, service_account)], namespace)
    client = boto3.client(
        "sagemaker",
        endpoint_url=gateway.url,
        region_name=REGION,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    # The key Secret reaches the gateway through its watch: wait until it signs in.
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_models()
            return client
        except client.exceptions.ClientError as error:
            if error.response["Error"]["Code"] == "AccessDeniedException":
                return client  # signed in: what it may do is the test's business
            if time.monotonic() > deadline:
                raise AssertionError(f"the access key never worked: {error}") from None
            time.sleep(0.3)
