"""Pure status maths of a TransformJob: SageMaker's face (transformJobStatus, failureReason,
transformStartTime, transformEndTime) and Kubernetes' (Ready, Succeeded), from its Job, the
termination messages of the Job's pods (the driver's result) and whether a stop was asked.

The rules, in order:

- Completed, Failed and Stopped are final: once written they never change.
- A problem the user must fix (invalid spec, Model still missing after the wait, unknown
  instance type) is Failed, naming the field; one that may heal (Model not there yet) is
  InProgress with Ready=False saying what is awaited.
- The Job's ``Complete`` condition is Completed; its ``Failed`` condition is Failed, with the
  failure reasons the drivers wrote (``s3://bucket/key: ClientError: ...``), else the reason of
  the container that failed, else the Job's own message.
- A stop asked (annotation ``sageport.io/stop-requested``) is Stopping while any pod of the Job
  still runs, then Stopped.
- Otherwise InProgress.

``Succeeded`` is True when Completed, False when Failed or Stopped, Unknown before: what
``kubectl wait --for=condition=Succeeded`` and Argo CD's health check read. ``Ready`` is True
while the job runs as asked and once Completed, False otherwise, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sageport.api.v1alpha1 import Condition, TransformJobStatus
from sageport.api.v1alpha1.common import ConditionStatus
from sageport.contract import ANNOTATION_STOP_REQUESTED
from sageport.contract import TransformJobStatus as State
from sageport.operator.reconcile.readiness import broken_container_message, unschedulable_message
from sageport.operator.status import READY, Problem, set_condition

SUCCEEDED = "Succeeded"
FINAL = frozenset({State.COMPLETED, State.FAILED, State.STOPPED})
FAILURE_REASON_LIMIT = 1024  # SageMaker's FailureReason length
DRIVER = "driver"  # the driver's container name (render/job.py)
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_RUNNING_PHASES = {"Pending", "Running"}

Body = Mapping[str, Any]


@dataclass(frozen=True)
class WorkerResult:
    """One pod's driver result (its termination message), or why the pod failed without one."""

    index: int | None
    status: str | None  # the driver's transformJobStatus
    failure_reason: str | None
    objects: int = 0
    records: int = 0


def _condition(job: Body, kind: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def stop_requested(body: Body) -> bool:
    """SageMaker's StopTransformJob without deleting: the annotation, with any value."""
    return ANNOTATION_STOP_REQUESTED in ((body.get("metadata") or {}).get("annotations") or {})


def worker_result(pod: Body) -> WorkerResult | None:
    """The driver's result from the pod's termination message, else a failed container's reason."""
    metadata = pod.get("metadata") or {}
    raw_index = (metadata.get("annotations") or {}).get(_COMPLETION_INDEX)
    index = int(raw_index) if raw_index is not None and str(raw_index).isdigit() else None
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if container.get("name") != DRIVER or not terminated:
            continue
        try:
            result = json.loads(terminated.get("message") or "")
        except ValueError:
            result = None
        if isinstance(result, dict):
            return WorkerResult(
                index,
                result.get("transformJobStatus"),
                result.get("failureReason"),
                int(result.get("objects") or 0),
                int(result.get("records") or 0),
            )
        if terminated.get("exitCode"):
            text = str(terminated.get("message") or terminated.get("reason") or "").strip()
            return WorkerResult(
                index, State.FAILED, f"driver exited {terminated['exitCode']}: {text}".strip(": ")
            )
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode"):
            text = str(terminated.get("message") or terminated.get("reason") or "").strip()
            why = f"container {container.get('name')} exited {terminated['exitCode']}" + (
                f": {text}" if text else ""
            )
            return WorkerResult(index, State.FAILED, why)
    if status.get("phase") == "Failed":
        return WorkerResult(
            index, State.FAILED, str(status.get("message") or status.get("reason") or "pod failed")
        )
    return None


def failure_reason(job: Body, pods: Sequence[Body]) -> str:
    """Why a failed Job failed: the drivers' failure reasons (each object's URI and error), one
    per instance, else what the Job controller says."""
    reasons: dict[int | None, str] = {}
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or "")):
        result = worker_result(pod)
        if result is not None and result.status == State.FAILED and result.failure_reason:
            reasons[result.index] = result.failure_reason  # the latest run of each index
    if reasons:
        text = "; ".join(reasons[k] for k in sorted(reasons, key=lambda i: -1 if i is None else i))
    else:
        failed = _condition(job, "Failed") or {}
        text = f"{failed.get('reason', 'Failed')}: {failed.get('message', 'the Job failed')}".strip()
    return text[:FAILURE_REASON_LIMIT]


