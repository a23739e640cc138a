"""A TransformJob's indexed Job: ``instanceCount`` pods placed by the instance type like a
variant's, each running the Model's container beside the batch driver.

The model container is a native sidecar (an init container with ``restartPolicy: Always``): it
starts after the model fetch, before the driver, serves on localhost for as long as the driver
runs, and is stopped by the kubelet when the driver exits, so the pod completes with the driver's
exit code. The driver waits for ``GET /ping`` itself (30 min, as SageMaker), so the sidecar has no
startup probe that could hold the pod in its init phase forever.

Failures (``podFailurePolicy`` with ``backoffLimitPerIndex``): the driver's exit code 1 is a
failure it decided (a record the model rejected, bad input, no answer to /ping) and fails its
index at once; a disruption (eviction, preemption, drain) is not counted; anything else (killed,
out of memory, a crash, a failed model fetch) runs the index again, up to
``retries_per_instance`` times. A run again skips the objects this job already wrote. The other
indexes go on either way; the Job fails at the end if any index failed.
"""

from __future__ import annotations

from typing import Any

from sageport import contract

from .names import MANAGED_BY_LABEL
from .pod import model_container, model_fetches, node_placement, restricted_security_context
from .shape import Manifest, RenderSettings, TransformShape

DRIVER = "driver"
# The driver's exit codes (sageport.batch.__main__): 1 is the job's failure, 143 a stop (SIGTERM).
DRIVER_FAILED_EXIT_CODE = 1
# Set by the Job controller on the pods of a Job with backoffLimitPerIndex.
INDEX_FAILURE_COUNT_ANNOTATION = "batch.kubernetes.io/job-index-failure-count"
GRACE_SECONDS = 30  # SageMaker's SIGTERM-to-SIGKILL time; the driver stops at once on SIGTERM


def transform_labels(shape: TransformShape) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sageport-transform",
        "app.kubernetes.io/instance": shape.transform_object,
        "app.kubernetes.io/component": "batch-transform",
        MANAGED_BY_LABEL: contract.MANAGED_BY,
        "app.kubernetes.io/part-of": "sageport",
        contract.LABEL_TRANSFORM_JOB: shape.transform_object,
    }


def _model_sidecar(shape: TransformShape, settings: RenderSettings) -> dict[str, Any]:
    container = model_container(shape.model, shape.instance_type, 0, settings)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container.pop(probe)
    container["restartPolicy"] = "Always"
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def _driver(shape: TransformShape, settings: RenderSettings) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": contract.TRANSFORM_JOB_ENV, "value": shape.spec_json},
        {"name": contract.TRANSFORM_JOB_UID_ENV, "value": shape.uid},
        {
            "name": contract.TRANSFORM_RETRY_ENV,
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_FAILURE_COUNT_ANNOTATION}']"}
            },
        },
    ]
    env += [{"name": k, "value": v} for k, v in settings.storage_env]
    container: dict[str, Any] = {
        "name": DRIVER,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [
            "python",
            "-m",
            "sageport.batch",
            "run",
            f"--model-url=http://127.0.0.1:{shape.model.port}",
        ],
        "env": env,
        "resources": {
            "requests": {"cpu": shape.driver_resources.cpu, "memory": shape.driver_resources.memory},
            "limits": {"memory": shape.driver_memory_limit},
        },
        "terminationMessagePath": contract.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
        "securityContext": restricted_security_context(),
    }
    if settings.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.storage_secret}}]
    return container


def transform_job(shape: TransformShape, settings: RenderSettings) -> Manifest:
    """The Job of a TransformJob (suspended once a stop is asked)."""
    fetches, volumes = model_fetches((shape.model,), shape.download_seconds, settings)
    for fetch in fetches:
        fetch["terminationMessagePolicy"] = "FallbackToLogsOnError"
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [*fetches, _model_sidecar(shape, settings)],
        "containers": [_driver(shape, settings)],
        "volumes": volumes,
        **node_placement(shape.instance_type, settings),
    }
    labels = transform_labels(shape)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": shape.name,
            "namespace": shape.namespace,
            "labels": labels,
            "ownerReferences": [shape.owner.to_k8s()],
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": shape.instance_count,
            "parallelism": shape.instance_count,
            "suspend": shape.stopped,
            "backoffLimitPerIndex": shape.retries_per_instance,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailIndex",
                        "onExitCodes": {
                            "containerName": DRIVER,
                            "operator": "In",
                            "values": [DRIVER_FAILED_EXIT_CODE],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
