"""A Kubernetes Event about an object (``kubectl describe`` and ``kubectl events`` show it)."""

from __future__ import annotations

from datetime import datetime

from sageport.contract import MANAGED_BY

from .shape import Manifest, OwnerRef


def warning_event(about: OwnerRef, namespace: str, reason: str, message: str, now: datetime) -> Manifest:
    """A Warning Event on ``about``. Events are the one object named by the server (generateName)."""
    stamp = now.isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{about.name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": about.api_version,
            "kind": about.kind,
            "name": about.name,
            "namespace": namespace,
            "uid": about.uid,
        },
        "type": "Warning",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
