"""Pure reading of child objects: what a Deployment or a Pod says about a variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.operator.status import VariantObservation

Body = Mapping[str, Any]

# Deployment conditions that waiting will not fix.
_FATAL_DEPLOYMENT_REASONS = {"ProgressDeadlineExceeded", "FailedCreate"}


def observe_deployment(body: Body) -> VariantObservation:
    """Ready and desired replicas, and a failure the user must act on, from a Deployment."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    failure = None
    for condition in status.get("conditions") or []:
        if (condition.get("status") == "False" and condition.get("reason") in _FATAL_DEPLOYMENT_REASONS) or (
            condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
        ):
            failure = f"{condition.get('reason')}: {condition.get('message', '')}".strip()
    return VariantObservation(
        ready_instances=int(status.get("readyReplicas") or 0),
        desired_instances=spec.get("replicas"),
        failure=failure,
    )


def unschedulable_message(pod: Body) -> str | None:
    """The scheduler's message when the pod cannot be placed on any node."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or "no node fits the pod")
    return None
