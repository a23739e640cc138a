"""Pure translation of Kubernetes objects (as JSON dicts) into routes and access keys.

Namespacing rule: SageMaker endpoint names are global, Kubernetes names are per namespace. The
gateway serves the Endpoints of the namespaces it watches (``--namespace``, default all) under
their bare names. If two namespaces hold the same name, the oldest Endpoint (creationTimestamp,
then namespace) keeps the name and the others are not routed; the gateway logs the clash. A
newcomer can therefore never take traffic away from an endpoint that already serves it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sageport import contract
from sageport.contract import RoutingStrategy
from sageport.gateway.auth import AccessKey
from sageport.gateway.capture import CaptureSettings, settings_from_summary
from sageport.gateway.routing import EndpointSpec, Serverless, VariantSpec

ObjectKey = tuple[str, str]  # (namespace, name)

# SageMaker's default of containerStartupHealthCheckTimeoutInSeconds: a held call's wait when the
# status does not say (an operator older than serverless support).
_DEFAULT_SETUP_SECONDS = 240.0


@dataclass(frozen=True)
class VariantRow:
    """One variant as an Endpoint's status describes it, before its pods are known."""

    config: str  # the config label its fleet's Services carry
    name: str
    weight: float
    strategy: RoutingStrategy
    hostnames: frozenset[str] | None  # a Direct multi-container variant's containers
    multi_model: bool
    serverless: Serverless | None


@dataclass(frozen=True)
class EndpointObject:
    namespace: str
    # The name clients invoke: spec.endpointName (ACK's SageMaker-side name) or metadata.name.
    name: str
    # metadata.name: the object's identity in its namespace, which the operator writes on its
    # Services (and so on their EndpointSlices) as LABEL_ENDPOINT_OBJECT.
    object_name: str
    created: str
    status: str
    # The serving config's variants in status order, then those of an update that has traffic.
    variants: tuple[VariantRow, ...]
    # The serving config's shadow variants, as variants are, with the weight the fraction of
    # requests copied to each: its desiredWeight over the production variants' (SageMaker's rule).
    shadows: tuple[VariantRow, ...] = ()
    # metadata.resourceVersion as a number (0 if absent): a read-through GET may be newer than
    # the watch's next event, which must then not take the table back.
    resource_version: int = 0
    capture: CaptureSettings | None = None  # from status.dataCaptureConfig
    async_paths: tuple[str, str | None] | None = None  # from status.asyncInferenceConfig

    def is_older_than(self, other: EndpointObject) -> bool:
        return 0 < self.resource_version < other.resource_version


