"""Pure reference resolution: Endpoint -> EndpointConfig -> Models and InstanceTypes.

Takes what the operator's indexes hold (raw bodies, looked up by SageMaker name) and returns
either the resolved variants to render or a :class:`Problem` whose message says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from sageport.api.v1alpha1 import Endpoint, EndpointConfig, InstanceType, Model
from sageport.operator.render.variant import OwnerRef, RenderSettings, ResolvedVariant, image_of
from sageport.operator.status import Problem, VariantPlan

Body = Mapping[str, Any]


@dataclass(frozen=True)
class Resolution:
    config_name: str
    variants: tuple[ResolvedVariant, ...]
    plans: tuple[VariantPlan, ...]


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


def resolve_endpoint(
    endpoint: Endpoint,
    *,
    configs: Callable[[str], Sequence[Body]],
    models: Callable[[str], Sequence[Body]],
    instance_types: Callable[[str], Body | None],
    settings: RenderSettings,
) -> Resolution | Problem:
    """Resolve every reference of the Endpoint, or say precisely which one is wrong."""
    namespace = endpoint.metadata.namespace or "default"
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
    config = _parse(EndpointConfig, found, config_name)
    if isinstance(config, Problem):
        return config
    if config.spec.async_inference_config is not None:
        return Problem(
            "NotSupported",
            f"EndpointConfig {config_name!r} sets asyncInferenceConfig: async inference is not supported yet.",
            terminal=True,
        )

    owner = OwnerRef(
        api_version=endpoint.api_version,
        kind="Endpoint",
        name=endpoint.metadata.name,
        uid=endpoint.metadata.uid or "",
    )
    scaling = {s.variant_name: s for s in endpoint.spec.auto_scaling or []}
    variant_names = {v.variant_name for v in config.spec.production_variants}
    unknown = sorted(set(scaling) - variant_names)
    if unknown:
        return Problem(
            "InvalidSpec",
            f"spec.autoScaling names variant(s) {', '.join(unknown)} that EndpointConfig {config_name!r} "
            f"does not have (it has {', '.join(sorted(variant_names))}).",
            terminal=True,
        )

    resolved: list[ResolvedVariant] = []
    for variant in config.spec.production_variants:
        where = f"EndpointConfig {config_name!r} variant {variant.variant_name!r}"
        if variant.serverless_config is not None:
            return Problem(
                "NotSupported",
                f"{where}: serverlessConfig is not supported yet; use instanceType.",
                terminal=True,
            )
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
        containers = model.spec.all_containers()
        if len(containers) > 1:
            return Problem(
                "NotSupported",
                f"Model {variant.model_name!r} has {len(containers)} containers: multi-container models "
                "(serial pipelines, Direct mode) are not supported yet.",
                terminal=True,
            )
        container = containers[0]
        if container.mode == "MultiModel":
            return Problem(
                "NotSupported",
                f"Model {variant.model_name!r}: mode MultiModel is not supported yet.",
                terminal=True,
            )
        if container.model_package_name:
            return Problem(
                "NotSupported",
                f"Model {variant.model_name!r}: modelPackageName (model registry) is not supported; "
                "set image and modelDataURL.",
                terminal=True,
            )
        type_name = variant.instance_type or ""
        type_body = instance_types(type_name)
        if type_body is None:
            return Problem(
                "InstanceTypeNotFound",
                f"{where}: instance type {type_name!r} is not in the catalog: pick one of "
                "`kubectl get instancetypes.sageport.io`, or add an InstanceType named so.",
                terminal=True,
            )
        instance_type = _parse(InstanceType, type_body, type_name)
        if isinstance(instance_type, Problem):
            return instance_type
        resolved.append(
            ResolvedVariant(
                namespace=namespace,
                endpoint_object=endpoint.metadata.name,
                endpoint_name=endpoint.sagemaker_name,
                owner=owner,
                variant=variant,
                container=container,
                instance_type_name=type_name,
                instance_type=instance_type.spec,
                autoscaling=scaling.get(variant.variant_name),
                config_name=config.sagemaker_name,
                model_name=model.sagemaker_name,
            )
        )
    plans = tuple(
        VariantPlan(
            name=rv.variant.variant_name,
            weight=rv.variant.weight,
            desired_instances=None if rv.autoscaling else rv.variant.initial_instance_count,
            image=image_of(rv, settings),
            routing_strategy=rv.variant.routing_config.routing_strategy
            if rv.variant.routing_config
            else None,
        )
        for rv in resolved
    )
    return Resolution(config_name=config.sagemaker_name, variants=tuple(resolved), plans=plans)
