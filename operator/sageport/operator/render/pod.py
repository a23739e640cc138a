"""The pod of a variant: model containers on the SageMaker container contract, sidecars, the
model fetch, resources and placement from the instance type, restricted security."""

from __future__ import annotations

from typing import Any

from sageport import contract
from sageport.api.v1alpha1 import InstanceTypeSpec
from sageport.contract import SageMakerEnv

from .names import variant_selector
from .shape import ContainerResources, ModelContainer, RenderSettings, Sidecar, VariantShape

_PROBE_PERIOD = 2
_SERVERLESS_PROBE_PERIOD = 1
SOURCE_DIR = "/mnt/model-source"
_FETCH_VOLUME = "model"
_SOURCE_VOLUME = "model-source"
_CODE_VOLUME = "code"
_POD_INFO_VOLUME = "pod-info"
_MODELS_VOLUME = "models"  # a multi-model container's disk cache (MULTI_MODEL_ROOT)


def restricted_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def root_security_context() -> dict[str, Any]:
    """Pod Security ``baseline``: root allowed; still no privilege escalation, no capabilities."""
    return {**restricted_security_context(), "runAsNonRoot": False, "runAsUser": 0}


def _resources(share: ContainerResources, it: InstanceTypeSpec) -> dict[str, Any]:
    requests = {"cpu": share.cpu, "memory": share.memory}
    limits: dict[str, str] = {"memory": share.memory}  # no CPU limit: throttling hurts tail latency
    if share.gpus:
        requests[it.gpu_resource_name] = str(share.gpus)
        limits[it.gpu_resource_name] = str(share.gpus)
    return {"requests": requests, "limits": limits}


def node_placement(it: InstanceTypeSpec, settings: RenderSettings) -> dict[str, Any]:
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


def _model_source(url: str, suffix: str = "") -> tuple[str, dict[str, Any] | None]:
    """The URL the fetcher reads, and the volume it needs to read it (for pvc:// and file://).

    ``pvc://claim/path`` mounts the claim read-only; ``file:///path`` mounts the node's path
    (hostPath: fine for local clusters, refused where restricted Pod Security is enforced).
    """
    if url.startswith("pvc://"):
        claim, _, path = url.removeprefix("pvc://").partition("/")
        volume = {
            "name": _SOURCE_VOLUME + suffix,
            "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
        }
        return f"file://{SOURCE_DIR}/{path}", volume
    if url.startswith("file://"):
        path = url.removeprefix("file://")
        directory, _, leaf = path.rstrip("/").rpartition("/")
        volume = {
            "name": _SOURCE_VOLUME + suffix,
            "hostPath": {"path": directory or "/", "type": "Directory"},
        }
        return f"file://{SOURCE_DIR}/{leaf}", volume
    return url, None


def _fetch_container(
    name: str,
    url: str,
    destination: tuple[str, str],  # (volume, mount path): where the artifact is unpacked
    mounts_source: bool,
    settings: RenderSettings,
    timeout_seconds: int | None,
    suffix: str = "",
) -> dict[str, Any]:
    volume, path = destination
    mounts: list[dict[str, Any]] = [{"name": volume + suffix, "mountPath": path}]
    if mounts_source:
        mounts.append({"name": _SOURCE_VOLUME + suffix, "mountPath": SOURCE_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": name + suffix,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [
            "python",
            "-m",
            "sageport.storage",
            "fetch",
            url,
            path,
            *(["--timeout", str(timeout_seconds)] if timeout_seconds else []),
        ],
        "env": [{"name": k, "value": v} for k, v in settings.storage_env],
        "volumeMounts": mounts,
        "securityContext": restricted_security_context(),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }
    if settings.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.storage_secret}}]
    return container


