"""Typed reads of the in-memory indexes kopf hands every handler (the handlers define them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from sageport.contract import LABEL_ENDPOINT_OBJECT, MANAGED_BY
from sageport.operator.reconcile.lookups import ChildRef, Fleet, Key, Lookups
from sageport.operator.render.names import MANAGED_BY_LABEL
from sageport.operator.status import VariantObservation

OURS = {MANAGED_BY_LABEL: MANAGED_BY}  # the label filter of every child watch
# Each namespace's Pod Security enforce label, as handlers.namespaces last listed them (polled, not
# watched: a kopf watch of namespaces next to its own namespace discovery stalled the child watches).
POD_SECURITY_LEVELS: dict[str, str | None] = {}
Indexes = Mapping[str, Any]
CHILD_INDEXES = (
    "service_children",
    "pdb_children",
    "hpa_children",
    "scaled_object_children",
    "trigger_authentication_children",
)


def values(index: kopf.Index[Any, Any], key: Any) -> list[Any]:
    return list(index.get(key, ()))


def owner_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    """The (namespace, name) of the Endpoint a child belongs to."""
    owner = labels.get(LABEL_ENDPOINT_OBJECT)
    if owner is None or namespace is None:
        return None
    return (namespace, owner)


def lookups(indexes: Indexes) -> Lookups:
    """Typed read access to the indexes kopf passes to every handler."""

    def observations(namespace: str | None, endpoint: str) -> dict[Fleet, VariantObservation]:
        return {
            fleet: observation
            for fleet, _name, observation in values(indexes["deployment_index"], (namespace, endpoint))
        }

    def children(namespace: str | None, endpoint: str) -> list[ChildRef]:
        key = (namespace, endpoint)
        refs = [
            ChildRef("apps/v1", "Deployment", name) for _, name, _ in values(indexes["deployment_index"], key)
        ]
        for index_name in CHILD_INDEXES:
            refs += values(indexes[index_name], key)
        return refs

    return Lookups(
        configs=lambda ns, name: values(indexes["config_index"], (ns, name)),
        models=lambda ns, name: values(indexes["model_index"], (ns, name)),
        instance_types=lambda name: next(iter(values(indexes["instance_type_index"], name)), None),
        observations=observations,
        children=children,
        pod_security=POD_SECURITY_LEVELS.get,
    )
