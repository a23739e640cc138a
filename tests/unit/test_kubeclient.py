"""The one Kubernetes client configuration: explicit file, else in-cluster, else $KUBECONFIG."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sageport.kubeclient import load_api_client


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def _default_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    # The client library reads $KUBECONFIG once, when it is imported.
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def test_explicit_kubeconfig_wins_and_pool_is_sized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _default_kubeconfig(monkeypatch, _kubeconfig(tmp_path / "env", "https://from-env:6443"))
    api = load_api_client(_kubeconfig(tmp_path / "explicit", "https://explicit:6443"), pool_size=7)
    assert api.configuration.host == "https://explicit:6443"
    assert api.configuration.connection_pool_maxsize == 7


def test_outside_a_pod_falls_back_to_kubeconfig_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    _default_kubeconfig(monkeypatch, _kubeconfig(tmp_path / "env", "https://from-env:6443"))
    api = load_api_client(pool_size=3)
    assert api.configuration.host == "https://from-env:6443"
    assert api.configuration.connection_pool_maxsize == 3
