"""Admit: one table of what sageport does with every field of an Endpoint and what it references.

Each row names a field and one verdict:

- ``ACTED``: the operator (or the gateway) does what SageMaker does with it.
- ``NOT_SUPPORTED``: refused: ``Ready=False``, reason ``NotSupported``, the message names the field.
- ``NOT_ACTED_YET``: accepted, but nothing happens yet. Never silently: the Endpoint gets a
  Warning event and its Ready message lists the field.
- ``NO_EFFECT``: accepted for ACK compatibility and without effect by design (the row says
  why); not warned, since every ACK manifest would warn.

A unit test checks that every field of the API models below has a row, so a new field cannot
be ignored without a decision. Shipping a feature is moving its row to ``ACTED`` (and giving
the plan its shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel

from sageport import contract
from sageport.api.v1alpha1 import (
    ContainerDefinition,
    DeploymentConfig,
    EndpointConfigSpec,
    EndpointSpec,
    ModelSpec,
    ProductionVariant,
    RollingUpdatePolicy,
)
from sageport.operator.pod_security import root_problem
from sageport.operator.reconcile.plan import QUEUE_IDLE_SECONDS, serverless_idle_seconds
from sageport.operator.reconcile.resolve import ResolvedEndpoint
from sageport.operator.status import Problem

NOT_SUPPORTED = "NotSupported"


class Verdict(Enum):
    ACTED = "acted on"
    NOT_SUPPORTED = "not supported"
    NOT_ACTED_YET = "accepted, not acted on yet"
    NO_EFFECT = "no effect by design"


class Scope(Enum):
    """Where a field lives."""

    ENDPOINT = "Endpoint spec"
    DEPLOYMENT_CONFIG = "Endpoint deploymentConfig"
    ROLLING_UPDATE = "Endpoint deploymentConfig.rollingUpdatePolicy"
    ENDPOINT_CONFIG = "EndpointConfig spec"
    VARIANT = "EndpointConfig productionVariants[]"
    MODEL = "Model spec"
    CONTAINER = "Model primaryContainer / containers[]"


# The API model of each scope: a row's field is one of its attributes.
SPEC_MODELS: dict[Scope, type[BaseModel]] = {
    Scope.ENDPOINT: EndpointSpec,
    Scope.DEPLOYMENT_CONFIG: DeploymentConfig,
    Scope.ROLLING_UPDATE: RollingUpdatePolicy,
    Scope.ENDPOINT_CONFIG: EndpointConfigSpec,
    Scope.VARIANT: ProductionVariant,
    Scope.MODEL: ModelSpec,
    Scope.CONTAINER: ContainerDefinition,
}


@dataclass(frozen=True)
class Row:
    scope: Scope
    field: str  # the Python attribute of the scope's model; messages use its wire (ACK) name
    verdict: Verdict
    note: str = ""  # NOT_SUPPORTED: what to do instead; NO_EFFECT: why it has none
    applies: Callable[[Any], bool] | None = None  # the verdict holds only when this is true of the value
    # ... and only when this is true of the whole spec object (a verdict that depends on another field)
    when: Callable[[Any], bool] | None = None

    @property
    def wire_name(self) -> str:
        info = SPEC_MODELS[self.scope].model_fields[self.field]
        return info.alias or self.field


def _many(containers: Any) -> bool:
    return containers is not None and len(containers) > 1


def _not_s3(capture: Any) -> bool:
    return not str(capture.destination_s3_uri).startswith("s3://")


def _async_invalid(config: Any) -> bool:
    output = config.output_config
    paths = [output.s3_output_path, *([output.s3_failure_path] if output.s3_failure_path else [])]
    if not all(path and str(path).startswith("s3://") and len(str(path)) > 5 for path in paths):
        return True
    notification = output.notification_config
    topics = [notification.success_topic, notification.error_topic] if notification else []
    return not all(str(topic).startswith(("http://", "https://")) for topic in topics if topic)


S, V = Scope, Verdict
TABLE: tuple[Row, ...] = (
    # Endpoint
    Row(S.ENDPOINT, "endpoint_name", V.ACTED),
    Row(S.ENDPOINT, "endpoint_config_name", V.ACTED),
    Row(S.ENDPOINT, "auto_scaling", V.ACTED),
    Row(S.ENDPOINT, "desired_weights_and_capacities", V.ACTED),
    Row(S.ENDPOINT, "deployment_config", V.ACTED),
    # Endpoint deploymentConfig
    Row(S.DEPLOYMENT_CONFIG, "blue_green_update_policy", V.ACTED),
    Row(S.DEPLOYMENT_CONFIG, "rolling_update_policy", V.ACTED),
    Row(S.ROLLING_UPDATE, "maximum_batch_size", V.ACTED),
    Row(S.ROLLING_UPDATE, "wait_interval_in_seconds", V.ACTED),
    Row(S.ROLLING_UPDATE, "maximum_execution_timeout_in_seconds", V.ACTED),
    Row(
        S.ROLLING_UPDATE,
        "rollback_maximum_batch_size",
        V.NOT_ACTED_YET,
        applies=lambda size: not (size.type_ == "CAPACITY_PERCENT" and size.value >= 100),
    ),  # a rollback restores the whole old fleet at once
    Row(S.ROLLING_UPDATE, "rollback_maximum_batch_size", V.ACTED),  # 100 %: SageMaker's default
    Row(S.DEPLOYMENT_CONFIG, "auto_rollback_configuration", V.ACTED),  # alarms need a Prometheus URL
    Row(S.ENDPOINT, "tags", V.NO_EFFECT, "tags are AWS resource metadata; copied to no child"),
    # EndpointConfig
    Row(S.ENDPOINT_CONFIG, "endpoint_config_name", V.ACTED),
    Row(S.ENDPOINT_CONFIG, "production_variants", V.ACTED),
    Row(
        S.ENDPOINT_CONFIG,
        "async_inference_config",
        V.NOT_SUPPORTED,
        "outputConfig.s3OutputPath (and s3FailurePath) must be s3://bucket/prefix URIs and the "
        "notification topics http(s):// URLs",
        applies=_async_invalid,
    ),
    Row(S.ENDPOINT_CONFIG, "async_inference_config", V.ACTED),  # gateway queues, agent sidecar runs
    Row(S.ENDPOINT_CONFIG, "shadow_production_variants", V.ACTED),  # the gateway copies requests
    Row(
        S.ENDPOINT_CONFIG,
        "data_capture_config",
        V.NOT_SUPPORTED,
        "the gateway writes capture files to s3:// destinations only; use s3://bucket/prefix",
        applies=_not_s3,
    ),
    Row(S.ENDPOINT_CONFIG, "data_capture_config", V.ACTED),  # by the gateway (status.dataCaptureConfig)
    Row(S.ENDPOINT_CONFIG, "kms_key_id", V.NOT_ACTED_YET),  # volumes are not encrypted with it
    Row(S.ENDPOINT_CONFIG, "enable_network_isolation", V.NOT_ACTED_YET),  # no NetworkPolicy yet
    Row(S.ENDPOINT_CONFIG, "execution_role_arn", V.NO_EFFECT, "pods act as their service account"),
    Row(S.ENDPOINT_CONFIG, "vpc_config", V.NO_EFFECT, "pods use the cluster network"),
    Row(S.ENDPOINT_CONFIG, "tags", V.NO_EFFECT, "tags are AWS resource metadata; copied to no child"),
    # EndpointConfig productionVariants[]
    Row(S.VARIANT, "variant_name", V.ACTED),
    Row(S.VARIANT, "model_name", V.ACTED),
    Row(S.VARIANT, "initial_instance_count", V.ACTED),
    Row(S.VARIANT, "instance_type", V.ACTED),
    Row(S.VARIANT, "initial_variant_weight", V.ACTED),
    Row(S.VARIANT, "container_startup_health_check_timeout_in_seconds", V.ACTED),
    Row(S.VARIANT, "routing_config", V.ACTED),  # by the gateway
    Row(S.VARIANT, "serverless_config", V.ACTED),  # KEDA ScaledObject, the gateway holds calls at zero
    Row(S.VARIANT, "managed_instance_scaling", V.NOT_ACTED_YET),  # use the Endpoint's spec.autoScaling
    Row(S.VARIANT, "volume_size_in_gb", V.ACTED),  # the size limit of the model volumes (the MME disk cache)
    Row(S.VARIANT, "model_data_download_timeout_in_seconds", V.ACTED),  # the fetcher's deadline
    Row(S.VARIANT, "core_dump_config", V.NOT_ACTED_YET),
    Row(
        S.VARIANT, "accelerator_type", V.NO_EFFECT, "Elastic Inference is deprecated; use a GPU instance type"
    ),
    Row(S.VARIANT, "enable_ssm_access", V.NO_EFFECT, "kubectl exec is the cluster's equivalent"),
    Row(S.VARIANT, "capacity_reservation_config", V.NO_EFFECT, "AWS capacity reservations do not apply"),
    # Model
    Row(S.MODEL, "model_name", V.ACTED),
    Row(S.MODEL, "primary_container", V.ACTED),
    # Direct: one pod, the containers behind the router; Serial (several containers, no Direct):
    # one pod per stage per instance on one node, chained by the router in the first stage's pod.
    Row(S.MODEL, "containers", V.ACTED),
    Row(S.MODEL, "inference_execution_config", V.ACTED, when=lambda m: _many(m.containers)),
    Row(S.MODEL, "inference_execution_config", V.NO_EFFECT, "it only concerns multi-container models"),
    Row(S.MODEL, "enable_network_isolation", V.NOT_ACTED_YET),  # no NetworkPolicy yet
    Row(S.MODEL, "execution_role_arn", V.NO_EFFECT, "pods act as their service account"),
    Row(S.MODEL, "vpc_config", V.NO_EFFECT, "pods use the cluster network"),
    Row(S.MODEL, "tags", V.NO_EFFECT, "tags are AWS resource metadata; copied to no child"),
    # Model containers[] / primaryContainer
    Row(S.CONTAINER, "image", V.ACTED),
    Row(S.CONTAINER, "model_data_url", V.ACTED),
    Row(S.CONTAINER, "model_data_source", V.ACTED),
    Row(S.CONTAINER, "environment", V.ACTED),
    Row(S.CONTAINER, "mode", V.ACTED),  # MultiModel: the server loads each TargetModel from the prefix
    Row(
        S.CONTAINER,
        "model_package_name",
        V.NOT_SUPPORTED,
        "the model registry is not supported; set image and modelDataURL",
    ),
    Row(S.CONTAINER, "inference_specification_name", V.NOT_ACTED_YET),
    Row(S.CONTAINER, "container_hostname", V.ACTED),  # routes Direct calls, names pipeline stages
    Row(S.CONTAINER, "image_config", V.NO_EFFECT, "images are pulled by the kubelet; use imagePullSecrets"),
    Row(S.CONTAINER, "multi_model_config", V.ACTED),  # modelCacheSetting
)


@dataclass(frozen=True)
class Admission:
    """The verdict on an Endpoint: the first unsupported field as a problem, and the fields
    accepted but not acted on yet (paths such as ``EndpointConfig.productionVariants[AllTraffic].managedInstanceScaling``)."""

    problem: Problem | None
    not_acted_on: tuple[str, ...]


def _subjects(resolved: ResolvedEndpoint) -> Iterator[tuple[Scope, str, BaseModel]]:
    """Every (scope, path prefix, spec object) of the Endpoint and what it references, in order."""
    yield Scope.ENDPOINT, "Endpoint", resolved.endpoint.spec
    deployment = resolved.endpoint.spec.deployment_config
    if deployment is not None:
        yield Scope.DEPLOYMENT_CONFIG, "Endpoint.deploymentConfig", deployment
        if deployment.rolling_update_policy is not None:
            path = "Endpoint.deploymentConfig.rollingUpdatePolicy"
            yield Scope.ROLLING_UPDATE, path, deployment.rolling_update_policy
    yield Scope.ENDPOINT_CONFIG, "EndpointConfig", resolved.config.spec
    for variant in resolved.config.spec.production_variants:
        yield Scope.VARIANT, f"EndpointConfig.productionVariants[{variant.variant_name}]", variant
    for variant in resolved.config.spec.shadow_production_variants or []:
        yield Scope.VARIANT, f"EndpointConfig.shadowProductionVariants[{variant.variant_name}]", variant
    seen: set[str] = set()
    for rv in resolved.variants:
        model = f"Model[{rv.model.sagemaker_name}]"
        if model in seen:
            continue
        seen.add(model)
        yield Scope.MODEL, model, rv.model.spec
        if rv.model.spec.primary_container is not None:
            yield Scope.CONTAINER, f"{model}.primaryContainer", rv.model.spec.primary_container
        for index, container in enumerate(rv.model.spec.containers or []):
            yield Scope.CONTAINER, f"{model}.containers[{index}]", container


def verdict(row: Row, value: Any) -> bool:
    """True when ``row`` decides about ``value``: the field is set and the row's condition holds."""
    return value is not None and (row.applies is None or row.applies(value))


