"""Where one cluster's files live; cheap to import (the `kubeconfig` command needs only this)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/tmp/sageport-cluster")


def state_dir_from_env() -> Path:
    return Path(os.environ.get("SAGEPORT_CLUSTER_DIR", str(DEFAULT_STATE_DIR)))


@dataclass(frozen=True)
class Layout:
    """Where each file of one cluster lives inside its state directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd-data"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in system:masters), the one tests and people use."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def marker(self) -> Path:
        """Only a directory carrying this file is ever deleted by the harness."""
        return self.root / ".sageport-cluster"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"
