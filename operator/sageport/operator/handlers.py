"""kopf wiring only: indexes over what the operator reads, and handlers that call reconcilers.

References (Endpoint -> EndpointConfig -> Model, InstanceType) are resolved through in-memory
indexes, never by API reads, and any creation order works: when a referenced object appears or
changes, the Endpoints that use it are reconciled again.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from sageport.api.v1alpha1 import API_VERSION, GROUP, VERSION, EndpointConfig, Model, ObjectStatus
from sageport.operator.reconcile import ChildRef, Lookups, validation_message
from sageport.operator.reconcile.catalog import keep_catalog
from sageport.operator.reconcile.observe import observe_deployment
from sageport.operator.render.names import LABEL_ENDPOINT_OBJECT, LABEL_VARIANT, MANAGED_BY
from sageport.operator.settings import OperatorSettings, configure_kopf, make_reconciler
from sageport.operator.status import Problem, VariantObservation, object_status

log = logging.getLogger(__name__)

OURS = {"app.kubernetes.io/managed-by": MANAGED_BY}
RESYNC_SECONDS = 60
PENDING_CHECK_SECONDS = 5
PENDING_CHECKS_PER_TICK = 20
Indexes = Mapping[str, Any]


# ---- startup -------------------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    config = OperatorSettings.from_env()
    memo.reconciler, memo.kube = make_reconciler(config)
    memo.live = {}
    memo.generations = {}
    memo.children_seen = {}
    memo.resync = asyncio.create_task(resync_forever(memo))
    memo.pending = asyncio.create_task(check_pending_forever(memo))
    memo.catalog = None
    if config.catalog_path:  # the Helm chart's InstanceType catalog (a mounted ConfigMap)
        memo.catalog = asyncio.create_task(keep_catalog(memo.kube, Path(config.catalog_path)))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()
    memo.pending.cancel()
    if memo.catalog is not None:
        memo.catalog.cancel()
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
        observed: dict[str, VariantObservation] = {}
        for variant, _name, observation in _values(indexes["deployment_index"], (namespace, endpoint)):
            observed[variant] = VariantObservation(
                ready_instances=observation.ready_instances,
                desired_instances=observation.desired_instances,
                failure=observation.failure,
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
# Event handlers, not kopf's create/update handlers: those write kopf's state annotations on
# every object (an extra API write each, and noise in Argo CD diffs). The reconciler tracks the
# generation it last reconciled, so a spec change means a full run and anything else (our own
# status writes included) only a status refresh, which writes nothing when nothing changed.


@kopf.on.event(GROUP, VERSION, "endpoints")
async def endpoint_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    # kopf's indexes are live views: keep them for the background loops. Into a dict made at
    # start-up, since kopf hands each object a shallow copy of the memo (attributes set here
    # would stay with this Endpoint's copy).
    memo.live["indexes"] = indexes
    if type == "DELETED":  # children go by ownerReference garbage collection
        memo.reconciler.forget(_key(body))
        return
    await memo.reconciler.observe(dict(body), lookups(indexes))


async def check_pending_forever(memo: kopf.Memo) -> None:
    """Every PENDING_CHECK_SECONDS, look at the pods of Endpoints that have waited a while for
    instances, to report why a pod cannot be scheduled. Pods are listed on demand with a
    server-side label selector instead of watched: kopf would watch every pod in the cluster
    and filter by label in Python, which cost a sixth of the time to bring up 500 Endpoints."""
    while True:
        await asyncio.sleep(PENDING_CHECK_SECONDS)
        indexes = memo.live.get("indexes")
        if indexes is None:
            continue
        for key in memo.reconciler.waiting_for_instances()[:PENDING_CHECKS_PER_TICK]:
            for body in _values(indexes["endpoint_index"], key):
                try:
                    await memo.reconciler.check_pending_pods(body, lookups(indexes))
                except Exception:  # one Endpoint's failure must not stop the others' checks
                    log.exception("pod check of Endpoint %s/%s failed", *key)


async def resync_forever(memo: kopf.Memo) -> None:
    """Every RESYNC_SECONDS, resync each Endpoint: retry runs that failed for a passing reason
    (API errors) and, now and then, repair drift. Not a kopf timer: those force a finalizer on
    every object, which blocks deletion whenever the operator is down."""
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        indexes = memo.live.get("indexes")
        if indexes is None:
            continue  # no handler has run yet, so no index was handed to us
        for key in list(indexes["endpoint_index"].keys()):
            for body in _values(indexes["endpoint_index"], key):
                try:
                    await memo.reconciler.resync(body, lookups(indexes))
                except Exception:  # one Endpoint's failure must not stop the others' resync
                    log.exception("resync of Endpoint %s/%s failed", *key)


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
@kopf.on.event("", "v1", "services", labels=OURS)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OURS)
async def child_event(
    type: str,  # noqa: A002 - kopf's name
    body: kopf.Body,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    resource: kopf.Resource,
    **indexes: Any,
) -> None:
    key = _owner_key(namespace, labels)
    owner = next(iter(_values(indexes["endpoint_index"], key)), None) if key else None
    if key is None or owner is None:
        return
    deleted = type == "DELETED"
    if deleted and not owner["metadata"].get("deletionTimestamp"):
        memo.reconciler.invalidate(key)  # a child was deleted by hand: put it back
        await memo.reconciler.observe(owner, lookups(indexes))
        return
    # Most events change nothing the status shows: skip them before doing any work.
    if resource.plural != "deployments":
        return
    news = None if deleted else observe_deployment(body)
    seen_key = (resource.plural, namespace, body["metadata"]["name"])
    if memo.children_seen.get(seen_key) == news and not deleted:
        return
    if deleted:
        memo.children_seen.pop(seen_key, None)
    else:
        memo.children_seen[seen_key] = news
    await memo.reconciler.refresh_status(owner, lookups(indexes))


def _key(body: kopf.Body) -> tuple[str, str]:
    return (body["metadata"].get("namespace") or "default", body["metadata"]["name"])


# ---- Model, EndpointConfig, InstanceType: validate, then re-reconcile their users ----------


def _changed(memo: kopf.Memo, kind: str, event_type: str | None, body: kopf.Body) -> bool:
    """True when users must be reconciled: the object appeared, went, or its spec changed."""
    key = (kind, *_key(body))
    generation = body["metadata"].get("generation")
    seen = memo.generations.get(key)
    if event_type == "DELETED":
        memo.generations.pop(key, None)
        return True
    memo.generations[key] = generation
    # At start-up (no event type) every Endpoint reconciles itself; nothing to trigger.
    return event_type is not None and seen != generation


async def _reconcile_endpoints(names: Iterable[tuple[str, str]], memo: kopf.Memo, indexes: Indexes) -> None:
    for key in sorted(set(names)):
        for body in _values(indexes["endpoint_index"], key):
            memo.reconciler.invalidate(key)
            await memo.reconciler.observe(body, lookups(indexes))


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
        await memo.kube.patch_status(API_VERSION, plural, *_key(body), wire)


def _validate(model: type[Model] | type[EndpointConfig], body: kopf.Body) -> Problem | None:
    try:
        model.model_validate(dict(body))
    except ValidationError as error:
        return Problem("InvalidSpec", validation_message(error), terminal=True)
    return None


@kopf.on.event(GROUP, VERSION, "models")
async def model_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    if type != "DELETED":
        await _write_object_status("models", body, _validate(Model, body), memo)
    if not _changed(memo, "models", type, body):
        return
    ns, name = _key(body)
    model_name = body["spec"].get("modelName") or name
    configs = _values(indexes["configs_by_model"], (ns, model_name))
    users = [(ns, ep) for config in configs for ep in _values(indexes["endpoints_by_config"], (ns, config))]
    await _reconcile_endpoints(users, memo, indexes)


@kopf.on.event(GROUP, VERSION, "endpointconfigs")
async def config_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    if type != "DELETED":
        await _write_object_status("endpointconfigs", body, _validate(EndpointConfig, body), memo)
    if not _changed(memo, "endpointconfigs", type, body):
        return
    ns, name = _key(body)
    config_name = body["spec"].get("endpointConfigName") or name
    users = [(ns, ep) for ep in _values(indexes["endpoints_by_config"], (ns, config_name))]
    await _reconcile_endpoints(users, memo, indexes)


@kopf.on.event(GROUP, VERSION, "instancetypes")
async def instance_type_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    if not _changed(memo, "instancetypes", type, body):
        return
    # Rare (catalog edits): reconcile every Endpoint rather than track which type each uses.
    keys: Sequence[tuple[str, str]] = list(indexes["endpoint_index"].keys())
    await _reconcile_endpoints(keys, memo, indexes)
