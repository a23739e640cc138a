"""Small helpers for tests that talk to the local cluster."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from sageport_dev.handle import KubeCluster


def apply(cluster: KubeCluster, docs: Iterable[dict[str, Any]], namespace: str, check: bool = True) -> str:
    """``kubectl apply --server-side`` of the documents into the namespace; returns kubectl's output."""
    text = yaml.safe_dump_all(list(docs))
    result = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=text, check=check)
    return result.stdout + result.stderr


def get(cluster: KubeCluster, resource: str, namespace: str, name: str = "", selector: str = "") -> Any:
    """``kubectl get -o yaml``: one object, or a list's ``items``; None when it does not exist."""
    args = ["get", resource, "-n", namespace, "-o", "yaml", "--show-managed-fields"]
    if name:
        args.insert(2, name)
    if selector:
        args += ["-l", selector]
    result = cluster.kubectl(*args, check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(result.stderr)
    data = yaml.safe_load(result.stdout)
    return data if name else data.get("items", [])


def condition(obj: dict[str, Any] | None, kind: str = "Ready") -> dict[str, Any] | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None
