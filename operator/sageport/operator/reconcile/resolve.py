"""Pure reference resolution: Endpoint -> EndpointConfig -> Models and InstanceTypes.

Takes what the operator's indexes hold (raw bodies, looked up by SageMaker name) and returns
the typed objects, or a :class:`Problem` whose message says which reference to fix. Whether
what the objects ask for is supported is not decided here: that is admit's table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError

from sageport.api.v1alpha1 import (
    ContainerDefinition,
    DesiredWeightAndCapacity,
    Endpoint,
    EndpointConfig,
    InstanceType,
    InstanceTypeSpec,
    Model,
    ProductionVariant,
    VariantAutoScaling,
)
from sageport.operator.reconcile.lookups import Body
from sageport.operator.status import Problem


@dataclass(frozen=True)
class ResolvedVariant:
    """A production variant with its Model and instance type resolved."""

    variant: ProductionVariant
    model: Model
    instance_type_name: str | None  # None for a serverless variant
    instance_type: InstanceTypeSpec | None
    autoscaling: VariantAutoScaling | None = None
    desired: DesiredWeightAndCapacity | None = None  # the Endpoint's in-place weight and count
    shadow: bool = False  # a shadow variant: gets a copy of requests, its answers are discarded

    @property
    def containers(self) -> list[ContainerDefinition]:
        return self.model.spec.all_containers()

    @property
    def weight(self) -> float:
        if self.desired is not None and self.desired.desired_weight is not None:
            return self.desired.desired_weight
        return self.variant.weight

    @property
    def instance_count(self) -> int:
        if self.desired is not None and self.desired.desired_instance_count is not None:
            return self.desired.desired_instance_count
        return self.variant.initial_instance_count or 1


@dataclass(frozen=True)
class ResolvedEndpoint:
    """An Endpoint with every reference resolved to its typed object."""

    endpoint: Endpoint
    config: EndpointConfig
    variants: tuple[ResolvedVariant, ...]

    @property
    def namespace(self) -> str:
        return self.endpoint.metadata.namespace or "default"

    @property
    def production(self) -> tuple[ResolvedVariant, ...]:
        """The variants that serve traffic (not the shadows)."""
        return tuple(rv for rv in self.variants if not rv.shadow)


def validation_message(error: ValidationError) -> str:
    """A pydantic error as one line a user can act on: ``field.path: what is wrong``."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


ParsedT = TypeVar("ParsedT", EndpointConfig, Model, InstanceType)


def _parse(kind: type[ParsedT], body: Body, name: str) -> ParsedT | Problem:
    """A referenced object as its API type, or InvalidModel / InvalidEndpointConfig / ... saying why not."""
    try:
        return kind.model_validate(body)
    except ValidationError as error:
        reason = f"Invalid{kind.__name__}"
        return Problem(reason, f"{kind.__name__} {name!r}: {validation_message(error)}", terminal=True)


def _one(bodies: Sequence[Body], kind: str, name: str, namespace: str) -> Body | Problem | None:
    if not bodies:
        return None
    if len(bodies) > 1:
        objects = ", ".join(sorted(str(b["metadata"]["name"]) for b in bodies))
        return Problem(
            f"Ambiguous{kind}",
            f"{len(bodies)} {kind}s in namespace {namespace} are named {name!r} ({objects}): keep one.",
            terminal=True,
        )
    return bodies[0]


def _config(
    endpoint: Endpoint, configs: Callable[[str], Sequence[Body]], namespace: str
) -> EndpointConfig | Problem:
    config_name = endpoint.spec.endpoint_config_name
    found = _one(configs(config_name), "EndpointConfig", config_name, namespace)
    if found is None:
        return Problem(
            "EndpointConfigNotFound",
            f"EndpointConfig {config_name!r} not found in namespace {namespace}: create it, or fix "
            "spec.endpointConfigName (kubectl get endpointconfigs.sageport.io).",
            terminal=False,
        )
    if isinstance(found, Problem):
        return found
    return _parse(EndpointConfig, found, config_name)