def serverless_problem(resolved: ResolvedEndpoint) -> Problem | None:
    """What SageMaker refuses about serverless variants that no single field decides: the idle
    annotation's value, autoscaling a serverless variant, and converting a real-time variant
    into a serverless one (serverless -> real-time is allowed, the other way is not)."""
    idle_async = serverless_idle_seconds(
        resolved.endpoint.metadata.annotations, contract.ANNOTATION_ASYNC_IDLE_SECONDS, QUEUE_IDLE_SECONDS
    )
    if isinstance(idle_async, str):
        return Problem(
            "InvalidSpec", f"Endpoint {resolved.endpoint.sagemaker_name}: {idle_async}.", terminal=True
        )
    serverless = [rv for rv in resolved.variants if rv.variant.serverless_config is not None]
    if not serverless:
        return None
    idle = serverless_idle_seconds(resolved.endpoint.metadata.annotations)
    if isinstance(idle, str):
        return Problem("InvalidSpec", f"Endpoint {resolved.endpoint.sagemaker_name}: {idle}.", terminal=True)
    scaling = resolved.endpoint.spec.auto_scaling or []
    scaled = sorted({rv.variant.variant_name for rv in serverless} & {s.variant_name for s in scaling})
    if scaled:
        return Problem(
            "InvalidSpec",
            f"spec.autoScaling names serverless variant(s) {', '.join(scaled)}: serverless variants "
            "scale with their serverlessConfig (maxConcurrency, provisionedConcurrency); remove them.",
            terminal=True,
        )
    status = resolved.endpoint.status
    serving = status.endpoint_config_name if status is not None else None
    if status is None or serving is None or serving == resolved.config.sagemaker_name:
        return None
    real_time = {
        v.variant_name for v in status.production_variants or [] if v.desired_serverless_config is None
    }
    converted = sorted(rv.variant.variant_name for rv in serverless if rv.variant.variant_name in real_time)
    if converted:
        return Problem(
            "ValidationError",
            f"EndpointConfig {resolved.config.sagemaker_name!r} makes real-time variant(s) "
            f"{', '.join(converted)} of EndpointConfig {serving!r} serverless: a real-time variant cannot "
            "be converted to serverless (SageMaker refuses it too); create a new Endpoint instead.",
            terminal=True,
        )
    return None


