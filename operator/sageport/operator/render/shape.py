"""What render builds from: the planned shape of one production variant (see reconcile/plan.py).

Each field is a decision the plan made; render turns decisions into manifests and decides
nothing. A new feature adds a field or an :class:`Autoscaler` kind here, a rule in the plan
and a builder module in render.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sageport import contract
from sageport.api.v1alpha1 import InstanceTypeSpec, Toleration, VariantAutoScaling

from .images import ImageRule
from .names import child_name

Manifest = dict[str, Any]


@dataclass(frozen=True)
class RenderSettings:
    """Operator-wide settings that shape every variant."""

    runtime_image: str = "sageport/runtime:latest"
    image_pull_policy: str = "IfNotPresent"
    storage_env: tuple[tuple[str, str], ...] = ()  # e.g. AWS_ENDPOINT_URL for s3:// artifacts
    storage_secret: str | None = None  # Secret with AWS credentials for the model fetcher
    tolerate_taints: tuple[str, ...] = ()  # taint keys every variant pod tolerates (NoSchedule)
    # SageMaker framework images -> the image that runs instead (the chart's operator.imageMap)
    image_rules: tuple[ImageRule, ...] = ()
    # Where serverless variants' pods run (they have no instance type): the chart's
    # serverless.nodeSelector and serverless.tolerations.
    serverless_node_selector: tuple[tuple[str, str], ...] = ()
    serverless_tolerations: tuple[Toleration, ...] = ()
    # host:port of the gateway's external-push scaler, as KEDA reaches it (chart: serverless.scalerAddress).
    scaler_address: str = ""
    # Async inference: Redis' URL and the Secret (in each Endpoint's namespace) holding its
    # password under contract.REDIS_PASSWORD_KEY, for the agent sidecar.
    redis_url: str | None = None
    redis_secret: str | None = None


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


class Autoscaler(StrEnum):
    """What owns a variant's instance count."""

    NONE = "none"  # the Deployment's replicas, from initialInstanceCount
    HPA = "HorizontalPodAutoscaler"  # CPU utilisation, from the Endpoint's spec.autoScaling
    KEDA = "ScaledObject"  # a serverless variant: KEDA, woken by the gateway (external-push)
    # An async variant with minInstanceCount 0: KEDA on its queue (redis-streams triggers).
    KEDA_QUEUE = "ScaledObject/redis-streams"
    # spec.autoScaling with targetTrackingScalingPolicyConfiguration: KEDA's HPA on that metric.
    KEDA_TARGET = "ScaledObject/target-tracking"


@dataclass(frozen=True)
class ServerlessShape:
    """A serverless variant's scaling: KEDA's ScaledObject is built from it."""

    min_replicas: int  # warm pods from provisionedConcurrency; 0 when unset
    max_replicas: int  # what maxConcurrency needs
    idle_seconds: int  # KEDA's cooldownPeriod: no calls this long, and idle pods go
    calls_per_pod: int  # the per-pod target of the gateway's concurrency metric (1<->N)
    scaler_address: str  # the gateway's external-push scaler
    trigger_metadata: tuple[tuple[str, str], ...]  # which fleet, as the gateway knows it


class TrackedMetric(StrEnum):
    INVOCATIONS = "SageMakerVariantInvocationsPerInstance"  # the gateway's count (external scaler)
    CPU = "CPUUtilization"  # the pods' CPU use (KEDA's cpu trigger)


@dataclass(frozen=True)
class TargetTrackingShape:
    """A target-tracked variant: KEDA's ScaledObject (and the HPA it makes) is built from it."""

    min_replicas: int  # minInstanceCount (MinCapacity)
    max_replicas: int  # maxInstanceCount (MaxCapacity)
    metric: TrackedMetric
    target_value: float  # per instance: calls per minute, or percent of the CPU request
    scale_in_seconds: int | None  # the HPA's scale-down stabilization window (None: its default)
    scale_out_seconds: int | None  # the scale-up one
    disable_scale_in: bool
    scaler_address: str  # the gateway's scaler (the invocation count)
    trigger_metadata: tuple[tuple[str, str], ...]  # which fleet, as the gateway knows it


@dataclass(frozen=True)
class QueueScalingShape:
    """An async variant scaled on its queue from zero: KEDA's ScaledObject (redis-streams
    triggers on the variant's stream and group) and its TriggerAuthentication are built from it."""

    min_replicas: int  # 0
    max_replicas: int  # spec.autoScaling's maxInstanceCount
    idle_seconds: int  # cooldownPeriod: an empty queue this long and the pods go
    polling_seconds: int  # how often KEDA reads the group (a call at zero waits up to this)
    stream: str
    group: str
    address: str  # host:port of Redis, as KEDA reaches it
    database: int
    tls: bool
    password_secret: str | None  # the namespace's Secret holding Redis' password (key password)
    backlog_per_pod: int  # the triggers' target per pod (1 <-> N)


@dataclass(frozen=True)
class ContainerResources:
    """What one container requests: its share of the instance type (see plan's split rule)."""

    cpu: str  # a Kubernetes quantity, e.g. "1800m"
    memory: str  # a Kubernetes quantity, e.g. "3686Mi"; also the limit
    gpus: int = 0  # of the instance type's gpu_resource_name


