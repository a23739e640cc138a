"""A Service in front of a variant's pods."""

from __future__ import annotations

from .names import variant_metadata, variant_selector
from .shape import Manifest, ServiceShape, VariantShape


def service(shape: VariantShape, planned: ServiceShape) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": variant_metadata(shape, planned.name),
        "spec": {
            "type": "ClusterIP",
            "selector": variant_selector(shape),
            "ports": [
                {
                    "name": planned.target_port,
                    "port": planned.port,
                    "targetPort": planned.target_port,
                    "protocol": "TCP",
                }
            ],
        },
    }
