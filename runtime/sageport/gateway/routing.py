"""The routing core shared by standalone and Kubernetes modes.

A route table maps endpoint names to variants and each variant to its ready instances. The
choice functions are pure (randomness is passed in); the table only keeps the per-instance
outstanding-request counters alive across updates, so a watch event never resets them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sageport.contract import (
    INVOCATIONS_PATH,
    MULTI_MODEL_PATH,
    SERVING_STATUSES,
    EndpointStatus,
    RoutingStrategy,
    multi_model_id,
)
from sageport.net import awserrors

if TYPE_CHECKING:
    from sageport.gateway.capture import CaptureSettings


class Instance:
    """One ready model instance (pod IP and port, or a standalone backend URL)."""

    __slots__ = ("base_url", "invocations_url", "model_calls", "outstanding")

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.invocations_url = self.base_url + INVOCATIONS_PATH
        self.outstanding = 0
        self.model_calls: dict[str, int] = {}  # multi-model: calls in flight per TargetModel

    def begin_model_call(self, target_model: str) -> None:
        self.model_calls[target_model] = self.model_calls.get(target_model, 0) + 1

    def end_model_call(self, target_model: str) -> None:
        left = self.model_calls.get(target_model, 0) - 1
        if left > 0:
            self.model_calls[target_model] = left
        else:
            self.model_calls.pop(target_model, None)

    def __repr__(self) -> str:
        return f"Instance({self.base_url!r}, outstanding={self.outstanding})"


@dataclass(frozen=True)
class Serverless:
    """A serverless variant's limits, from its status: calls above ``max_concurrency`` in flight
    are throttled; a call held at zero instances waits ``setup_seconds`` for a ready pod; the
    first ``provisioned_concurrency`` calls in flight are served by warm pods (its metrics)."""

    max_concurrency: int
    setup_seconds: float
    provisioned_concurrency: int = 0


@dataclass(frozen=True)
class VariantSpec:
    """What a watcher or a routes file says about a variant (no runtime state)."""

    name: str
    weight: float
    backends: tuple[str, ...]
    strategy: RoutingStrategy = RoutingStrategy.LEAST_OUTSTANDING_REQUESTS
    container_hostnames: frozenset[str] | None = None
    config: str = ""  # the config_label of the EndpointConfig whose fleet it is ("" standalone)
    multi_model: bool = False  # a multi-model endpoint's variant: calls name a TargetModel
    serverless: Serverless | None = None


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    variants: tuple[VariantSpec, ...]
    status: str = EndpointStatus.IN_SERVICE
    # Where the endpoint lives (Kubernetes namespace); None in standalone mode.
    namespace: str | None = None
    # Shadow variants: ``weight`` is the fraction of requests copied to each (0..1).
    shadows: tuple[VariantSpec, ...] = ()
    capture: CaptureSettings | None = None  # data capture of its calls, if any
    # An async endpoint's S3OutputPath and S3FailurePath (None: a real-time endpoint).
    async_paths: tuple[str, str | None] | None = None


@dataclass
class Variant:
    name: str
    weight: float
    instances: list[Instance]
    strategy: RoutingStrategy
    container_hostnames: frozenset[str] | None
    # Per-(endpoint, config, variant) cache slot for metric children, filled by the shell.
    metrics: object = None
    config: str = ""
    multi_model: bool = False
    serverless: Serverless | None = None


@dataclass
class Endpoint:
    name: str
    status: str
    namespace: str | None
    variants: list[Variant] = field(default_factory=list)
    shadows: list[Variant] = field(default_factory=list)  # weight: the fraction of requests copied
    capture: CaptureSettings | None = None
    async_paths: tuple[str, str | None] | None = None  # see EndpointSpec

    def variant(self, name: str) -> Variant | None:
        for variant in self.variants:
            if variant.name == name:
                return variant
        return None


def choose_variant(variants: Sequence[Variant], draw: float) -> Variant | None:
    """Pick a variant by weight among those with ready instances; ``draw`` is uniform in [0, 1).

    Variants without instances are left out so that a variant scaling up or rolling out does not
    turn into errors; if all remaining weights are zero, traffic is split evenly.
    """
    return _by_weight([variant for variant in variants if variant.instances], draw)


def _by_weight(candidates: Sequence[Variant], draw: float) -> Variant | None:
    if not candidates:
        return None
    total = sum(max(variant.weight, 0.0) for variant in candidates)
    if total <= 0:
        return candidates[min(int(draw * len(candidates)), len(candidates) - 1)]
    threshold = draw * total
    running = 0.0
    for variant in candidates:
        running += max(variant.weight, 0.0)
        if threshold < running:
            return variant
    return candidates[-1]


def serverless_target(endpoint: Endpoint, target_variant: str | None, draw: float) -> Variant | None:
    """The serverless variant a call goes to, ready pods or not (the gateway then holds the call
    while it has none), or None when the call is routed as usual. Serverless endpoints have one
    variant in SageMaker; with several, all serverless, the weights choose among them all."""
    if target_variant is not None:
        chosen = endpoint.variant(target_variant)
        return chosen if chosen is not None and chosen.serverless is not None else None
    variants = endpoint.variants
    if not variants or any(v.serverless is None for v in variants):
        return None
    # Some with ready pods: as choose_variant. None: by weight among all, to be woken.
    return _by_weight([v for v in variants if v.instances] or variants, draw)


def choose_shadows(shadows: Sequence[Variant], rng: random.Random) -> list[Variant]:
    """The shadow variants that get a copy of this request: each with its own fraction, and
    only one that has a ready instance (a shadow starting up costs nothing)."""
    return [shadow for shadow in shadows if shadow.instances and rng.random() < shadow.weight]


def choose_instance(variant: Variant, rng: random.Random) -> Instance | None:
    instances = variant.instances
    if not instances:
        return None
    if len(instances) == 1:
        return instances[0]
    if variant.strategy is RoutingStrategy.RANDOM:
        return instances[rng.randrange(len(instances))]
    # Least outstanding requests; ties broken at random so idle instances share the load.
    lowest = min(instance.outstanding for instance in instances)
    tied = [instance for instance in instances if instance.outstanding == lowest]
    return tied[rng.randrange(len(tied))] if len(tied) > 1 else tied[0]


def validate_target_container(variant: Variant, endpoint_name: str, hostname: str | None) -> None:
    hostnames = variant.container_hostnames
    if hostnames is None:
        if hostname is not None:
            raise awserrors.validation_error(
                f"Endpoint {endpoint_name} is not configured for direct invocation; "
                "TargetContainerHostname is not allowed."
            )
        return
    if hostname is None:
        raise awserrors.validation_error(
            f"Endpoint {endpoint_name} uses direct invocation; TargetContainerHostname is required."
        )
    if hostname not in hostnames:
        raise awserrors.validation_error(
            f"Container hostname {hostname} not found in endpoint {endpoint_name}; "
            f"valid hostnames: {', '.join(sorted(hostnames))}."
        )


# A multi-model call goes to the instance its model hashes to, unless this many calls of that model
# are in flight there already (a hot model): then to the less busy of its first two instances, which
# loads it too. So a hot model spreads over two instances while every other one stays on one.
HOT_MODEL_IN_FLIGHT = 4


def _rank(target_model: str, instance: Instance) -> int:
    digest = hashlib.blake2b(f"{target_model}\0{instance.base_url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose_model_instance(variant: Variant, target_model: str) -> Instance | None:
    """Rendezvous hashing of the model over the variant's instances: every gateway replica picks
    the same instance, and adding or removing one instance moves only the models it wins or held
    (about 1/N of them), so a fleet of N holds about N times the models of one."""
    ranked = sorted(variant.instances, key=lambda instance: _rank(target_model, instance), reverse=True)
    if not ranked or ranked[0].model_calls.get(target_model, 0) < HOT_MODEL_IN_FLIGHT:
        return ranked[0] if ranked else None
    return min(ranked[:2], key=lambda instance: instance.outstanding)


def validate_target_model(variant: Variant, endpoint_name: str, target_model: str | None) -> None:
    if not variant.multi_model:
        if target_model is not None:
            raise awserrors.validation_error(
                f"Endpoint {endpoint_name} is not a multi-model endpoint and does not support target model header."
            )
        return
    if target_model is None:
        raise awserrors.validation_error(
            f"Endpoint {endpoint_name} is a multi-model endpoint: the request is missing a target model "
            "header (TargetModel, a key relative to the model's S3 prefix)."
        )
    parts = target_model.split("/")
    if target_model.startswith("/") or ".." in parts or "\\" in target_model:
        raise awserrors.validation_error(
            f"TargetModel {target_model} must be a key relative to the model's S3 prefix, "
            'without a leading "/" or ".." segments.'
        )


def model_invocations_path(target_model: str) -> str:
    return f"{MULTI_MODEL_PATH}/{multi_model_id(target_model)}/invoke"


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    variant: Variant
    instance: Instance
    path: str = INVOCATIONS_PATH  # on the instance: /invocations, or a multi-model model's route
    target_model: str | None = None


def route(
    endpoint: Endpoint,
    target_variant: str | None,
    target_container: str | None,
    rng: random.Random,
    target_model: str | None = None,
) -> Route:
    """Choose variant and instance for one request, or raise the SageMaker error for why not."""
    if endpoint.status not in SERVING_STATUSES:
        raise awserrors.validation_error(
            f"Endpoint {endpoint.name} is not in service (status {endpoint.status})."
        )
    if target_variant is not None:
        chosen = endpoint.variant(target_variant)
        if chosen is None:
            raise awserrors.validation_error(
                f"Variant {target_variant} not found for endpoint {endpoint.name}."
            )
    else:
        maybe = choose_variant(endpoint.variants, rng.random())
        if maybe is None:
            raise awserrors.service_unavailable(
                f"Endpoint {endpoint.name} has no instance ready to serve the request."
            )
        chosen = maybe
    validate_target_container(chosen, endpoint.name, target_container)
    validate_target_model(chosen, endpoint.name, target_model)
    if target_model is not None:
        instance = choose_model_instance(chosen, target_model)
    else:
        instance = choose_instance(chosen, rng)
    if instance is None:
        raise awserrors.service_unavailable(
            f"Variant {chosen.name} of endpoint {endpoint.name} has no instance ready to serve the request."
        )
    if target_model is not None:
        return Route(endpoint, chosen, instance, model_invocations_path(target_model), target_model)
    return Route(endpoint, chosen, instance)


class RouteTable:
    """Endpoint name -> Endpoint. Replaced wholesale by watchers; lookups are dict reads."""

    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._instances: dict[str, Instance] = {}
        self._metrics_slots: dict[tuple[str, str, str], object] = {}
        self.changed: Callable[[], None] | None = None  # called after every replace

    def lookup(self, name: str) -> Endpoint | None:
        return self._endpoints.get(name)

    def names(self) -> list[str]:
        return sorted(self._endpoints)

    def instance_counts(self) -> Iterator[tuple[str, str, str, int]]:
        """(endpoint, variant, endpoint config, ready instances) for every variant and shadow."""
        for endpoint in list(self._endpoints.values()):
            for variant in (*endpoint.variants, *endpoint.shadows):
                yield endpoint.name, variant.name, variant.config, len(variant.instances)

    def serverless_variants(self) -> Iterator[tuple[Endpoint, Variant, Serverless]]:
        """Every serverless variant, with its endpoint and limits (for the metrics at a scrape)."""
        for endpoint in list(self._endpoints.values()):
            for variant in endpoint.variants:
                if variant.serverless is not None:
                    yield endpoint, variant, variant.serverless

    def replace(self, specs: Iterable[EndpointSpec]) -> None:
        """Install a new set of endpoints, reusing Instance objects (and their counters) by URL."""
        instances: dict[str, Instance] = {}
        endpoints: dict[str, Endpoint] = {}
        for spec in specs:
            variants = [self._variant(spec.name, v, instances) for v in spec.variants]
            shadows = [self._variant(spec.name, v, instances) for v in spec.shadows]
            endpoints[spec.name] = Endpoint(
                spec.name,
                spec.status,
                spec.namespace,
                variants,
                shadows,
                capture=spec.capture,
                async_paths=spec.async_paths,
            )
        self._instances = instances
        self._endpoints = endpoints
        if self.changed is not None:
            self.changed()

    def _variant(self, endpoint: str, spec: VariantSpec, instances: dict[str, Instance]) -> Variant:
        members = []
        for url in spec.backends:
            key = url.rstrip("/")
            instance = instances.get(key) or self._instances.get(key) or Instance(key)
            instances[key] = instance
            members.append(instance)
        return Variant(
            name=spec.name,
            weight=spec.weight,
            instances=members,
            strategy=spec.strategy,
            container_hostnames=spec.container_hostnames,
            metrics=self._metrics_slots.get((endpoint, spec.config, spec.name)),
            config=spec.config,
            multi_model=spec.multi_model,
            serverless=spec.serverless,
        )

    def remember_metrics(self, endpoint: str, variant: Variant, slot: object) -> None:
        variant.metrics = slot
        self._metrics_slots[(endpoint, variant.config, variant.name)] = slot
