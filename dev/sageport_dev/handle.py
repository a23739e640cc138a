"""What a test holds on to: a running cluster's kubeconfig, kubectl, and API clients."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@dataclass(frozen=True)
class KubeCluster:
    """A ready cluster, reached through its admin kubeconfig.

    ``state_dir`` is None for a cluster the harness did not start (reused through
    ``SAGEPORT_KUBECONFIG``).
    """

    kubeconfig: Path
    kubectl_binary: Path
    state_dir: Path | None = None

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; output is text. ``check`` raises on a non-zero exit,
        with kubectl's stderr in the message."""
        argv = [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def api_client(self) -> ApiClient:
        """A new ``kubernetes.client.ApiClient`` for this cluster (the caller closes it)."""
        from kubernetes import config
        from kubernetes.client import ApiClient

        # kubernetes.config carries no annotations, unlike kubernetes.client.
        client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), persist_config=False
        )
        assert isinstance(client, ApiClient)
        return client