def running_pods(pods: Sequence[Body]) -> list[str]:
    return [
        str((p.get("metadata") or {}).get("name"))
        for p in pods
        if (p.get("status") or {}).get("phase", "Pending") in _RUNNING_PHASES
    ]


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _trouble(pods: Sequence[Body]) -> str | None:
    """Why a running job makes no progress: a pod that cannot be scheduled or a container that keeps failing."""
    for pod in pods:
        if (pod.get("status") or {}).get("phase", "Pending") not in _RUNNING_PHASES:
            continue
        if message := broken_container_message(pod):
            return message
        if message := unschedulable_message(pod):
            return f"pod {(pod.get('metadata') or {}).get('name')} cannot be scheduled: {message}"
    return None


def transform_status(
    *,
    previous: TransformJobStatus | None,
    generation: int | None,
    problem: Problem | None,
    job: Body | None,
    pods: Sequence[Body],
    stop: bool,
    now: datetime,
) -> TransformJobStatus:
    """The status to write; ``previous`` itself (the same object) when nothing changed."""
    if previous is not None and previous.transform_job_status in FINAL:
        return previous
    started = previous.transform_start_time if previous else None
    job_name = (job.get("metadata") or {}).get("name") if job else (previous.job_name if previous else None)
    if job is not None:
        started = _parse_time((job.get("status") or {}).get("startTime")) or started
    state: State
    reason = message = ""
    failure: str | None = None
    ended: datetime | None = None
    if problem is not None and (problem.terminal or not stop):
        if problem.terminal:
            state, reason, failure, ended = State.FAILED, problem.reason, problem.message, now
            message = problem.message
        else:
            state, reason, message = State.IN_PROGRESS, problem.reason, problem.message
    elif job is not None and (complete := _condition(job, "Complete")) is not None:
        state, reason, ended = (
            State.COMPLETED,
            State.COMPLETED.value,
            _parse_time((job.get("status") or {}).get("completionTime"))
            or _parse_time(complete.get("lastTransitionTime"))
            or now,
        )
        results = [r for p in pods if (r := worker_result(p)) is not None and r.status == State.COMPLETED]
        message = "Every input object was transformed" + (
            f": {sum(r.objects for r in results)} objects, {sum(r.records for r in results)} records."
            if results
            else "."
        )
    elif job is not None and (failed := _condition(job, "Failed")) is not None:
        state, reason = State.FAILED, "Failed"
        failure = message = failure_reason(job, pods)
        ended = _parse_time(failed.get("lastTransitionTime")) or now
    elif stop:
        running = running_pods(pods)
        if running:
            state, reason = State.STOPPING, State.STOPPING.value
            message = f"Stop requested ({ANNOTATION_STOP_REQUESTED}): waiting for pods {', '.join(sorted(running))} to end."
        else:
            state, reason, ended = State.STOPPED, State.STOPPED.value, now
            message = (
                f"Stopped on request ({ANNOTATION_STOP_REQUESTED}); outputs written before the stop are kept."
            )
    else:
        state, reason = State.IN_PROGRESS, State.IN_PROGRESS.value
        count = ((job or {}).get("spec") or {}).get("completions")
        message = (
            f"Transforming with {count} instance(s): Job {job_name}."
            if job is not None
            else "Starting the Job."
        )
        if trouble := _trouble(pods):
            reason, message = "InstanceNotRunning", trouble
    ready: ConditionStatus = (
        "True"
        if state == State.COMPLETED or (state == State.IN_PROGRESS and reason == State.IN_PROGRESS.value)
        else "False"
    )
    outcomes: dict[State, ConditionStatus] = {
        State.COMPLETED: "True",
        State.FAILED: "False",
        State.STOPPED: "False",
    }
    succeeded = outcomes.get(state, "Unknown")
    conditions = list(previous.conditions or []) if previous else []
    for kind, value in ((READY, ready), (SUCCEEDED, succeeded)):
        new = Condition(
            type=kind, status=value, reason=reason, message=message, observedGeneration=generation
        )
        conditions = set_condition(conditions, new, now)
    status = TransformJobStatus(
        observed_generation=generation,
        conditions=conditions,
        transform_job_status=state,
        failure_reason=failure[:FAILURE_REASON_LIMIT] if failure else None,
        transform_start_time=started,
        transform_end_time=ended,
        job_name=job_name,
    )
    if previous is not None and _same_apart_from_times(previous, status):
        return previous
    return status


def _same_apart_from_times(old: TransformJobStatus, new: TransformJobStatus) -> bool:
    strip = {"conditions": [c.model_copy(update={"lastTransitionTime": None}) for c in new.conditions or []]}
    old_strip = {
        "conditions": [c.model_copy(update={"lastTransitionTime": None}) for c in old.conditions or []]
    }
    return old.model_copy(update=old_strip) == new.model_copy(update=strip)


def transform_status_patch(status: TransformJobStatus) -> dict[str, Any]:
    """A merge patch that sets every status field, and clears (null) the ones now unset."""
    cleared: dict[str, Any] = {
        (info.alias or name): None for name, info in TransformJobStatus.model_fields.items()
    }
    return {**cleared, **status.to_wire()}
