"""One production variant -> Deployment, Service, PodDisruptionBudget and (optionally) HPA."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sageport.api.v1alpha1 import (
    ContainerDefinition,
    InstanceTypeSpec,
    ProductionVariant,
    VariantAutoScaling,
)

from .names import LABEL_ENDPOINT, child_name, common_labels, selector_labels

Manifest = dict[str, Any]

MODEL_DIR = "/opt/ml/model"
SERVING_PORT = 8080
DEFAULT_STARTUP_SECONDS = 240  # SageMaker's default window to pass /ping
_PROBE_PERIOD = 2
FIELD_MANAGER = "sageport-operator"


@dataclass(frozen=True)
class RenderSettings:
    """Operator-wide settings that shape every variant."""

    runtime_image: str = "sageport/runtime:latest"
    image_pull_policy: str = "IfNotPresent"
    storage_env: tuple[tuple[str, str], ...] = ()  # e.g. AWS_ENDPOINT_URL for s3:// artifacts
    storage_secret: str | None = None  # Secret with AWS credentials for the model fetcher
    tolerate_taints: tuple[str, ...] = ()  # taint keys every variant pod tolerates (NoSchedule)


@dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str

    def to_k8s(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant with every reference resolved: what render needs, nothing more."""

    namespace: str
    endpoint_object: str  # metadata.name of the Endpoint
    endpoint_name: str  # the SageMaker name invocations use
    owner: OwnerRef
    variant: ProductionVariant
    container: ContainerDefinition
    instance_type_name: str
    instance_type: InstanceTypeSpec
    autoscaling: VariantAutoScaling | None = None
    config_name: str = ""
    model_name: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return child_name(self.endpoint_object, self.variant.variant_name)


def variant_children(rv: ResolvedVariant, settings: RenderSettings) -> list[Manifest]:
    """Every child object of the variant, in apply order."""
    children = [deployment(rv, settings), service(rv), pod_disruption_budget(rv)]
    if rv.autoscaling is not None:
        children.append(horizontal_pod_autoscaler(rv))
    return children


def _metadata(rv: ResolvedVariant) -> dict[str, Any]:
    return {
        "name": rv.name,
        "namespace": rv.namespace,
        "labels": common_labels(rv.endpoint_object, rv.endpoint_name, rv.variant.variant_name),
        "ownerReferences": [rv.owner.to_k8s()],
    }


def image_of(rv: ResolvedVariant, settings: RenderSettings) -> str:
    return rv.container.image or settings.runtime_image


def deployment(rv: ResolvedVariant, settings: RenderSettings) -> Manifest:
    selector = selector_labels(rv.endpoint_object, rv.variant.variant_name)
    pod_labels = common_labels(rv.endpoint_object, rv.endpoint_name, rv.variant.variant_name)
    pod_spec = _pod_spec(rv, settings, selector)
    template_hash = hashlib.sha256(json.dumps(pod_spec, sort_keys=True).encode()).hexdigest()[:16]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {"sageport.io/template-hash": template_hash},
            },
            "spec": pod_spec,
        },
    }
    if rv.autoscaling is None:
        spec["replicas"] = rv.variant.initial_instance_count or 1
    # With an autoscaler the replica count is left out, so the HPA's writes are never undone.
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(rv), "spec": spec}


def _restricted_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(it: InstanceTypeSpec) -> dict[str, Any]:
    requests = {"cpu": it.cpu, "memory": it.memory}
    limits: dict[str, str] = {"memory": it.memory}  # no CPU limit: throttling hurts tail latency
    if it.gpu_count:
        requests[it.gpu_resource_name] = str(it.gpu_count)
        limits[it.gpu_resource_name] = str(it.gpu_count)
    return {"requests": requests, "limits": limits}


