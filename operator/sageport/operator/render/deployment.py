"""A variant's Deployment: its pods, rolled out exactly when the pod template changes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sageport.contract import ANNOTATION_TEMPLATE_HASH

from .names import variant_labels, variant_metadata, variant_selector
from .pod import pod_spec
from .shape import Manifest, RenderSettings, VariantShape

# Kubernetes' own default; a model with a longer startup budget gets that budget plus its
# download budget (or time to fetch) and time to be scheduled, so a slow model inside its
# budgets is never declared failed.
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
FETCH_AND_SCHEDULE_ALLOWANCE_SECONDS = 300


def progress_deadline_seconds(shape: VariantShape) -> int:
    return max(
        DEFAULT_PROGRESS_DEADLINE_SECONDS,
        shape.startup_seconds + (shape.download_seconds or 0) + FETCH_AND_SCHEDULE_ALLOWANCE_SECONDS,
    )


def deployment(shape: VariantShape, settings: RenderSettings) -> Manifest:
    selector = variant_selector(shape)
    pod = pod_spec(shape, settings)
    template_hash = hashlib.sha256(json.dumps(pod, sort_keys=True).encode()).hexdigest()[:16]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": progress_deadline_seconds(shape),
        "template": {
            "metadata": {
                "labels": variant_labels(shape),
                "annotations": {ANNOTATION_TEMPLATE_HASH: template_hash},
            },
            "spec": pod,
        },
    }
    if shape.replicas is not None:
        spec["replicas"] = shape.replicas
    # With an autoscaler the replica count is left out, so the autoscaler's writes are never undone.
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": variant_metadata(shape), "spec": spec}
