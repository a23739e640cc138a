"""A Serial pipeline's stage pod: one further stage of one instance, bound to the node of the
instance's anchor pod by required pod affinity (the scheduler's rule, not luck), owned by the
anchor pod (it goes when its instance goes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sageport.contract import ANNOTATION_TEMPLATE_HASH, LABEL_INSTANCE, LABEL_STAGE

from .names import stage_labels
from .pod import model_pod_spec
from .shape import Manifest, ModelContainer, RenderSettings, VariantShape

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
MAX_POD_NAME = 253


def stage_pod_name(anchor: str, stage: ModelContainer) -> str:
    """``<anchor pod>-<stage container name>``: one per stage per instance, found by name."""
    return f"{anchor}-{stage.name}"[:MAX_POD_NAME].rstrip("-.")


def stage_template_hash(shape: VariantShape, stage: ModelContainer, settings: RenderSettings) -> str:
    """The hash of what a stage pod runs, whatever its instance: a pod with another hash is
    replaced (an operator upgrade that changes the pod)."""
    spec = model_pod_spec(shape, (stage,), (), settings)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def stage_pod(
    shape: VariantShape, stage: ModelContainer, anchor: str, anchor_uid: str, settings: RenderSettings
) -> Manifest:
    """The pod of ``stage`` for the instance whose anchor pod is ``anchor``."""
    spec = model_pod_spec(shape, (stage,), (), settings)
    spec["affinity"] = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {LABEL_INSTANCE: anchor}}, "topologyKey": HOSTNAME_TOPOLOGY}
            ]
        }
    }
    labels: dict[str, Any] = stage_labels(shape) | {LABEL_INSTANCE: anchor, LABEL_STAGE: stage.hostname or ""}
    owner = {"apiVersion": "v1", "kind": "Pod", "name": anchor, "uid": anchor_uid, "controller": True}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": stage_pod_name(anchor, stage),
            "namespace": shape.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_TEMPLATE_HASH: stage_template_hash(shape, stage, settings)},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }
