"""Serial pipelines: what the operator does for each instance, from the pods that exist (pure).

An instance is an anchor pod (the variant's Deployment pod: first stage and router) and one pod
per further stage. For each anchor the scheduler has placed, the operator:

1. labels it ``sageport.io/instance=<its name>``: the label its stage pods' required pod
   affinity names, so they can only go to its node;
2. creates each missing stage pod (owned by the anchor, so they go with it), and replaces a
   stage pod that failed for good or runs an old template;
3. writes on it where its stages answer (``sageport.io/stages: host=ip:port,...``, pod IPs on
   its node), which the router reads through a downward API file. A stage pod that is gone,
   terminating or not yet addressed is left out: the router's /ping then fails, and the anchor
   (the instance) leaves the Service until the stage is back.

Anchors not scheduled yet get nothing: their stages would have no node to follow. Stage pods of
an anchor that is gone are collected by Kubernetes (ownerReference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sageport.contract import (
    ANNOTATION_STAGES,
    ANNOTATION_TEMPLATE_HASH,
    LABEL_INSTANCE,
    LABEL_ROLE,
    LABEL_STAGE,
    LABEL_VARIANT,
    ROLE_INSTANCE,
)
from sageport.operator.render.shape import Manifest, RenderSettings, VariantShape
from sageport.operator.render.stage import stage_pod, stage_pod_name, stage_template_hash

Pod = Mapping[str, Any]


@dataclass
class PipelineActions:
    """What to do for one variant's instances, in order: patches of anchors (name -> merge
    patch), stage pods to create, stage pods to delete (names)."""

    patches: dict[str, Manifest] = field(default_factory=dict)
    create: list[Manifest] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.patches or self.create or self.delete)


def _meta(pod: Pod) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def _labels(pod: Pod) -> Mapping[str, str]:
    return _meta(pod).get("labels") or {}


def _terminating(pod: Pod) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def _failed(pod: Pod) -> bool:
    """A pod that will not run again (evicted, or its restartPolicy gave up)."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def stage_addresses(stages: Mapping[str, Pod], ports: Mapping[str, int]) -> str:
    """``host=ip:port,...`` of the stages that can be called: not terminating, with a pod IP."""
    parts = []
    for host, pod in stages.items():
        ip = (pod.get("status") or {}).get("podIP")
        if ip and not _terminating(pod) and not _failed(pod):
            parts.append(f"{host}={f'[{ip}]' if ':' in ip else ip}:{ports[host]}")
    return ",".join(parts)


def pipeline_actions(shape: VariantShape, pods: Iterable[Pod], settings: RenderSettings) -> PipelineActions:
    """Bring every placed instance of ``shape``'s fleet to: labelled anchor, one live stage pod
    per further stage, and the anchor annotated with their addresses."""
    actions = PipelineActions()
    if not shape.stages:
        return actions
    anchors: list[Pod] = []
    stage_pods: dict[tuple[str, str], Pod] = {}
    for pod in pods:
        labels = _labels(pod)
        if labels.get(LABEL_VARIANT) != shape.variant_name:
            continue
        if labels.get(LABEL_ROLE) == ROLE_INSTANCE:
            anchors.append(pod)
        elif LABEL_STAGE in labels and LABEL_INSTANCE in labels:
            stage_pods[labels[LABEL_INSTANCE], labels[LABEL_STAGE]] = pod
    ports = {stage.hostname or "": stage.port for stage in shape.stages}
    hashes = {stage.hostname: stage_template_hash(shape, stage, settings) for stage in shape.stages}
    for anchor in anchors:
        meta = _meta(anchor)
        name = str(meta.get("name"))
        if _terminating(anchor) or not (anchor.get("spec") or {}).get("nodeName"):
            continue
        live: dict[str, Pod] = {}
        for stage in shape.stages:
            host = stage.hostname or ""
            found = stage_pods.get((name, host))
            if found is None:
                actions.create.append(stage_pod(shape, stage, name, str(meta.get("uid") or ""), settings))
                continue
            pod = found
            if _terminating(pod):
                continue  # its replacement is created once it is gone (the name is taken until then)
            stale = (_meta(pod).get("annotations") or {}).get(ANNOTATION_TEMPLATE_HASH) != hashes[host]
            if _failed(pod) or stale:
                actions.delete.append(stage_pod_name(name, stage))
                continue
            live[host] = pod
        patch: dict[str, Any] = {}
        if _labels(anchor).get(LABEL_INSTANCE) != name:
            patch["labels"] = {LABEL_INSTANCE: name}
        addresses = stage_addresses(live, ports)
        if (meta.get("annotations") or {}).get(ANNOTATION_STAGES, "") != addresses:
            patch["annotations"] = {ANNOTATION_STAGES: addresses}
        if patch:
            actions.patches[name] = {"metadata": patch}
    return actions