def pod_security_problem(resolved: ResolvedEndpoint, enforce: str | None) -> Problem | None:
    """The first Model of the Endpoint that asks for root where the namespace's Pod Security
    (``enforce``, its label) refuses it, or whose run-as-root annotation is not a boolean."""
    for rv in resolved.variants:
        model = rv.model
        problem = root_problem(model.sagemaker_name, model.metadata.annotations, resolved.namespace, enforce)
        if problem is not None:
            return problem
    return None


def admit(resolved: ResolvedEndpoint, pod_security: str | None = None) -> Admission:
    """The verdict on ``resolved`` in a namespace whose Pod Security enforce label is ``pod_security``."""
    problem: Problem | None = pod_security_problem(resolved, pod_security) or serverless_problem(resolved)
    not_acted_on: list[str] = []
    for scope, prefix, spec in _subjects(resolved):
        decided: set[str] = set()
        for row in (r for r in TABLE if r.scope is scope and r.field not in decided):
            value = getattr(spec, row.field)
            if not verdict(row, value) or (row.when is not None and not row.when(spec)):
                continue
            decided.add(row.field)  # the first row that holds decides
            path = f"{prefix}.{row.wire_name}"
            if row.verdict is Verdict.NOT_SUPPORTED and problem is None:
                problem = Problem(NOT_SUPPORTED, f"{path} is not supported yet: {row.note}.", terminal=True)
            elif row.verdict is Verdict.NOT_ACTED_YET:
                not_acted_on.append(path)
    return Admission(problem, tuple(not_acted_on))
