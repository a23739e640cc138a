"""The children of Endpoints (Deployments, Services, PDBs, HPAs): indexes of what exists, and
events that refresh the owner's status or put back a child deleted by hand."""

from __future__ import annotations

from typing import Any

import kopf

from sageport.contract import LABEL_CONFIG, LABEL_VARIANT
from sageport.operator.handlers.indexes import OURS, lookups, owner_key, values
from sageport.operator.reconcile.lookups import ChildRef
from sageport.operator.reconcile.readiness import deployment_readiness
from sageport.operator.render.keda import KEDA_API_VERSION

KEDA_GROUP, KEDA_VERSION = KEDA_API_VERSION.split("/")


@kopf.index("apps", "v1", "deployments", labels=OURS)
async def deployment_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    key = owner_key(namespace, labels)
    fleet = (labels.get(LABEL_CONFIG), labels.get(LABEL_VARIANT))
    return {key: (fleet, body["metadata"]["name"], deployment_readiness(body))} if key else None


def _child_entry(namespace: str | None, labels: kopf.Labels, body: kopf.Body) -> dict[Any, Any] | None:
    key = owner_key(namespace, labels)
    return {key: ChildRef(body["apiVersion"], body["kind"], body["metadata"]["name"])} if key else None


@kopf.index("", "v1", "services", labels=OURS)
async def service_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


@kopf.index("policy", "v1", "poddisruptionbudgets", labels=OURS)
async def pdb_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=OURS)
async def hpa_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


# Serverless variants' ScaledObjects. Without KEDA's CRD kopf finds no such resource and this
# index stays empty (the apply then reports KEDA missing on the Endpoint).
@kopf.index(KEDA_GROUP, KEDA_VERSION, "scaledobjects", labels=OURS)
async def scaled_object_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


# Async variants' TriggerAuthentications (scaled from zero on their queue), for pruning.
@kopf.index(KEDA_GROUP, KEDA_VERSION, "triggerauthentications", labels=OURS)
async def trigger_authentication_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    return _child_entry(namespace, labels, body)


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
    key = owner_key(namespace, labels)
    owner = next(iter(values(indexes["endpoint_index"], key)), None) if key else None
    if key is None or owner is None:
        return
    deleted = type == "DELETED"
    if deleted and not owner["metadata"].get("deletionTimestamp"):
        memo.reconciler.invalidate(key)  # a child was deleted by hand: put it back
        await memo.reconciler.run_if_spec_changed(owner, lookups(indexes))
        return
    # Most events change nothing the status shows: skip them before doing any work.
    if resource.plural != "deployments":
        return
    news = None if deleted else deployment_readiness(body)
    seen_key = (resource.plural, namespace, body["metadata"]["name"])
    if memo.children_seen.get(seen_key) == news and not deleted:
        return
    if deleted:
        memo.children_seen.pop(seen_key, None)
    else:
        memo.children_seen[seen_key] = news
    await memo.reconciler.refresh_status(owner, lookups(indexes))
