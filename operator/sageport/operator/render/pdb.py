"""A variant's PodDisruptionBudget: node drains take its instances one at a time."""

from __future__ import annotations

from .names import variant_metadata, variant_selector
from .shape import Manifest, VariantShape


def pod_disruption_budget(shape: VariantShape) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": variant_metadata(shape),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": variant_selector(shape)}},
    }