@dataclass(frozen=True)
class SliceObject:
    namespace: str
    endpoint_object: str
    config: str  # the config_label of the EndpointConfig whose fleet it is
    variant: str
    backends: tuple[str, ...]


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is an object, else an empty one: what the API server hands us is JSON, and
    a malformed field must not take a watch down."""
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(obj.get("metadata"))


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = _metadata(obj)
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def _weight(variant: Mapping[str, Any]) -> float:
    for field in ("currentWeight", "desiredWeight"):
        value = variant.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 1.0


def _strategy(variant: Mapping[str, Any]) -> RoutingStrategy:
    routing = variant.get("routingConfig")
    value = routing.get("routingStrategy") if isinstance(routing, Mapping) else None
    try:
        return RoutingStrategy(value) if value else RoutingStrategy.LEAST_OUTSTANDING_REQUESTS
    except ValueError:
        return RoutingStrategy.LEAST_OUTSTANDING_REQUESTS


def _variants(config: Any, summaries: Any, *, shifted: bool) -> list[VariantRow]:
    """The routable variants of one config's fleet. ``shifted``: an update's fleet, which gets
    traffic only once its currentWeight (its share of the traffic shift) is above zero."""
    label = contract.config_label(config) if isinstance(config, str) else ""
    variants = []
    for variant in _items(summaries):
        if not isinstance(variant, Mapping) or not isinstance(variant.get("variantName"), str):
            continue
        weight = _weight(variant)
        if shifted and not (isinstance(variant.get("currentWeight"), int | float) and weight > 0):
            continue
        hostnames = variant.get("containerHostnames")
        variants.append(
            VariantRow(
                config=label,
                name=variant["variantName"],
                weight=weight,
                strategy=_strategy(variant),
                hostnames=frozenset(str(host) for host in hostnames) if isinstance(hostnames, list) else None,
                multi_model=variant.get("multiModel") is True,
                serverless=_serverless(variant),
            )
        )
    return variants


def _serverless(variant: Mapping[str, Any]) -> Serverless | None:
    """A serverless variant's limits from its summary (desiredServerlessConfig: the config being
    served, reported from the start, while currentServerlessConfig waits for the fleet)."""
    config = _mapping(variant.get("desiredServerlessConfig") or variant.get("currentServerlessConfig"))
    concurrency = config.get("maxConcurrency")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        return None
    setup = variant.get("modelSetupTimeoutInSeconds")
    seconds = (
        float(setup) if isinstance(setup, int | float) and not isinstance(setup, bool) and setup > 0 else None
    )
    provisioned = config.get("provisionedConcurrency")
    warm = (
        provisioned
        if isinstance(provisioned, int) and not isinstance(provisioned, bool) and provisioned > 0
        else 0
    )
    return Serverless(concurrency, seconds or _DEFAULT_SETUP_SECONDS, warm)


def parse_endpoint(obj: Mapping[str, Any]) -> EndpointObject:
    namespace, name = object_key(obj)
    status = _mapping(obj.get("status"))
    pending = _mapping(status.get("pendingDeploymentSummary"))
    variants = _variants(status.get("endpointConfigName"), status.get("productionVariants"), shifted=False)
    variants += _variants(pending.get("endpointConfigName"), pending.get("productionVariants"), shifted=True)
    shadows = _shadows(status)
    spec = obj.get("spec")
    invoke_name = spec.get("endpointName") if isinstance(spec, Mapping) else None
    return EndpointObject(
        namespace=namespace,
        name=invoke_name if isinstance(invoke_name, str) and invoke_name else name,
        object_name=name,
        created=str(_metadata(obj).get("creationTimestamp", "")),
        status=str(status.get("endpointStatus") or contract.EndpointStatus.CREATING),
        variants=tuple(variants),
        shadows=tuple(shadows),
        resource_version=_resource_version(obj),
        capture=settings_from_summary(status.get("dataCaptureConfig")),
        async_paths=_async_paths(status.get("asyncInferenceConfig")),
    )


def _async_paths(config: Any) -> tuple[str, str | None] | None:
    """S3OutputPath and S3FailurePath of an async endpoint (DescribeEndpoint's
    AsyncInferenceConfig, which the operator writes); None for a real-time one."""
    output = _mapping(_mapping(config).get("outputConfig"))
    path = output.get("s3OutputPath")
    if not isinstance(path, str) or not path:
        return None
    failure = output.get("s3FailurePath")
    return path, failure if isinstance(failure, str) and failure else None


def _shadows(status: Mapping[str, Any]) -> list[VariantRow]:
    """The serving config's shadow variants, each with the fraction of requests it gets a copy of."""
    production = 0.0
    for variant in _items(status.get("productionVariants")):
        desired = variant.get("desiredWeight") if isinstance(variant, Mapping) else None
        if isinstance(desired, int | float) and not isinstance(desired, bool):
            production += float(desired)
    shadows = _variants(
        status.get("endpointConfigName"), status.get("shadowProductionVariants"), shifted=False
    )
    return [
        replace(shadow, weight=min(shadow.weight / production, 1.0) if production > 0 else 1.0)
        for shadow in shadows
    ]


def _resource_version(obj: Mapping[str, Any]) -> int:
    try:
        return int(str(_metadata(obj).get("resourceVersion", "0")))
    except ValueError:
        return 0


def _serving_port(slice_obj: Mapping[str, Any]) -> int:
    ports = [port for port in _items(slice_obj.get("ports")) if isinstance(port, Mapping)]
    for port in ports:
        if port.get("name") == contract.CONTAINER_PORT_NAME and isinstance(port.get("port"), int):
            return int(port["port"])
    for port in ports:
        if isinstance(port.get("port"), int):
            return int(port["port"])
    return contract.CONTAINER_PORT


def parse_endpoint_slice(obj: Mapping[str, Any]) -> SliceObject | None:
    labels = _mapping(_metadata(obj).get("labels"))
    endpoint, variant = labels.get(contract.LABEL_ENDPOINT_OBJECT), labels.get(contract.LABEL_VARIANT)
    config = labels.get(contract.LABEL_CONFIG, "")
    if not endpoint or not variant:
        return None
    port = _serving_port(obj)
    ipv6 = obj.get("addressType") == "IPv6"
    backends = []
    for member in _items(obj.get("endpoints")):
        if not isinstance(member, Mapping):
            continue
        # An unset "ready" means ready (EndpointSlice API semantics).
        if _mapping(member.get("conditions")).get("ready") is False:
            continue
        for address in _items(member.get("addresses")):
            host = f"[{address}]" if ipv6 else str(address)
            backends.append(f"http://{host}:{port}")
    return SliceObject(object_key(obj)[0], str(endpoint), str(config), str(variant), tuple(backends))