def _node_placement(rv: ResolvedVariant, settings: RenderSettings) -> dict[str, Any]:
    it = rv.instance_type
    node_selector = dict(it.node_selector or {})
    if it.gpu_product:
        node_selector.setdefault("nvidia.com/gpu.product", it.gpu_product)
    tolerations = [t.to_k8s() for t in it.tolerations or []]
    tolerations += [
        {"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in settings.tolerate_taints
    ]
    placement: dict[str, Any] = {}
    if node_selector:
        placement["nodeSelector"] = node_selector
    if tolerations:
        placement["tolerations"] = tolerations
    return placement


SOURCE_DIR = "/mnt/model-source"


def _model_source(rv: ResolvedVariant) -> tuple[str, dict[str, Any] | None] | None:
    """The URL the fetcher reads, and the volume it needs to read it (for pvc:// and file://).

    ``pvc://claim/path`` mounts the claim read-only; ``file:///path`` mounts the node's path
    (hostPath: fine for local clusters, refused where restricted Pod Security is enforced).
    """
    url = rv.container.model_data_url
    source = rv.container.model_data_source
    if url is None and source is not None:
        url = source.s3_data_source.s3_uri
    if url is None:
        return None
    if url.startswith("pvc://"):
        claim, _, path = url.removeprefix("pvc://").partition("/")
        volume = {"name": "model-source", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        return f"file://{SOURCE_DIR}/{path}", volume
    if url.startswith("file://"):
        path = url.removeprefix("file://")
        directory, _, leaf = path.rstrip("/").rpartition("/")
        volume = {"name": "model-source", "hostPath": {"path": directory or "/", "type": "Directory"}}
        return f"file://{SOURCE_DIR}/{leaf}", volume
    return url, None


def _model_fetch_container(url: str, mounts_source: bool, settings: RenderSettings) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": "model", "mountPath": MODEL_DIR}]
    if mounts_source:
        mounts.append({"name": "model-source", "mountPath": SOURCE_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": "model-fetch",
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "sageport.storage", "fetch", url, MODEL_DIR],
        "env": [{"name": k, "value": v} for k, v in settings.storage_env],
        "volumeMounts": mounts,
        "securityContext": _restricted_security_context(),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }
    if settings.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.storage_secret}}]
    return container


def _pod_spec(rv: ResolvedVariant, settings: RenderSettings, selector: dict[str, str]) -> dict[str, Any]:
    startup = rv.variant.container_startup_health_check_timeout_in_seconds or DEFAULT_STARTUP_SECONDS
    env = [{"name": k, "value": v} for k, v in sorted((rv.container.environment or {}).items())]
    env += [
        {"name": "SAGEMAKER_BIND_TO_PORT", "value": str(SERVING_PORT)},
        {"name": "SM_MODEL_DIR", "value": MODEL_DIR},
    ]
    ping = {"httpGet": {"path": "/ping", "port": "http"}, "timeoutSeconds": 2}
    model_container = {
        "name": "model",
        "image": image_of(rv, settings),
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": _resources(rv.instance_type),
        "volumeMounts": [
            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "startupProbe": {
            **ping,
            "periodSeconds": _PROBE_PERIOD,
            "failureThreshold": startup // _PROBE_PERIOD,
        },
        "readinessProbe": {**ping, "periodSeconds": _PROBE_PERIOD, "failureThreshold": 2},
        "livenessProbe": {**ping, "periodSeconds": 10, "failureThreshold": 6},
        "securityContext": _restricted_security_context(),
    }
    source = _model_source(rv)
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,  # SageMaker sends SIGKILL 30 s after SIGTERM
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [model_container],
        "volumes": [{"name": "model", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        "topologySpreadConstraints": spread,
        **_node_placement(rv, settings),
    }
    if source is not None:
        url, volume = source
        spec["initContainers"] = [_model_fetch_container(url, volume is not None, settings)]
        if volume is not None:
            spec["volumes"].append(volume)
    return spec


def service(rv: ResolvedVariant) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(rv),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(rv.endpoint_object, rv.variant.variant_name),
            "ports": [{"name": "http", "port": SERVING_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(rv: ResolvedVariant) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(rv),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(rv.endpoint_object, rv.variant.variant_name)},
        },
    }


def horizontal_pod_autoscaler(rv: ResolvedVariant) -> Manifest:
    scaling = rv.autoscaling
    assert scaling is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(rv),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": rv.name},
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


__all__ = ["FIELD_MANAGER", "LABEL_ENDPOINT", "Manifest", "OwnerRef", "RenderSettings", "ResolvedVariant"]
