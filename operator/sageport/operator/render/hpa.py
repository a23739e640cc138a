"""A variant's HorizontalPodAutoscaler on CPU utilisation (the Endpoint's spec.autoScaling)."""

from __future__ import annotations

from .names import variant_metadata
from .shape import Manifest, VariantShape


def horizontal_pod_autoscaler(shape: VariantShape) -> list[Manifest]:
    scaling = shape.autoscaling
    if scaling is None:  # the plan chooses an HPA only with bounds; nothing to build without them
        return []
    return [
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": variant_metadata(shape),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": shape.name},
                "minReplicas": scaling.min_instance_count,
                "maxReplicas": scaling.max_instance_count,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": scaling.target_cpu_utilization_percentage,
                            },
                        },
                    }
                ],
            },
        }
    ]
