"""Pure reading of child objects: how ready a variant's Deployment is, and why a Pod cannot be scheduled."""

from __future__ import annotations

from sageport.operator.reconcile.lookups import Body
from sageport.operator.status import VariantObservation

# Deployment conditions that waiting will not fix.
_FATAL_DEPLOYMENT_REASONS = {"ProgressDeadlineExceeded", "FailedCreate"}


def deployment_readiness(body: Body) -> VariantObservation:
    """Ready and desired replicas, and a failure the user must act on, from a Deployment."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    failure = None
    for condition in status.get("conditions") or []:
        if (condition.get("status") == "False" and condition.get("reason") in _FATAL_DEPLOYMENT_REASONS) or (
            condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
        ):
            failure = f"{condition.get('reason')}: {condition.get('message', '')}".strip()
    wanted = spec.get("replicas")
    # As `kubectl rollout status`: the controller saw the current template, and every replica
    # runs it (old ones included in readyReplicas while a rolling update is under way).
    rolled_out = (status.get("observedGeneration") or 0) >= (
        (body.get("metadata") or {}).get("generation") or 0
    ) and (
        wanted is None
        or (int(status.get("updatedReplicas") or 0) >= wanted and int(status.get("replicas") or 0) <= wanted)
    )
    return VariantObservation(
        ready_instances=int(status.get("readyReplicas") or 0),
        desired_instances=wanted,
        failure=failure,
        rolled_out=rolled_out,
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


# Container waiting reasons that do not heal by waiting: the new fleet is broken.
_BROKEN_WAITING_REASONS = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}


def broken_container_message(pod: Body) -> str | None:
    """Why a container (init containers included) of the pod keeps failing, if one does."""
    status = pod.get("status") or {}
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _BROKEN_WAITING_REASONS:
            detail = str(waiting.get("message") or "").strip()
            last = ((container.get("lastState") or {}).get("terminated") or {}).get("reason")
            why = (
                f"{waiting['reason']}"
                + (f" (last exit: {last})" if last else "")
                + (f": {detail}" if detail else "")
            )
            return (
                f"container {container.get('name')} of pod {(pod.get('metadata') or {}).get('name')}: {why}"
            )
    return None