def model_container(
    model: ModelContainer,
    it: InstanceTypeSpec,
    startup_seconds: int,
    settings: RenderSettings,
    volume_gib: int | None = None,
    period: int = _PROBE_PERIOD,
) -> dict[str, Any]:
    """A model container on the SageMaker contract (``serve``, its port, /opt/ml/model, probes on
    /ping every ``period`` seconds)."""
    env = [{"name": k, "value": v} for k, v in model.environment]
    env.append({"name": SageMakerEnv.BIND_TO_PORT, "value": str(model.port)})
    if model.safe_port_range is not None:
        env.append({"name": SageMakerEnv.SAFE_PORT_RANGE, "value": model.safe_port_range})
    env.append({"name": SageMakerEnv.MODEL_DIR, "value": contract.MODEL_DIR})
    if model.model_prefix is not None and model.loads_models:
        env.append({"name": contract.MODEL_PREFIX_ENV, "value": model.model_prefix})
        if volume_gib is not None:  # leave a fifth for the download that makes room
            env.append({"name": contract.MODEL_DISK_BYTES_ENV, "value": str(volume_gib * 2**30 * 4 // 5)})
        env += [{"name": k, "value": v} for k, v in settings.storage_env]
    ping = {
        "httpGet": {"path": contract.PING_PATH, "port": model.port_name or model.port},
        "timeoutSeconds": 2,
    }
    port: dict[str, Any] = {"containerPort": model.port, "protocol": "TCP"}
    if model.port_name is not None:
        port = {"name": model.port_name, **port}
    suffix = model.volume_suffix
    mounts = [
        {"name": _FETCH_VOLUME + suffix, "mountPath": contract.MODEL_DIR, "readOnly": True},
        {"name": "tmp" + suffix, "mountPath": "/tmp"},
    ]
    if model.code_url is not None:
        mounts.append({"name": _CODE_VOLUME + suffix, "mountPath": contract.CODE_DIR, "readOnly": True})
    extra: dict[str, Any] = {}
    if model.model_prefix is not None:
        mounts.append({"name": _MODELS_VOLUME + suffix, "mountPath": contract.MULTI_MODEL_ROOT})
        if settings.storage_secret and model.loads_models:
            extra["envFrom"] = [{"secretRef": {"name": settings.storage_secret}}]
    return {
        "name": model.name,
        "image": model.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["serve"],
        "ports": [port],
        "env": env,
        "resources": _resources(model.resources, it),
        "volumeMounts": mounts,
        **extra,
        "startupProbe": {
            **ping,
            "periodSeconds": period,
            "failureThreshold": startup_seconds // period,
        },
        "readinessProbe": {**ping, "periodSeconds": period, "failureThreshold": 2},
        "livenessProbe": {**ping, "periodSeconds": 10, "failureThreshold": 6},
        "securityContext": root_security_context() if model.run_as_root else restricted_security_context(),
    }


def _sidecar_container(sidecar: Sidecar, shape: VariantShape, settings: RenderSettings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": sidecar.name,
        "image": sidecar.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": list(sidecar.args),
        "env": [{"name": k, "value": v} for k, v in sidecar.environment],
        "securityContext": restricted_security_context(),
    }
    container["env"] += [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for name, secret, key in sidecar.secret_env
    ]
    if sidecar.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": name}} for name in sidecar.env_from_secrets]
    if sidecar.resources is not None:
        container["resources"] = _resources(sidecar.resources, shape.instance_type)
    if sidecar.port is not None:
        port: dict[str, Any] = {"containerPort": sidecar.port, "protocol": "TCP"}
        container["ports"] = [{"name": sidecar.port_name, **port} if sidecar.port_name else port]
    if sidecar.port is not None and sidecar.ready_path is not None:
        probe = {"httpGet": {"path": sidecar.ready_path, "port": sidecar.port_name or sidecar.port}}
        container["readinessProbe"] = {**probe, "timeoutSeconds": 3, "periodSeconds": _PROBE_PERIOD}
        if sidecar.ready_failure_threshold != 3:  # Kubernetes' default
            container["readinessProbe"]["failureThreshold"] = sidecar.ready_failure_threshold
        container["livenessProbe"] = {
            "tcpSocket": {"port": sidecar.port_name or sidecar.port},
            "periodSeconds": 10,
            "failureThreshold": 6,
        }
    mounts: list[dict[str, Any]] = []
    if sidecar.annotation_files:
        directories = {path.rpartition("/")[0] for path, _ in sidecar.annotation_files}
        mounts += [
            {"name": _POD_INFO_VOLUME, "mountPath": directory, "readOnly": True}
            for directory in sorted(directories)
        ]
    if sidecar.scratch_dir is not None:
        mounts.append({"name": f"{sidecar.name}-scratch", "mountPath": sidecar.scratch_dir})
    if sidecar.mounts_models:
        mounts.append({"name": _MODELS_VOLUME, "mountPath": contract.MULTI_MODEL_ROOT})
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _pod_info_volume(sidecars: tuple[Sidecar, ...]) -> list[dict[str, Any]]:
    """The downward API volume of the pod's own annotations that sidecars read as files (the
    kubelet rewrites them when the annotation changes)."""
    items = [
        {"path": path.rpartition("/")[2], "fieldRef": {"fieldPath": f"metadata.annotations['{annotation}']"}}
        for sidecar in sidecars
        for path, annotation in sidecar.annotation_files
    ]
    return [{"name": _POD_INFO_VOLUME, "downwardAPI": {"items": items}}] if items else []


def pod_spec(shape: VariantShape, settings: RenderSettings) -> dict[str, Any]:
    """The pod template's spec. Each model container has its own model volume, fetch and /tmp
    (named with its ``volume_suffix``); a multi-container pod adds the router sidecar."""
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": variant_selector(shape)},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    spec = model_pod_spec(shape, shape.containers, shape.sidecars, settings)
    spec["topologySpreadConstraints"] = spread
    return spec


def model_pod_spec(
    shape: VariantShape,
    models: tuple[ModelContainer, ...],
    sidecars: tuple[Sidecar, ...],
    settings: RenderSettings,
) -> dict[str, Any]:
    """A pod of ``models`` and ``sidecars`` on the variant's instance type, without placement
    rules between pods (the caller adds spread or affinity)."""
    # A serverless pod is started for calls the gateway holds: the kubelet's shortest period, so
    # it turns Ready at most 1 s after its server answers /ping.
    period = _SERVERLESS_PROBE_PERIOD if shape.serverless is not None else _PROBE_PERIOD
    containers = [
        model_container(c, shape.instance_type, shape.startup_seconds, settings, shape.volume_gib, period)
        for c in models
    ]
    containers += [_sidecar_container(s, shape, settings) for s in sidecars]
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,  # SageMaker sends SIGKILL 30 s after SIGTERM
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        **node_placement(shape.instance_type, settings),
    }
    fetches, volumes = model_fetches(models, shape.download_seconds, settings, shape.volume_gib)
    scratch = [{"name": f"{s.name}-scratch", "emptyDir": {}} for s in sidecars if s.scratch_dir is not None]
    spec["volumes"] = volumes + _pod_info_volume(sidecars) + scratch
    if fetches:
        spec["initContainers"] = fetches
    return spec


def model_fetches(
    models: tuple[ModelContainer, ...],
    download_seconds: int | None,
    settings: RenderSettings,
    volume_gib: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The model fetch init containers (one per model with an artifact) and the models' volumes:
    each model's /opt/ml/model (of volumeSizeInGB) and /tmp, what a pvc:// or file:// artifact is
    read from, and a multi-model container's disk cache."""
    volumes = [
        volume
        for c in models
        for volume in (
            {"name": _FETCH_VOLUME + c.volume_suffix, "emptyDir": _size_limit(volume_gib)},
            {"name": "tmp" + c.volume_suffix, "emptyDir": {}},
        )
    ]
    fetches = []
    for model in models:
        suffix = model.volume_suffix
        if model.model_url is not None:
            fetched, volume = _model_source(model.model_url, suffix)
            fetches.append(
                _fetch_container(
                    "model-fetch",
                    fetched,
                    (_FETCH_VOLUME, contract.MODEL_DIR),
                    volume is not None,
                    settings,
                    download_seconds,
                    suffix,
                )
            )
            if volume is not None:
                volumes.append(volume)
        if (
            model.code_url is not None
        ):  # script mode's sourcedir.tar.gz, as the framework container fetches it
            fetches.append(
                _fetch_container(
                    "code-fetch",
                    model.code_url,
                    (_CODE_VOLUME, contract.CODE_DIR),
                    False,
                    settings,
                    download_seconds,
                    suffix,
                )
            )
            volumes.append({"name": _CODE_VOLUME + suffix, "emptyDir": {}})
    for model in models:
        if model.model_prefix is not None:
            volumes.append(
                {"name": _MODELS_VOLUME + model.volume_suffix, "emptyDir": _size_limit(volume_gib)}
            )
    return fetches, volumes


def _size_limit(gib: int | None) -> dict[str, Any]:
    """volumeSizeInGB: the instance's storage for model data (the multi-model disk cache)."""
    return {} if gib is None else {"sizeLimit": f"{gib}Gi"}
