"""kopf wiring only: indexes over what the operator reads, and handlers that call reconcilers.

References (Endpoint -> EndpointConfig -> Model, InstanceType) are resolved through in-memory
indexes, never by API reads, and any creation order works: when a referenced object appears or
changes, the Endpoints that use it are reconciled again.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kopf
from pydantic import ValidationError

from sageport.api.v1alpha1 import API_VERSION, GROUP, VERSION, EndpointConfig, Model, ObjectStatus
from sageport.operator.reconcile import ChildRef, Lookups, validation_message
from sageport.operator.reconcile.observe import observe_deployment, unschedulable_message
from sageport.operator.render.names import LABEL_ENDPOINT_OBJECT, LABEL_VARIANT, MANAGED_BY
from sageport.operator.settings import OperatorSettings, configure_kopf, make_reconciler
from sageport.operator.status import Problem, VariantObservation, object_status

log = logging.getLogger(__name__)

OURS = {"app.kubernetes.io/managed-by": MANAGED_BY}
Indexes = Mapping[str, Any]


# ---- startup -------------------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    memo.reconciler, memo.kube = make_reconciler(OperatorSettings.from_env())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.kube.close()


@kopf.on.probe(id="reconciler")
def reconciler_alive(memo: kopf.Memo, **_: Any) -> bool:
    return memo.get("reconciler") is not None


# ---- indexes -------------------------------------------------------------------------------


@kopf.index(GROUP, VERSION, "models")
def model_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, spec.get("modelName") or name): dict(body)}


@kopf.index(GROUP, VERSION, "endpointconfigs")
def config_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, spec.get("endpointConfigName") or name): dict(body)}


@kopf.index(GROUP, VERSION, "endpointconfigs")
def configs_by_model(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    config_name = spec.get("endpointConfigName") or name
    return {(namespace, v.get("modelName")): config_name for v in spec.get("productionVariants") or []}


@kopf.index(GROUP, VERSION, "instancetypes")
def instance_type_index(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: dict(body)}


@kopf.index(GROUP, VERSION, "endpoints")
def endpoint_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): dict(body)}


@kopf.index(GROUP, VERSION, "endpoints")
def endpoints_by_config(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("endpointConfigName")): name}


def _owner_key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str, str] | None:
    owner = labels.get(LABEL_ENDPOINT_OBJECT)
    if owner is None or namespace is None:
        return None
    return (namespace, owner)


@kopf.index("apps", "v1", "deployments", labels=OURS)
def deployment_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    key = _owner_key(namespace, labels)
    variant, name = labels.get(LABEL_VARIANT), body["metadata"]["name"]
    return {key: (variant, name, observe_deployment(body))} if key else None


@kopf.index("", "v1", "pods", labels={LABEL_ENDPOINT_OBJECT: kopf.PRESENT})
def unschedulable_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    key, message = _owner_key(namespace, labels), unschedulable_message(body)
    return {key: (labels.get(LABEL_VARIANT), message)} if key and message else None


def _child_entry(namespace: str | None, labels: kopf.Labels, body: kopf.Body) -> dict[Any, Any] | None:
    key = _owner_key(namespace, labels)
    return {key: ChildRef(body["apiVersion"], body["kind"], body["metadata"]["name"])} if key else None


@kopf.index("", "v1", "services", labels=OURS)
def service_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


@kopf.index("policy", "v1", "poddisruptionbudgets", labels=OURS)
def pdb_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=OURS)
def hpa_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


def _values(index: kopf.Index[Any, Any], key: Any) -> list[Any]:
    return list(index.get(key, ()))


def lookups(indexes: Indexes) -> Lookups:
    """Typed read access to the indexes kopf passes to every handler."""

    def observations(namespace: str | None, endpoint: str) -> dict[str, VariantObservation]:
        pods = {
            variant: message
            for variant, message in _values(indexes["unschedulable_pods"], (namespace, endpoint))
        }
        observed: dict[str, VariantObservation] = {}
        for variant, _name, observation in _values(indexes["deployment_index"], (namespace, endpoint)):
            observed[variant] = VariantObservation(
                ready_instances=observation.ready_instances,
                desired_instances=observation.desired_instances,
                failure=observation.failure,
                unschedulable=pods.get(variant),
            )
        return observed

    def children(namespace: str | None, endpoint: str) -> list[ChildRef]:
        key = (namespace, endpoint)
        refs = [
            ChildRef("apps/v1", "Deployment", name)
            for _, name, _ in _values(indexes["deployment_index"], key)
        ]
        for index_name in ("service_children", "pdb_children", "hpa_children"):
            refs += _values(indexes[index_name], key)
        return refs

    return Lookups(
        configs=lambda ns, name: _values(indexes["config_index"], (ns, name)),
        models=lambda ns, name: _values(indexes["model_index"], (ns, name)),
        instance_types=lambda name: next(iter(_values(indexes["instance_type_index"], name)), None),
        observations=observations,
        children=children,
    )


# ---- Endpoint ------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "endpoints")
@kopf.on.create(GROUP, VERSION, "endpoints")
@kopf.on.update(GROUP, VERSION, "endpoints", field="spec")
async def endpoint_changed(body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:
    await memo.reconciler.reconcile(dict(body), lookups(indexes))


@kopf.on.delete(GROUP, VERSION, "endpoints", optional=True)
def endpoint_deleted(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    # Children go by ownerReference garbage collection; only our memory needs clearing.
    memo.reconciler.forget((namespace, name))


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
@kopf.on.event("", "v1", "pods", labels={LABEL_ENDPOINT_OBJECT: kopf.PRESENT})
async def variant_observed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **indexes: Any
) -> None:
    key = _owner_key(namespace, labels)
    body = next(iter(_values(indexes["endpoint_index"], key)), None) if key else None
    if body is not None:
        await memo.reconciler.refresh_status(body, lookups(indexes))


# ---- Model, EndpointConfig, InstanceType: validate, then re-reconcile their users ----------


async def _reconcile_endpoints(names: Iterable[tuple[str, str]], memo: kopf.Memo, indexes: Indexes) -> None:
    for key in sorted(set(names)):
        for body in _values(indexes["endpoint_index"], key):
            await memo.reconciler.reconcile(body, lookups(indexes))


async def _write_object_status(
    plural: str, body: kopf.Body, problem: Problem | None, memo: kopf.Memo
) -> None:
    previous = ObjectStatus.model_validate(body["status"]) if body.get("status") else None
    status = object_status(
        previous=previous,
        generation=body["metadata"].get("generation"),
        problem=problem,
        now=datetime.datetime.now(datetime.UTC),
    )
    if status is not previous:
        wire = {"observedGeneration": None, "conditions": None, **status.to_wire()}
        await memo.kube.patch_status(
            API_VERSION, plural, body["metadata"]["namespace"], body["metadata"]["name"], wire
        )


def _validate(model: type[Model] | type[EndpointConfig], body: kopf.Body) -> Problem | None:
    try:
        model.model_validate(dict(body))
    except ValidationError as error:
        return Problem("InvalidSpec", validation_message(error), terminal=True)
    return None


@kopf.on.resume(GROUP, VERSION, "models")
@kopf.on.create(GROUP, VERSION, "models")
@kopf.on.update(GROUP, VERSION, "models", field="spec")
@kopf.on.delete(GROUP, VERSION, "models", optional=True)
async def model_changed(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    spec: kopf.Spec,
    memo: kopf.Memo,
    reason: str,
    **indexes: Any,
) -> None:
    if reason != "delete":
        await _write_object_status("models", body, _validate(Model, body), memo)
    ns, model_name = namespace or "default", spec.get("modelName") or name
    configs = _values(indexes["configs_by_model"], (ns, model_name))
    users = [(ns, ep) for config in configs for ep in _values(indexes["endpoints_by_config"], (ns, config))]
    await _reconcile_endpoints(users, memo, indexes)


@kopf.on.resume(GROUP, VERSION, "endpointconfigs")
@kopf.on.create(GROUP, VERSION, "endpointconfigs")
@kopf.on.update(GROUP, VERSION, "endpointconfigs", field="spec")
@kopf.on.delete(GROUP, VERSION, "endpointconfigs", optional=True)
async def config_changed(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    spec: kopf.Spec,
    memo: kopf.Memo,
    reason: str,
    **indexes: Any,
) -> None:
    if reason != "delete":
        await _write_object_status("endpointconfigs", body, _validate(EndpointConfig, body), memo)
    ns, config_name = namespace or "default", spec.get("endpointConfigName") or name
    users = [(ns, ep) for ep in _values(indexes["endpoints_by_config"], (ns, config_name))]
    await _reconcile_endpoints(users, memo, indexes)


@kopf.on.create(GROUP, VERSION, "instancetypes")
@kopf.on.update(GROUP, VERSION, "instancetypes", field="spec")
@kopf.on.delete(GROUP, VERSION, "instancetypes", optional=True)
async def instance_type_changed(memo: kopf.Memo, **indexes: Any) -> None:
    # Rare (catalog edits): reconcile every Endpoint rather than track which type each uses.
    keys: Sequence[tuple[str, str]] = list(indexes["endpoint_index"].keys())
    await _reconcile_endpoints(keys, memo, indexes)
