"""Plan: the shape of each admitted variant (pure). Render builds the children from it.

Every aspect of a shape is chosen by a small table, so a feature adds a row, not a branch:
the multi-container router and the async agent are rows of :data:`SIDECARS`, serverless
variants a row of :data:`AUTOSCALERS` (KEDA) that render answers with its own module. Batch
(TransformJob) gets a plan of its own: it shares the pod, not the Endpoint's children.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from sageport import contract
from sageport.api.v1alpha1 import ContainerDefinition, InstanceTypeSpec, ServerlessConfig
from sageport.contract import MODEL_CACHE_ENV, SageMakerEnv
from sageport.operator.reconcile.resolve import ResolvedEndpoint, ResolvedVariant
from sageport.operator.render.images import ResolvedImage, fetched_code_url, resolve_image, with_code_dir
from sageport.operator.render.names import child_name
from sageport.operator.render.shape import (
    Autoscaler,
    ContainerResources,
    ModelContainer,
    OwnerRef,
    QueueScalingShape,
    RenderSettings,
    ServerlessShape,
    ServiceShape,
    Sidecar,
    TargetTrackingShape,
    TrackedMetric,
    VariantShape,
)
from sageport.operator.status import VariantPlan

DEFAULT_STARTUP_SECONDS = 240  # SageMaker's default window to pass the health check

# Direct multi-container mode: the router sidecar takes the pod's port (contract.CONTAINER_PORT)
# and this much of the instance; the model containers share the rest (see split_resources).
ROUTER_NAME = "sageport-router"
ROUTER_CPU_MILLIS = 100
ROUTER_MEMORY_MIB = 128
MAX_CONTAINERS = 15  # SageMaker's limit; the port range is cut into this many slices
# The async agent: inputs and outputs are spooled through files, so its memory stays small
# whatever their size (their size goes to the spool, an emptyDir).
AGENT_CPU_MILLIS = 100
AGENT_MEMORY_MIB = 256
AGENT_SPOOL = "/var/spool/sageport"


def is_direct(rv: ResolvedVariant) -> bool:
    """The Model is a Direct multi-container model: one pod per instance holds every container
    behind the router sidecar."""
    config = rv.model.spec.inference_execution_config
    return rv.model.spec.containers is not None and config is not None and config.mode == "Direct"


def is_serial(rv: ResolvedVariant) -> bool:
    """The Model is a Serial inference pipeline (SageMaker's mode for several containers unless
    Direct is asked for): one pod per stage per instance, all on one node; the first stage's
    pod (the anchor) also runs the router that chains them."""
    return len(rv.model.spec.containers or ()) > 1 and not is_direct(rv)


def container_ports(index: int) -> tuple[int, str]:
    """The ``SAGEMAKER_BIND_TO_PORT`` and ``SAGEMAKER_SAFE_PORT_RANGE`` of the ``index``-th
    container of a multi-container pod: its own slice of contract.MULTI_CONTAINER_PORTS (the
    pod's containers share one network namespace, so their extra ports must not collide)."""
    first, last = contract.MULTI_CONTAINER_PORTS
    width = (last - first + 1) // MAX_CONTAINERS
    start = first + index * width
    return start, f"{start + 1}-{start + width - 1}"


def _router(resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings) -> Sidecar | None:
    """The router: the pod's only served port. Direct: routes by TargetContainerHostname.
    Serial: runs the chain, the first stage in its own pod, the others at the addresses the
    operator writes on the pod (ANNOTATION_STAGES, read as the downward API file STAGES_FILE)."""
    serial = is_serial(rv)
    if not (is_direct(rv) or serial):
        return None
    hostnames = _hostnames(rv)
    labels = (f"--endpoint={resolved.endpoint.sagemaker_name}", f"--variant={rv.variant.variant_name}")
    if serial:
        targets = [f"--container={hostnames[0]}={container_ports(0)[0]}"]
        targets += [f"--stage={host}" for host in hostnames[1:]]
        targets.append(f"--stages-file={contract.STAGES_FILE}")
    else:
        targets = [f"--container={host}={container_ports(i)[0]}" for i, host in enumerate(hostnames)]
    return Sidecar(
        name=ROUTER_NAME,
        image=settings.runtime_image,
        args=("sageport-router", f"--port={contract.CONTAINER_PORT}", *labels, *targets),
        resources=ContainerResources(f"{ROUTER_CPU_MILLIS}m", f"{ROUTER_MEMORY_MIB}Mi"),
        port=contract.CONTAINER_PORT,
        port_name=contract.CONTAINER_PORT_NAME,
        ready_path=contract.PING_PATH,
        ready_failure_threshold=1 if serial else 3,
        annotation_files=((contract.STAGES_FILE, contract.ANNOTATION_STAGES),) if serial else (),
    )


_INCLUDE_RESPONSE = {"SUCCESS_NOTIFICATION_TOPIC": "success", "ERROR_NOTIFICATION_TOPIC": "error"}


def _async_agent(resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings) -> Sidecar | None:
    """The async inference agent: consumes the variant's stream with the config's concurrency,
    calls the pod's own served port, writes results to S3 with the model fetcher's credentials."""
    config = resolved.config.spec.async_inference_config
    if config is None or rv.shadow:
        return None
    client = config.client_config
    concurrency = (client.max_concurrent_invocations_per_instance if client else None) or 1
    notification = config.output_config.notification_config
    topics = []
    if notification is not None and notification.success_topic:
        topics.append(f"--success-topic={notification.success_topic}")
    if notification is not None and notification.error_topic:
        topics.append(f"--error-topic={notification.error_topic}")
    for topic in (notification.include_inference_response_in or []) if notification else []:
        topics.append(f"--include-response-in={_INCLUDE_RESPONSE[topic]}")
    endpoint = resolved.endpoint.sagemaker_name
    stream = contract.async_stream(resolved.namespace, endpoint, rv.variant.variant_name)
    environment = [*settings.storage_env]
    if settings.redis_url:
        environment.append((contract.REDIS_URL_ENV, settings.redis_url))
    return Sidecar(
        name=contract.ASYNC_AGENT_NAME,
        image=settings.runtime_image,
        args=(
            contract.ASYNC_AGENT_NAME,
            f"--stream={stream}",
            f"--endpoint={endpoint}",
            f"--variant={rv.variant.variant_name}",
            f"--concurrency={concurrency}",
            f"--spool-dir={AGENT_SPOOL}",
            *topics,
        ),
        environment=tuple(environment),
        resources=ContainerResources(f"{AGENT_CPU_MILLIS}m", f"{AGENT_MEMORY_MIB}Mi"),
        secret_env=(
            ((contract.REDIS_PASSWORD_ENV, settings.redis_secret, contract.REDIS_PASSWORD_KEY),)
            if settings.redis_secret
            else ()
        ),
        env_from_secrets=(settings.storage_secret,) if settings.storage_secret else (),
        scratch_dir=AGENT_SPOOL,
    )


# Containers the pod runs next to the model's, each added by a rule when its feature is used.
SIDECARS: tuple[Callable[[ResolvedEndpoint, ResolvedVariant, RenderSettings], Sidecar | None], ...] = (
    _router,
    _async_agent,
)

# Who owns the instance count: the first rule that holds; no autoscaler when none does.
AUTOSCALERS: tuple[tuple[Callable[[ResolvedVariant], bool], Autoscaler], ...] = (
    (lambda rv: rv.variant.serverless_config is not None, Autoscaler.KEDA),
    (lambda rv: rv.autoscaling is not None and rv.autoscaling.min_instance_count == 0, Autoscaler.KEDA_QUEUE),
    (
        lambda rv: (
            rv.autoscaling is not None
            and rv.autoscaling.target_tracking_scaling_policy_configuration is not None
        ),
        Autoscaler.KEDA_TARGET,
    ),
    (lambda rv: rv.autoscaling is not None, Autoscaler.HPA),
)

# An async variant at zero: KEDA polls its queue this often (so a call waits up to this long
# before the scale-up starts), and removes the pods once the queue has been empty this long.
QUEUE_POLLING_SECONDS = 5
QUEUE_IDLE_SECONDS = 300

# Serverless variants have no instance type: a pod gets memorySizeInMB of memory and CPU in
# proportion, one vCPU per SERVERLESS_MIB_PER_CPU (1024 MB: 500m ... 6144 MB: 3 CPUs). SageMaker
# documents only "proportional", no figure; 2 GiB per vCPU is its general-purpose ml.m5 ratio
# halved, so a small serverless pod still starts its model server in seconds.
SERVERLESS_MIB_PER_CPU = 2048
# A serverless pod takes this many concurrent calls: maxConcurrency / it is the most pods, and
# provisionedConcurrency / it (rounded up) the pods kept warm. SageMaker isolates every call;
# sageport's model server takes several at once, so one pod stands for a few concurrency units.
SERVERLESS_CALLS_PER_POD = 4
# Seconds without calls before idle serverless pods go, unless the Endpoint's annotation
# contract.ANNOTATION_SERVERLESS_IDLE_SECONDS says otherwise: SageMaker's idle period.
SERVERLESS_IDLE_SECONDS = 300


def serverless_instance(config: ServerlessConfig, settings: RenderSettings) -> InstanceTypeSpec:
    """What a serverless pod gets: memory, CPU in proportion, no GPU, the chart's placement."""
    cpu_millis = config.memory_size_in_mb * 1000 // SERVERLESS_MIB_PER_CPU
    return InstanceTypeSpec(
        cpu=f"{cpu_millis}m",
        memory=f"{config.memory_size_in_mb}Mi",
        gpu_count=0,
        node_selector=dict(settings.serverless_node_selector) or None,
        tolerations=list(settings.serverless_tolerations) or None,
    )


def serverless_idle_seconds(
    annotations: dict[str, str] | None,
    key: str = contract.ANNOTATION_SERVERLESS_IDLE_SECONDS,
    default: int = SERVERLESS_IDLE_SECONDS,
) -> int | str:
    """The Endpoint's idle period (annotation ``key``), or what is wrong with the annotation."""
    text = (annotations or {}).get(key)
    if text is None:
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= 86400:
        return f"annotation {key}={text!r} must be a whole number of seconds from 1 to 86400"
    return int(text)


def _fleet_metadata(resolved: ResolvedEndpoint, rv: ResolvedVariant) -> tuple[tuple[str, str], ...]:
    """The trigger metadata naming the variant's fleet, as the gateway's route table knows it."""
    return (
        (contract.SCALER_KEY_ENDPOINT, resolved.endpoint.sagemaker_name),
        (contract.SCALER_KEY_CONFIG, contract.config_label(resolved.config.sagemaker_name)),
        (contract.SCALER_KEY_VARIANT, rv.variant.variant_name),
    )


def _target_tracking(
    resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings
) -> TargetTrackingShape:
    scaling = rv.autoscaling
    assert scaling is not None
    policy = scaling.target_tracking_scaling_policy_configuration
    assert policy is not None
    return TargetTrackingShape(
        min_replicas=scaling.min_instance_count,
        max_replicas=scaling.max_instance_count,
        metric=TrackedMetric.CPU if policy.customized_metric_specification else TrackedMetric.INVOCATIONS,
        target_value=policy.target_value,
        scale_in_seconds=policy.scale_in_cooldown,
        scale_out_seconds=policy.scale_out_cooldown,
        disable_scale_in=policy.disable_scale_in,
        scaler_address=settings.scaler_address,
        trigger_metadata=_fleet_metadata(resolved, rv),
    )


def _serverless(resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings) -> ServerlessShape:
    config = rv.variant.serverless_config
    assert config is not None
    idle = serverless_idle_seconds(resolved.endpoint.metadata.annotations)
    provisioned = config.provisioned_concurrency or 0
    return ServerlessShape(
        min_replicas=math.ceil(provisioned / SERVERLESS_CALLS_PER_POD),
        max_replicas=math.ceil(config.max_concurrency / SERVERLESS_CALLS_PER_POD),
        idle_seconds=idle if isinstance(idle, int) else SERVERLESS_IDLE_SECONDS,
        calls_per_pod=SERVERLESS_CALLS_PER_POD,
        scaler_address=settings.scaler_address,
        trigger_metadata=_fleet_metadata(resolved, rv),
    )


def redis_address(url: str) -> tuple[str, int, bool]:
    """``host:port``, database index and TLS of a ``redis://`` or ``rediss://`` URL (the chart's
    asyncInference.redis.url), as KEDA's redis-streams scaler takes them."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"asyncInference.redis.url {url!r} must be redis://host:port[/db] or rediss://...")
    database = parts.path.strip("/")
    return (
        f"{parts.hostname}:{parts.port or 6379}",
        int(database) if database.isdigit() else 0,
        parts.scheme == "rediss",
    )


def _queue_scaling(
    resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings
) -> QueueScalingShape:
    scaling, config = rv.autoscaling, resolved.config.spec.async_inference_config
    assert scaling is not None
    assert config is not None
    if settings.redis_url is None:
        raise ValueError(
            "async variants need Redis (asyncInference.redis.url): the reconcile refuses them without it"
        )
    address, database, tls = redis_address(settings.redis_url)
    annotations = resolved.endpoint.metadata.annotations
    idle = serverless_idle_seconds(annotations, contract.ANNOTATION_ASYNC_IDLE_SECONDS, QUEUE_IDLE_SECONDS)
    client = config.client_config
    return QueueScalingShape(
        min_replicas=0,
        max_replicas=scaling.max_instance_count,
        idle_seconds=idle if isinstance(idle, int) else QUEUE_IDLE_SECONDS,
        polling_seconds=QUEUE_POLLING_SECONDS,
        stream=contract.async_stream(
            resolved.namespace, resolved.endpoint.sagemaker_name, rv.variant.variant_name
        ),
        group=contract.ASYNC_GROUP,
        address=address,
        database=database,
        tls=tls,
        password_secret=settings.redis_secret,
        # A pod takes maxConcurrentInvocationsPerInstance calls at once: a backlog of that many
        # per pod is what one more pod is for.
        backlog_per_pod=(client.max_concurrent_invocations_per_instance if client else None) or 1,
    )


@dataclass(frozen=True)
class EndpointPlan:
    config_name: str
    variants: tuple[VariantShape, ...]
    plans: tuple[VariantPlan, ...]  # what the status reports per variant


def image_of(container: ContainerDefinition, settings: RenderSettings) -> ResolvedImage:
    """The container's image after the image map, or sageport's own model server."""
    return resolve_image(container.image, settings.image_rules, settings.runtime_image)


def _model_url(container: ContainerDefinition) -> str | None:
    if container.model_data_url is not None:
        return container.model_data_url
    source = container.model_data_source
    return source.s3_data_source.s3_uri if source is not None else None


def is_multi_model(container: ContainerDefinition) -> bool:
    return container.mode == "MultiModel"


def _model_container(
    container: ContainerDefinition, settings: RenderSettings, it: InstanceTypeSpec
) -> ModelContainer:
    image = image_of(container, settings)
    environment = dict(container.environment or {})
    if not is_multi_model(container):
        ordered = tuple(sorted(environment.items()))
        code_url = fetched_code_url(ordered, image)
        return ModelContainer(
            name="model",
            image=image.resolved,
            environment=with_code_dir(ordered) if code_url else ordered,
            model_url=_model_url(container),
            resources=ContainerResources(it.cpu, it.memory, it.gpu_count),
            code_url=code_url,
        )
    # Multi-model: nothing is fetched before start; the server loads each TargetModel from the
    # prefix on its first call (SageMaker's platform does the same on the instance).
    cache = container.multi_model_config.model_cache_setting if container.multi_model_config else None
    environment[SageMakerEnv.MULTI_MODEL] = "true"
    if cache == "Disabled":
        environment[MODEL_CACHE_ENV] = cache
    return ModelContainer(
        name="model",
        image=image.resolved,
        environment=tuple(sorted(environment.items())),
        model_url=None,
        resources=ContainerResources(it.cpu, it.memory, it.gpu_count),
        model_prefix=_model_url(container),
    )


def _hostnames(rv: ResolvedVariant) -> list[str]:
    return [c.container_hostname or f"container-{i + 1}" for i, c in enumerate(rv.containers)]


def _container_names(hostnames: list[str]) -> list[str]:
    """Pod container names: the hostnames in lower case (they are DNS labels then), unless two
    collide or one takes a name sageport uses, then ``model-<index>``."""
    lowered = [h.lower() for h in hostnames]
    reserved = {ROUTER_NAME} | {
        f"{fetch}-{i}" for i in range(len(hostnames)) for fetch in ("model-fetch", "code-fetch")
    }
    if len(set(lowered)) == len(lowered) and not reserved & set(lowered):
        return lowered
    return [f"model-{i}" for i in range(len(hostnames))]


_MEMORY_UNITS: dict[str, float] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3}
_MEMORY_UNITS |= {"M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3, "": 1}


def cpu_millis(quantity: str) -> int:
    if quantity.endswith("m"):
        return int(float(quantity[:-1]))
    return int(float(quantity) * 1000)


def memory_bytes(quantity: str) -> int:
    number = quantity.rstrip("KMGTikm")
    return int(float(number) * _MEMORY_UNITS[quantity[len(number) :]])


def split_resources(it: InstanceTypeSpec, count: int) -> list[ContainerResources]:
    """The instance type's resources shared among ``count`` model containers and the router.

    The rule: the router gets ROUTER_CPU_MILLIS and ROUTER_MEMORY_MIB; CPU and memory left are
    split evenly (rounded down to a millicore and a MiB), each share also the container's memory
    limit; GPUs are whole devices, dealt in container order: each gets ``gpus // count``, and
    the first ``gpus % count`` one more (with fewer GPUs than containers, the first containers
    get one each and the rest none). The pod as a whole requests what the instance type has, so
    it fits wherever a single-container pod of that type fits.
    """
    cpu = max(cpu_millis(it.cpu) - ROUTER_CPU_MILLIS, count) // count
    memory = max(memory_bytes(it.memory) // 2**20 - ROUTER_MEMORY_MIB, count) // count
    whole, extra = divmod(it.gpu_count, count)
    return [ContainerResources(f"{cpu}m", f"{memory}Mi", whole + (i < extra)) for i in range(count)]


def _model_containers(
    rv: ResolvedVariant, settings: RenderSettings, it: InstanceTypeSpec
) -> tuple[ModelContainer, ...]:
    """Every model container of an instance, in order, each with its port slice and share of
    the instance (several containers), or the one container with all of it."""
    if not (is_direct(rv) or is_serial(rv)):
        return tuple(_model_container(c, settings, it) for c in rv.containers)
    hostnames = _hostnames(rv)
    names = _container_names(hostnames)
    shares = split_resources(it, len(rv.containers))
    containers = []
    for i, container in enumerate(rv.containers):
        port, safe_range = container_ports(i)
        containers.append(
            replace(
                _model_container(container, settings, it),
                name=names[i],
                resources=shares[i],
                port=port,
                port_name=None,
                safe_port_range=safe_range,
                hostname=hostnames[i],
                volume_suffix=f"-{i}",
            )
        )
    return tuple(containers)


def _autoscaler(rv: ResolvedVariant) -> Autoscaler:
    return next((kind for holds, kind in AUTOSCALERS if holds(rv)), Autoscaler.NONE)


def plan_variant(resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings) -> VariantShape:
    endpoint = resolved.endpoint
    serverless = rv.variant.serverless_config
    instance_type = serverless_instance(serverless, settings) if serverless else rv.instance_type
    if instance_type is None:
        raise ValueError(f"variant {rv.variant.variant_name} has no instance type: resolve refuses it")
    autoscaler = _autoscaler(rv)
    config_name = resolved.config.sagemaker_name
    containers = _model_containers(rv, settings, instance_type)
    # A Serial pipeline: the anchor pod runs the first stage, the others get pods of their own.
    stages = containers[1:] if is_serial(rv) else ()
    if stages:
        containers = containers[:1]
    name = child_name(endpoint.metadata.name, rv.variant.variant_name, config_name)
    return VariantShape(
        namespace=resolved.namespace,
        endpoint_object=endpoint.metadata.name,
        endpoint_name=endpoint.sagemaker_name,
        owner=OwnerRef(
            endpoint.api_version, endpoint.kind, endpoint.metadata.name, endpoint.metadata.uid or ""
        ),
        config_name=config_name,
        variant_name=rv.variant.variant_name,
        instance_type=instance_type,
        containers=containers,
        stages=stages,
        startup_seconds=rv.variant.container_startup_health_check_timeout_in_seconds
        or DEFAULT_STARTUP_SECONDS,
        download_seconds=rv.variant.model_data_download_timeout_in_seconds,
        volume_gib=rv.variant.volume_size_in_gb,
        replicas=rv.instance_count if autoscaler is Autoscaler.NONE else None,
        autoscaler=autoscaler,
        autoscaling=rv.autoscaling,
        serverless=_serverless(resolved, rv, settings) if serverless else None,
        queue_scaling=_queue_scaling(resolved, rv, settings) if autoscaler is Autoscaler.KEDA_QUEUE else None,
        target_tracking=(
            _target_tracking(resolved, rv, settings) if autoscaler is Autoscaler.KEDA_TARGET else None
        ),
        sidecars=tuple(s for rule in SIDECARS if (s := rule(resolved, rv, settings)) is not None),
        services=(ServiceShape(name),),
    )


def _summary(rv: ResolvedVariant, shape: VariantShape, settings: RenderSettings) -> VariantPlan:
    routing = rv.variant.routing_config
    return VariantPlan(
        name=shape.variant_name,
        weight=rv.weight,
        desired_instances=shape.replicas,
        images=tuple(image_of(c, settings) for c in rv.containers),  # a pipeline's stages included
        routing_strategy=routing.routing_strategy if routing else None,
        shadow=rv.shadow,
        container_hostnames=tuple(_hostnames(rv)) if is_direct(rv) else None,
        pipeline_hostnames=tuple(_hostnames(rv)) if is_serial(rv) else None,
        multi_model=any(is_multi_model(c) for c in rv.containers),
        serverless=rv.variant.serverless_config,
        model_setup_seconds=shape.startup_seconds if rv.variant.serverless_config else None,
        queued_at_zero=shape.queue_scaling is not None,
        queued=any(sidecar.name == contract.ASYNC_AGENT_NAME for sidecar in shape.sidecars),
    )


def with_capacity(plan: EndpointPlan, capacity: float) -> EndpointPlan:
    """``plan`` with ``capacity`` (0..1) of each production variant's instances, at least one:
    a rolling update's batch of the new fleet, or what is left of the old one. Autoscaled
    variants and shadows keep their count."""
    if capacity >= 1.0:
        return plan

    def scaled(count: int | None) -> int | None:
        return None if count is None else max(1, math.ceil(count * capacity - 1e-9))

    shapes = tuple(
        shape if plan_.shadow else replace(shape, replicas=scaled(shape.replicas))
        for shape, plan_ in zip(plan.variants, plan.plans, strict=True)
    )
    plans = tuple(
        p if p.shadow else replace(p, desired_instances=scaled(p.desired_instances)) for p in plan.plans
    )
    return replace(plan, variants=shapes, plans=plans)


def plan_endpoint(resolved: ResolvedEndpoint, settings: RenderSettings) -> EndpointPlan:
    """The shape of every variant of an admitted Endpoint."""
    shapes = tuple(plan_variant(resolved, rv, settings) for rv in resolved.variants)
    return EndpointPlan(
        config_name=resolved.config.sagemaker_name,
        variants=shapes,
        plans=tuple(
            _summary(rv, shape, settings) for rv, shape in zip(resolved.variants, shapes, strict=True)
        ),
    )
