"""Integration fixtures: sageport's CRDs and catalog installed, and the operator running.

The operator runs as a real process (``python -m sageport.operator``) against the session's
local cluster, exactly as a user runs it outside a cluster with ``$KUBECONFIG``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sageport.operator.crdgen import CATALOG_FILE, CRD_DIR, KINDS
from sageport_dev.handle import KubeCluster
from sageport_dev.processes import free_port as _free_port
from sageport_dev.processes import wait_http
from tests.conftest import UNMANAGED_PREFIX


@dataclass(frozen=True)
class RunningOperator:
    process: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def install_crds(cluster: KubeCluster) -> None:
    """CRDs applied and Established, and the default InstanceType catalog in place."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
    names = [f"crd/{kind.plural}.sageport.io" for kind in KINDS]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    deadline = time.monotonic() + 30
    while True:  # right after Established the first writes can still get 429 "storage initializing"
        applied = cluster.kubectl("apply", "--server-side", "-f", str(CATALOG_FILE), check=False)
        if applied.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"catalog apply failed: {applied.stderr}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def sageport_crds(kube_cluster: KubeCluster) -> KubeCluster:
    """CRDs applied and Established, and the default InstanceType catalog in place."""
    install_crds(kube_cluster)
    return kube_cluster


@contextlib.contextmanager
def running_operator(kubeconfig: Path, log: Path, namespaces: str) -> Iterator[RunningOperator]:
    """``python -m sageport.operator --namespace=<namespaces>``, healthy, stopped on exit."""
    port = _free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "SAGEPORT_RUNTIME_IMAGE": "sageport/runtime:test",
        # Async variants scaled from zero: KEDA's triggers name this Redis (no Redis runs here).
        "SAGEPORT_REDIS_URL": "redis://10.85.0.1:16379",
        "SAGEPORT_REDIS_SECRET": "sageport-redis",
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sageport.operator",
                f"--liveness=http://127.0.0.1:{port}/healthz",
                f"--namespace={namespaces}",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = RunningOperator(process, log)
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", process, timeout=60)
        except RuntimeError as error:
            raise AssertionError(f"{error}:\n{running.logs()[-4000:]}") from None
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def sageport_operator(
    sageport_crds: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    """The operator process, healthy, for the whole session."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(sageport_crds.kubeconfig, log, f"!{UNMANAGED_PREFIX}*") as running:
        yield running