def build_routes(
    endpoints: Iterable[EndpointObject], slices: Iterable[SliceObject]
) -> tuple[list[EndpointSpec], list[str]]:
    """Endpoint specs to install, and the names that clash across namespaces (for a warning)."""
    backends: dict[tuple[str, str, str, str], list[str]] = {}
    for slice_obj in slices:
        fleet = (slice_obj.namespace, slice_obj.endpoint_object, slice_obj.config, slice_obj.variant)
        backends.setdefault(fleet, []).extend(slice_obj.backends)
    owners: dict[str, EndpointObject] = {}
    clashes: set[str] = set()
    for endpoint in sorted(endpoints, key=lambda item: (item.created, item.namespace)):
        if endpoint.name in owners:
            clashes.add(endpoint.name)
            continue
        owners[endpoint.name] = endpoint
    specs = []
    for endpoint in owners.values():
        # By object identity only: the invoke name may be another object's name in the namespace.
        def spec(row: VariantRow, endpoint: EndpointObject = endpoint) -> VariantSpec:
            fleet = (endpoint.namespace, endpoint.object_name, row.config, row.name)
            return VariantSpec(
                row.name, row.weight, tuple(dict.fromkeys(backends.get(fleet, ()))), row.strategy,
                row.hostnames, row.config, row.multi_model, row.serverless,
            )  # fmt: skip

        variants = tuple(spec(variant) for variant in endpoint.variants)
        shadows = tuple(spec(shadow) for shadow in endpoint.shadows)
        specs.append(
            EndpointSpec(
                endpoint.name,
                variants,
                endpoint.status,
                endpoint.namespace,
                shadows,
                endpoint.capture,
                endpoint.async_paths,
            )
        )
    return specs, sorted(clashes)


def _decode(data: Mapping[str, Any], field: str) -> str | None:
    value = data.get(field)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:  # not base64, not ASCII, not UTF-8 (binascii.Error is a ValueError)
        return None


def _names(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    return None if "*" in names or not names else names


def parse_access_key_secret(obj: Mapping[str, Any], system_namespace: str) -> AccessKey | None:
    """A Secret labelled ``sageport.io/access-key=true`` holding ``accessKeyId`` and
    ``secretAccessKey``, optionally ``endpoints`` (comma-separated names, default all) and
    ``serviceAccount`` (the ServiceAccount, in the key's home namespace, that the key's
    control-plane calls act as).

    A key is scoped to its Secret's namespace: a team can mint keys only for its own endpoints.
    Only Secrets in the gateway's system namespace may set ``namespaces`` (comma-separated or
    ``*``) to reach further.
    """
    namespace, _ = object_key(obj)
    data = obj.get("data")
    if not isinstance(data, Mapping):
        return None
    access_key_id = _decode(data, "accessKeyId")
    secret = _decode(data, "secretAccessKey")
    if not access_key_id or not secret:
        return None
    if namespace == system_namespace and _decode(data, "namespaces") is not None:
        namespaces = _names(_decode(data, "namespaces"))
    else:
        namespaces = frozenset({namespace})
    # The control-plane API acts in one namespace: the only one the key reaches, else its own.
    home = next(iter(namespaces)) if namespaces is not None and len(namespaces) == 1 else namespace
    return AccessKey(
        access_key_id=access_key_id.strip(),
        secret_access_key=secret.strip(),
        endpoints=_names(_decode(data, "endpoints")),
        namespaces=namespaces,
        home_namespace=home,
        service_account=_service_account(_decode(data, "serviceAccount")),
    )


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")


def _service_account(text: str | None) -> str | None:
    """A ServiceAccount name (a DNS subdomain); anything else names no identity."""
    name = (text or "").strip()
    return name if _DNS_SUBDOMAIN.match(name) else None


def merge_keys(keys: Iterable[tuple[ObjectKey, AccessKey]]) -> tuple[list[AccessKey], list[str]]:
    """One key per id; a duplicate id in two Secrets is refused entirely (ambiguous scope)."""
    by_id: dict[str, list[tuple[ObjectKey, AccessKey]]] = {}
    for source, key in keys:
        by_id.setdefault(key.access_key_id, []).append((source, key))
    unique = [entries[0][1] for entries in by_id.values() if len(entries) == 1]
    duplicated = sorted(key_id for key_id, entries in by_id.items() if len(entries) > 1)
    return unique, duplicated


def peer_addresses(slice_obj: Mapping[str, Any], own_ip: str | None) -> tuple[str, ...]:
    """``host:port`` of the scaler port of every gateway replica in one slice of the gateway's own
    Service, this replica (``own_ip``) left out. Not-ready replicas are kept: one that is starting
    or draining may hold calls, and KEDA's stream may still be open on one that is draining."""
    port = next(
        (
            int(p["port"])
            for p in _items(slice_obj.get("ports"))
            if isinstance(p, Mapping)
            and p.get("name") == contract.SCALER_PORT_NAME
            and isinstance(p.get("port"), int)
        ),
        None,
    )
    if port is None:
        return ()
    ipv6 = slice_obj.get("addressType") == "IPv6"
    found = []
    for member in _items(slice_obj.get("endpoints")):
        if not isinstance(member, Mapping):
            continue
        for address in _items(member.get("addresses")):
            if str(address) != own_ip:
                found.append(f"[{address}]:{port}" if ipv6 else f"{address}:{port}")
    return tuple(found)
