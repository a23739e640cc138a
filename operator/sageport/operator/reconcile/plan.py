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

from sageport.api.v1alpha1 import ContainerDefinition
from sageport.operator.reconcile.resolve import ResolvedEndpoint, ResolvedVariant
from sageport.operator.render.names import child_name
from sageport.operator.render.shape import (
    Autoscaler,
    ModelContainer,
    OwnerRef,
    RenderSettings,
    ServiceShape,
    Sidecar,
    VariantShape,
)
from sageport.operator.status import VariantPlan

DEFAULT_STARTUP_SECONDS = 240  # SageMaker's default window to pass the health check

# Containers the pod runs next to the model's, each added by a rule when its feature is used.
SIDECARS: tuple[Callable[[ResolvedVariant, RenderSettings], Sidecar | None], ...] = ()

# Who owns the instance count: the first rule that holds; no autoscaler when none does.
AUTOSCALERS: tuple[tuple[Callable[[ResolvedVariant], bool], Autoscaler], ...] = (
    (lambda rv: rv.autoscaling is not None, Autoscaler.HPA),
)


@dataclass(frozen=True)
class EndpointPlan:
    config_name: str
    variants: tuple[VariantShape, ...]
    plans: tuple[VariantPlan, ...]  # what the status reports per variant


def image_of(container: ContainerDefinition, settings: RenderSettings) -> str:
    """The container's image, or sageport's own model server."""
    return container.image or settings.runtime_image


def _model_url(container: ContainerDefinition) -> str | None:
    if container.model_data_url is not None:
        return container.model_data_url
    source = container.model_data_source
    return source.s3_data_source.s3_uri if source is not None else None


def _model_container(container: ContainerDefinition, settings: RenderSettings) -> ModelContainer:
    return ModelContainer(
        name="model",
        image=image_of(container, settings),
        environment=tuple(sorted((container.environment or {}).items())),
        model_url=_model_url(container),
    )


def _autoscaler(rv: ResolvedVariant) -> Autoscaler:
    return next((kind for holds, kind in AUTOSCALERS if holds(rv)), Autoscaler.NONE)


def plan_variant(resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings) -> VariantShape:
    endpoint = resolved.endpoint
    if rv.instance_type is None:
        raise ValueError(f"variant {rv.variant.variant_name} has no instance type: admit refuses it")
    autoscaler = _autoscaler(rv)
    config_name = resolved.config.sagemaker_name
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
        instance_type=rv.instance_type,
        containers=tuple(_model_container(c, settings) for c in rv.containers),
        startup_seconds=rv.variant.container_startup_health_check_timeout_in_seconds
        or DEFAULT_STARTUP_SECONDS,
        download_seconds=rv.variant.model_data_download_timeout_in_seconds,
        replicas=rv.instance_count if autoscaler is Autoscaler.NONE else None,
        autoscaler=autoscaler,
        autoscaling=rv.autoscaling,
        sidecars=tuple(s for rule in SIDECARS if (s := rule(rv, settings)) is not None),
        services=(ServiceShape(name),),
    )


def _summary(rv: ResolvedVariant, shape: VariantShape) -> VariantPlan:
    routing = rv.variant.routing_config
    return VariantPlan(
        name=shape.variant_name,
        weight=rv.weight,
        desired_instances=shape.replicas,
        image=shape.containers[0].image,
        routing_strategy=routing.routing_strategy if routing else None,
        shadow=rv.shadow,
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
        plans=tuple(_summary(rv, shape) for rv, shape in zip(resolved.variants, shapes, strict=True)),
    )
