"""A gateway serving the control-plane API on the test's namespace, and a boto3 ``sagemaker``
client whose key may do everything there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sageport_dev import stack
from sageport_dev.handle import KubeCluster
from tests.integration.controlapi.support import key_client
from tests.integration.gateway.support import Process, start_gateway


@pytest.fixture
def gateway(kube_cluster: KubeCluster, namespace: str, tmp_path: Path) -> Iterator[Process]:
    process = start_gateway(
        ["--kubernetes", "--kubeconfig", str(kube_cluster.kubeconfig), "--namespace", namespace,
         "--account-id", "123456789012"],
        log_path=tmp_path / "gateway.log",
        ready_timeout=90,
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def sagemaker(gateway: Process, kube_cluster: KubeCluster, namespace: str) -> Any:
    """A key whose identity may do everything on the sageport.io kinds in the namespace."""
    return key_client(gateway, kube_cluster, namespace, service_account=stack.API_IDENTITY)