@dataclass(frozen=True)
class ModelContainer:
    """A container that serves a model on the SageMaker container contract."""

    name: str
    image: str
    environment: tuple[tuple[str, str], ...]  # the Model's environment, sorted
    model_url: str | None  # fetched into /opt/ml/model before the container starts
    resources: ContainerResources
    # Script mode's sourcedir.tar.gz (SAGEMAKER_SUBMIT_DIRECTORY), fetched into /opt/ml/code
    # before the container starts; the environment then names /opt/ml/code.
    code_url: str | None = None
    port: int = contract.CONTAINER_PORT  # SAGEMAKER_BIND_TO_PORT; probes go to it
    port_name: str | None = contract.CONTAINER_PORT_NAME  # the Service's target (single container)
    safe_port_range: str | None = None  # SAGEMAKER_SAFE_PORT_RANGE, "first-last"
    hostname: str | None = None  # containerHostname: what a Direct invocation targets
    # The suffix of this container's own volumes (model, tmp) and model fetch: "" for a single
    # container, "-<index>" when a pod holds several, so each gets its own /opt/ml/model.
    volume_suffix: str = ""
    # Multi-model: models load on first call from model_prefix, so the container itself reads S3
    # (the fetcher's credentials) into its own disk cache at /opt/ml/models, of this size limit.
    model_prefix: str | None = None


@dataclass(frozen=True)
class Sidecar:
    """A helper container next to the model containers (the multi-container router, the async agent)."""

    name: str
    image: str
    args: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    resources: ContainerResources | None = None
    port: int | None = None  # a named port (port_name) the readiness probe checks on ready_path
    port_name: str | None = None
    ready_path: str | None = None
    ready_failure_threshold: int = 3  # 1 for a pipeline's router: a dead stage leaves rotation at once
    # Annotations of its own pod the sidecar reads as files (downward API, kept current by the
    # kubelet): (path in the container, annotation). The pipeline router's stage addresses.
    annotation_files: tuple[tuple[str, str], ...] = ()
    # Environment variables from Secrets: (variable, Secret, key).
    secret_env: tuple[tuple[str, str, str], ...] = ()
    env_from_secrets: tuple[str, ...] = ()  # Secrets whose every key becomes a variable
    scratch_dir: str | None = None  # an emptyDir of its own mounted there (the async agent's spool)


@dataclass(frozen=True)
class ServiceShape:
    """A Service in front of the variant's pods."""

    name: str
    port: int = contract.CONTAINER_PORT
    target_port: str = contract.CONTAINER_PORT_NAME


@dataclass(frozen=True)
class VariantShape:
    """Everything one variant's children are built from."""

    namespace: str
    endpoint_object: str  # metadata.name of the Endpoint
    endpoint_name: str  # the SageMaker name invocations use
    owner: OwnerRef
    config_name: str  # the EndpointConfig (SageMaker name) whose fleet this is
    variant_name: str
    instance_type: InstanceTypeSpec
    containers: tuple[ModelContainer, ...]
    startup_seconds: int  # the time the model has to pass GET /ping
    replicas: int | None  # None when the autoscaler owns the count
    autoscaler: Autoscaler = Autoscaler.NONE
    autoscaling: VariantAutoScaling | None = None  # the HPA's bounds and target
    serverless: ServerlessShape | None = None  # the ScaledObject's (autoscaler KEDA)
    queue_scaling: QueueScalingShape | None = None  # the ScaledObject's (autoscaler KEDA_QUEUE)
    target_tracking: TargetTrackingShape | None = None  # the ScaledObject's (autoscaler KEDA_TARGET)
    sidecars: tuple[Sidecar, ...] = ()
    download_seconds: int | None = None  # the time the model fetch has (modelDataDownloadTimeoutInSeconds)
    volume_gib: int | None = None  # volumeSizeInGB: the size limit of the model volumes
    services: tuple[ServiceShape, ...] = ()
    # A Serial pipeline's further stages, in order: one pod each per instance, on the node of
    # the instance's anchor pod (this variant's Deployment pod, which runs the first stage in
    # ``containers`` and the router). Empty for every other variant.
    stages: tuple[ModelContainer, ...] = ()

    @property
    def name(self) -> str:
        return child_name(self.endpoint_object, self.variant_name, self.config_name)


@dataclass(frozen=True)
class TransformShape:
    """Everything a TransformJob's indexed Job is built from (see reconcile/transform_plan.py)."""

    namespace: str
    transform_object: str  # metadata.name of the TransformJob
    transform_job_name: str  # SageMaker's TransformJobName
    owner: OwnerRef
    name: str  # the Job's
    uid: str  # the TransformJob's: the driver marks its outputs with it
    instance_type: InstanceTypeSpec
    instance_count: int
    model: ModelContainer  # the Model's container; environment: the Model's, then the job's, then SAGEMAKER_*
    driver_resources: ContainerResources  # the driver's request; the rest of the instance is the model's
    driver_memory_limit: str  # the driver holds whole objects: it may use up to the instance's memory
    spec_json: str  # the TransformJob's spec (ACK names, JSON) for the driver
    download_seconds: int | None = None
    stopped: bool = False  # StopTransformJob: the Job is suspended, which deletes its pods
    retries_per_instance: int = 3  # runs of one instance's share that may die before it fails