def _variant(
    variant: ProductionVariant,
    where: str,
    namespace: str,
    models: Callable[[str], Sequence[Body]],
    instance_types: Callable[[str], Body | None],
) -> tuple[Model, InstanceTypeSpec | None] | Problem:
    if variant.model_name is None:
        return Problem(
            "InvalidEndpointConfig",
            f"{where}: modelName is required (inference components are not supported).",
            terminal=True,
        )
    model_found = _one(models(variant.model_name), "Model", variant.model_name, namespace)
    if model_found is None:
        return Problem(
            "ModelNotFound",
            f"{where}: Model {variant.model_name!r} not found in namespace {namespace}: create it, or "
            "fix modelName (kubectl get models.sageport.io).",
            terminal=False,
        )
    if isinstance(model_found, Problem):
        return model_found
    model = _parse(Model, model_found, variant.model_name)
    if isinstance(model, Problem):
        return model
    if variant.instance_type is None:
        return model, None  # serverless: admit decides
    type_body = instance_types(variant.instance_type)
    if type_body is None:
        return Problem(
            "InstanceTypeNotFound",
            f"{where}: instance type {variant.instance_type!r} is not in the catalog: pick one of "
            "`kubectl get instancetypes.sageport.io`, or add an InstanceType named so.",
            terminal=True,
        )
    instance_type = _parse(InstanceType, type_body, variant.instance_type)
    if isinstance(instance_type, Problem):
        return instance_type
    return model, instance_type.spec


def resolve_endpoint(
    endpoint: Endpoint,
    *,
    configs: Callable[[str], Sequence[Body]],
    models: Callable[[str], Sequence[Body]],
    instance_types: Callable[[str], Body | None],
) -> ResolvedEndpoint | Problem:
    """Resolve every reference of the Endpoint, or say precisely which one is wrong."""
    namespace = endpoint.metadata.namespace or "default"
    config = _config(endpoint, configs, namespace)
    if isinstance(config, Problem):
        return config
    scaling = {s.variant_name: s for s in endpoint.spec.auto_scaling or []}
    desired = {d.variant_name: d for d in endpoint.spec.desired_weights_and_capacities or []}
    variant_names = {v.variant_name for v in config.spec.production_variants}
    for field, named in (("autoScaling", scaling), ("desiredWeightsAndCapacities", desired)):
        unknown = sorted(set(named) - variant_names)
        if unknown:
            return Problem(
                "InvalidSpec",
                f"spec.{field} names variant(s) {', '.join(unknown)} that EndpointConfig "
                f"{config.sagemaker_name!r} does not have (it has {', '.join(sorted(variant_names))}).",
                terminal=True,
            )
    both = sorted(
        name for name, d in desired.items() if d.desired_instance_count is not None and name in scaling
    )
    if both:
        return Problem(
            "InvalidSpec",
            f"spec.desiredWeightsAndCapacities sets desiredInstanceCount for variant(s) {', '.join(both)}, "
            "whose count spec.autoScaling owns: change minInstanceCount/maxInstanceCount instead.",
            terminal=True,
        )
    if config.spec.async_inference_config is None:
        zero = sorted(name for name, s in scaling.items() if s.min_instance_count == 0)
        if zero:
            return Problem(
                "InvalidSpec",
                f"spec.autoScaling minInstanceCount is 0 for variant(s) {', '.join(zero)}, but EndpointConfig "
                f"{config.sagemaker_name!r} is not asynchronous: only an asynchronous endpoint (one with "
                "asyncInferenceConfig) scales to zero, its calls waiting in the queue; set minInstanceCount "
                "to 1 or more.",
                terminal=True,
            )
    resolved: list[ResolvedVariant] = []
    shadows = config.spec.shadow_production_variants or []
    for variant in [*config.spec.production_variants, *shadows]:
        shadow = variant in shadows
        where = f"EndpointConfig {config.sagemaker_name!r} {'shadow ' if shadow else ''}variant {variant.variant_name!r}"
        found = _variant(variant, where, namespace, models, instance_types)
        if isinstance(found, Problem):
            return found
        model, instance_type = found
        resolved.append(
            ResolvedVariant(
                variant=variant,
                model=model,
                instance_type_name=variant.instance_type,
                instance_type=instance_type,
                autoscaling=scaling.get(variant.variant_name),
                desired=desired.get(variant.variant_name),
                shadow=shadow,
            )
        )
    if sum(rv.weight for rv in resolved if not rv.shadow) <= 0:
        return Problem(
            "InvalidSpec",
            "spec.desiredWeightsAndCapacities leaves every variant at weight 0: at least one needs a weight > 0.",
            terminal=True,
        )
    return ResolvedEndpoint(endpoint=endpoint, config=config, variants=tuple(resolved))
