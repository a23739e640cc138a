"""A serverless variant's KEDA ScaledObject: 0..N pods, woken by the gateway (external-push).

The gateway streams "active" to KEDA at the first call for a variant with no ready pod, so the
step 0 -> 1 does not wait for a poll; KEDA's own polls (IsActive) keep the pods while calls come
and scale them to the minimum after ``idle_seconds`` without any (cooldownPeriod). Between 1 and
N the HPA KEDA creates follows the gateway's concurrency metric, when KEDA's metrics API server runs.
"""

from __future__ import annotations

from .names import variant_metadata
from .shape import Manifest, VariantShape

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
