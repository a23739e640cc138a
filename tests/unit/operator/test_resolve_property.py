"""Any spec a user can write is either rendered or refused with a reason, never a crash.

The examples' specs are mutated (a value replaced by any JSON value, a key dropped, a key
added) and pushed through what the operator does with them: parse, resolve every reference,
admit what is supported, plan and render the children. Each step may refuse (pydantic's ValidationError on the Endpoint itself,
a Problem naming what to fix for the rest); nothing may raise anything else.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sageport.api.v1alpha1 import Endpoint
from sageport.operator.catalog import catalog_manifests
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.plan import plan_endpoint
from sageport.operator.reconcile.resolve import resolve_endpoint
from sageport.operator.render import RenderSettings, variant_children
from sageport.operator.status import Problem
from tests.support.manifests import EXAMPLES, load_documents

SETTINGS = RenderSettings(runtime_image="sageport/runtime:test")
CATALOG = {m["metadata"]["name"]: m for m in catalog_manifests()}
EXAMPLE_DOCS = {
    name: load_documents(EXAMPLES / name)
    for name in ("realtime-sklearn", "gpu-g5", "ab-test-two-variants", "autoscaling")
}
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_examples(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = copy.deepcopy(EXAMPLE_DOCS[draw(st.sampled_from(sorted(EXAMPLE_DOCS)))])
    for _ in range(draw(st.integers(1, 3))):
        doc = draw(st.sampled_from(docs))
        path = draw(st.sampled_from(_paths(doc["spec"])))
        parent: Any = doc["spec"]
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            doc["spec"] = draw(_JSON)
        elif action == "replace" or not isinstance(parent, dict):
            parent[path[-1]] = draw(_JSON)
        elif action == "drop":
            del parent[path[-1]]
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(_JSON)
    for doc in docs:
        doc["metadata"].setdefault("namespace", "ml")
        doc["metadata"].setdefault("uid", f"uid-{doc['metadata']['name']}")
    return docs


def _lookup(docs: list[dict[str, Any]], kind: str, field: str) -> Any:
    def named(name: str) -> list[dict[str, Any]]:
        matches = []
        for doc in docs:
            spec = doc.get("spec")
            alias = spec.get(field) if isinstance(spec, dict) else None
            if doc["kind"] == kind and (alias or doc["metadata"]["name"]) == name:
                matches.append(doc)
        return matches

    return named


@settings(max_examples=400, deadline=None)
@given(docs=mutated_examples())
def test_a_mutated_spec_is_rendered_or_refused_with_a_reason(docs: list[dict[str, Any]]) -> None:
    (endpoint_doc,) = (doc for doc in docs if doc["kind"] == "Endpoint")
    try:
        endpoint = Endpoint.model_validate(endpoint_doc)
    except ValidationError:
        return  # the operator reports it on the Endpoint (tested in test_reconcile)
    resolved = resolve_endpoint(
        endpoint,
        configs=_lookup(docs, "EndpointConfig", "endpointConfigName"),
        models=_lookup(docs, "Model", "modelName"),
        instance_types=CATALOG.get,
    )
    resolution = resolved if isinstance(resolved, Problem) else admit(resolved).problem
    if isinstance(resolution, Problem):
        assert resolution.reason
        assert resolution.message
        return
    assert not isinstance(resolved, Problem)
    for variant in plan_endpoint(resolved, SETTINGS).variants:
        assert variant_children(variant, SETTINGS)
