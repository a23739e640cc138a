"""Example manifests resolved as the operator resolves them, for the Endpoint path's unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sageport.api.v1alpha1 import Endpoint
from sageport.operator.catalog import catalog_manifests
from sageport.operator.reconcile.resolve import ResolvedEndpoint, resolve_endpoint
from sageport.operator.status import Problem

CATALOG = {m["metadata"]["name"]: m for m in catalog_manifests()}


def resolve_documents(docs: Sequence[dict[str, Any]], *, namespace: str = "ml") -> ResolvedEndpoint | Problem:
    """Resolve the Endpoint among ``docs`` against the others and the default catalog."""
    for doc in docs:
        doc["metadata"].setdefault("namespace", namespace)
        doc["metadata"].setdefault("uid", f"uid-{doc['metadata']['name']}")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)

    def named(kind: str, field: str) -> Any:
        return lambda name: [
            d for d in by_kind.get(kind, []) if (d["spec"].get(field) or d["metadata"]["name"]) == name
        ]

    return resolve_endpoint(
        Endpoint.model_validate(by_kind["Endpoint"][0]),
        configs=named("EndpointConfig", "endpointConfigName"),
        models=named("Model", "modelName"),
        instance_types=CATALOG.get,
    )


def kind(docs: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    """The first document of a kind."""
    return next(d for d in docs if d["kind"] == name)
