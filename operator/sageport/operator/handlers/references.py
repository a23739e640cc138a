"""What Endpoints reference (Model, EndpointConfig, InstanceType): indexes by SageMaker name,
the validity of Models and EndpointConfigs in their own status, and a re-run of the Endpoints
that use an object when it appears, changes or goes."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import kopf
from pydantic import ValidationError

from sageport.api.v1alpha1 import API_VERSION, EndpointConfig, Model, ModelStatus, ObjectStatus
from sageport.contract import API_GROUP, API_VERSION_NAME, Plural
from sageport.operator.handlers.indexes import POD_SECURITY_LEVELS, Indexes, lookups, values
from sageport.operator.kube import KubeError
from sageport.operator.pod_security import root_problem, runs_as_root
from sageport.operator.reconcile.lookups import Key, key_of
from sageport.operator.reconcile.resolve import validation_message
from sageport.operator.render.images import ResolvedImage, resolve_image
from sageport.operator.status import Problem, model_status, object_status


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.MODELS)
async def model_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, spec.get("modelName") or name): dict(body)}


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.ENDPOINT_CONFIGS)
async def config_index(
    namespace: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, spec.get("endpointConfigName") or name): dict(body)}


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.ENDPOINT_CONFIGS)
async def configs_by_model(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    config_name = spec.get("endpointConfigName") or name
    return {(namespace, v.get("modelName")): config_name for v in spec.get("productionVariants") or []}


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.INSTANCE_TYPES)
async def instance_type_index(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: dict(body)}


@kopf.on.event(API_GROUP, API_VERSION_NAME, Plural.MODELS)
async def model_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    ns, name = key_of(body)
    if type != "DELETED":
        await write_model_status(body, memo, await _pod_security(body, memo))
    # The run-as-root annotation is no spec field (no new generation) but changes the pods.
    root_key = ("run-as-root", ns, name)
    root = runs_as_root(body["metadata"].get("annotations"))
    root_changed = type is not None and root_key in memo.generations and memo.generations[root_key] != root
    memo.generations[root_key] = root
    if not _changed(memo, Plural.MODELS, type, body) and not root_changed:
        return
    configs = values(indexes["configs_by_model"], (ns, body["spec"].get("modelName") or name))
    users = [(ns, ep) for config in configs for ep in values(indexes["endpoints_by_config"], (ns, config))]
    await reconcile_endpoints(users, memo, indexes)


@kopf.on.event(API_GROUP, API_VERSION_NAME, Plural.ENDPOINT_CONFIGS)
async def config_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    if type != "DELETED":
        await _write_object_status(Plural.ENDPOINT_CONFIGS, body, _validate(EndpointConfig, body), memo)
    if not _changed(memo, Plural.ENDPOINT_CONFIGS, type, body):
        return
    ns, name = key_of(body)
    config_name = body["spec"].get("endpointConfigName") or name
    users = [(ns, ep) for ep in values(indexes["endpoints_by_config"], (ns, config_name))]
    await reconcile_endpoints(users, memo, indexes)


@kopf.on.event(API_GROUP, API_VERSION_NAME, Plural.INSTANCE_TYPES)
async def instance_type_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    if not _changed(memo, Plural.INSTANCE_TYPES, type, body):
        return
    # Rare (catalog edits): reconcile every Endpoint rather than track which type each uses.
    await reconcile_endpoints(list(indexes["endpoint_index"].keys()), memo, indexes)


def _changed(memo: kopf.Memo, plural: str, event_type: str | None, body: kopf.Body) -> bool:
    """True when users must be reconciled: the object appeared, went, or its spec changed."""
    key = (plural, *key_of(body))
    generation = body["metadata"].get("generation")
    seen = memo.generations.get(key)
    if event_type == "DELETED":
        memo.generations.pop(key, None)
        return True
    memo.generations[key] = generation
    # At start-up (no event type) every Endpoint reconciles itself; nothing to trigger.
    return event_type is not None and seen != generation


async def reconcile_endpoints(keys: Iterable[Key], memo: kopf.Memo, indexes: Indexes) -> None:
    for key in sorted(set(keys)):
        for body in values(indexes["endpoint_index"], key):
            memo.reconciler.invalidate(key)
            await memo.reconciler.run_if_spec_changed(body, lookups(indexes))


def _validate(model: type[Model] | type[EndpointConfig], body: kopf.Body) -> Problem | None:
    try:
        model.model_validate(dict(body))
    except ValidationError as error:
        return Problem("InvalidSpec", validation_message(error), terminal=True)
    return None


async def _pod_security(body: kopf.Body, memo: kopf.Memo) -> str | None:
    """The Model's namespace's Pod Security label: read now when the Model asks for root (the
    polled one may not have seen a namespace labelled a moment ago)."""
    ns, _name = key_of(body)
    if runs_as_root(body["metadata"].get("annotations")) is not True:
        return POD_SECURITY_LEVELS.get(ns)
    try:
        return await memo.kube.pod_security_level(ns)  # type: ignore[no-any-return]
    except KubeError:
        return POD_SECURITY_LEVELS.get(ns)


def _images(
    body: kopf.Body, memo: kopf.Memo, pod_security: str | None
) -> tuple[Problem | None, list[ResolvedImage]]:
    """The Model's problem, if any, and the image each of its containers runs (when valid)."""
    try:
        model = Model.model_validate(dict(body))
    except ValidationError as error:
        return Problem("InvalidSpec", validation_message(error), terminal=True), []
    settings = memo.config.render_settings()
    ns, _name = key_of(body)
    problem = root_problem(model.sagemaker_name, model.metadata.annotations, ns, pod_security)
    return problem, [
        resolve_image(c.image, settings.image_rules, settings.runtime_image)
        for c in model.spec.all_containers()
    ]


async def write_model_status(body: kopf.Body, memo: kopf.Memo, pod_security: str | None) -> None:
    """The Model's status; ``pod_security`` is its namespace's Pod Security enforce label."""
    previous = ModelStatus.model_validate(body["status"]) if body.get("status") else None
    problem, images = _images(body, memo, pod_security)
    status = model_status(
        previous=previous,
        generation=body["metadata"].get("generation"),
        problem=problem,
        images=images,
        now=datetime.datetime.now(datetime.UTC),
    )
    if status is not previous:
        cleared = {"observedGeneration": None, "conditions": None, "deployedImages": None}
        await memo.kube.patch_status(
            API_VERSION, Plural.MODELS, *key_of(body), {**cleared, **status.to_wire()}
        )


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
        await memo.kube.patch_status(API_VERSION, plural, *key_of(body), wire)
