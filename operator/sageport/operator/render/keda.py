"""A serverless variant's KEDA ScaledObject: 0..N pods, woken by the gateway (external-push).

The gateway streams "active" to KEDA at the first call for a variant with no ready pod, so the
step 0 -> 1 does not wait for a poll; KEDA's own polls (IsActive) keep the pods while calls come
and scale them to the minimum after ``idle_seconds`` without any (cooldownPeriod). Between 1 and
N the HPA KEDA creates follows the gateway's concurrency metric, when KEDA's metrics API server runs.
"""

from __future__ import annotations

from sageport import contract

from .names import variant_metadata
from .shape import Manifest, TargetTrackingShape, TrackedMetric, VariantShape

KEDA_API_VERSION = "keda.sh/v1alpha1"
# How often KEDA asks the gateway whether the variant is still in use (scale-in only: scale-out
# from zero is pushed). The gateway counts a call as activity for this long after it ends.
POLLING_SECONDS = 10


def scaled_object(shape: VariantShape) -> list[Manifest]:
    serverless = shape.serverless
    if serverless is None:  # the plan chooses KEDA only for serverless variants
        return []
    return [
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": "ScaledObject",
            "metadata": variant_metadata(shape),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": shape.name},
                "minReplicaCount": serverless.min_replicas,
                "maxReplicaCount": serverless.max_replicas,
                "cooldownPeriod": serverless.idle_seconds,
                "pollingInterval": POLLING_SECONDS,
                "triggers": [
                    {
                        "type": "external-push",
                        "metricType": "AverageValue",
                        "metadata": {
                            "scalerAddress": serverless.scaler_address,
                            **dict(serverless.trigger_metadata),
                            "callsPerPod": str(serverless.calls_per_pod),
                            "activeWindowSeconds": str(POLLING_SECONDS),
                        },
                    }
                ],
            },
        }
    ]


def queue_scaled_object(shape: VariantShape) -> list[Manifest]:
    """An async variant with minInstanceCount 0: KEDA reads its stream's consumer group in Redis.

    Two redis-streams triggers on the same stream and group, because each is blind where the
    other sees: the group's ``lag`` (entries not yet delivered) wakes the variant from zero, where
    nothing is ever delivered, so pending counts stay 0; the pending count (delivered, not yet
    acknowledged) keeps pods while calls run, and wakes the variant for calls a pod took and never
    finished before it went. KEDA is active while either is above 0, scales to zero after
    ``cooldownPeriod`` with both at 0, and between 1 and N the HPA takes the larger metric per pod.
    """
    queue = shape.queue_scaling
    if queue is None:  # the plan chooses this autoscaler only for async variants scaled from zero
        return []
    connection = {"address": queue.address, "stream": queue.stream, "consumerGroup": queue.group}
    if queue.database:
        connection["databaseIndex"] = str(queue.database)
    if queue.tls:
        connection["enableTLS"] = "true"
    authentication = {"authenticationRef": {"name": shape.name}} if queue.password_secret else {}
    triggers = [
        {
            "type": "redis-streams",
            "name": name,
            "metadata": {**connection, key: str(queue.backlog_per_pod), "activationLagCount": "0"},
            **authentication,
        }
        for name, key in (("backlog", "lagCount"), ("in-flight", "pendingEntriesCount"))
    ]
    scaled = {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": variant_metadata(shape),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": shape.name},
            "minReplicaCount": queue.min_replicas,
            "maxReplicaCount": queue.max_replicas,
            "cooldownPeriod": queue.idle_seconds,
            "pollingInterval": queue.polling_seconds,
            "triggers": triggers,
        },
    }
    if not queue.password_secret:
        return [scaled]
    password = {"parameter": "password", "name": queue.password_secret, "key": contract.REDIS_PASSWORD_KEY}
    return [
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": "TriggerAuthentication",
            "metadata": variant_metadata(shape),
            "spec": {"secretTargetRef": [password]},
        },
        scaled,
    ]


def _tracking_trigger(tracking: TargetTrackingShape) -> Manifest:
    if tracking.metric is TrackedMetric.CPU:
        return {
            "type": "cpu",
            "metricType": "Utilization",
            "metadata": {"value": f"{tracking.target_value:g}"},
        }
    # Polled, not pushed: the variant never sits at zero, so nothing waits for an activation.
    return {
        "type": "external",
        "metricType": "AverageValue",
        "metadata": {
            "scalerAddress": tracking.scaler_address,
            **dict(tracking.trigger_metadata),
            contract.SCALER_KEY_METRIC: contract.SCALER_METRIC_INVOCATIONS,
            contract.SCALER_KEY_TARGET: f"{tracking.target_value:g}",
        },
    }


def _behavior(tracking: TargetTrackingShape) -> Manifest:
    """The cooldowns as the HPA's stabilization windows (the HPA's defaults where unset)."""
    behavior: Manifest = {}
    if tracking.scale_out_seconds is not None:
        behavior["scaleUp"] = {"stabilizationWindowSeconds": tracking.scale_out_seconds}
    if tracking.disable_scale_in:
        behavior["scaleDown"] = {"selectPolicy": "Disabled"}
    elif tracking.scale_in_seconds is not None:
        behavior["scaleDown"] = {"stabilizationWindowSeconds": tracking.scale_in_seconds}
    return behavior


def tracking_scaled_object(shape: VariantShape) -> list[Manifest]:
    """A target-tracked variant (SageMaker's TargetTrackingScaling): KEDA makes the HPA
    ``keda-hpa-<name>`` on the policy's metric, between minInstanceCount and maxInstanceCount.

    SageMakerVariantInvocationsPerInstance: the gateway reports the variant's calls in the last
    minute (its external scaler's GetMetrics); as an AverageValue metric the HPA wants
    ceil(calls / targetValue) instances. CPUUtilization: KEDA's cpu trigger, percent of request.
    """
    tracking = shape.target_tracking
    if tracking is None:  # the plan chooses this autoscaler only with a policy
        return []
    spec: Manifest = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": shape.name},
        "minReplicaCount": tracking.min_replicas,
        "maxReplicaCount": tracking.max_replicas,
        "pollingInterval": POLLING_SECONDS,
        "triggers": [_tracking_trigger(tracking)],
    }
    behavior = _behavior(tracking)
    if behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    return [
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": "ScaledObject",
            "metadata": variant_metadata(shape),
            "spec": spec,
        }
    ]
