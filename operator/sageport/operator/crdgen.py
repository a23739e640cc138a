"""Generate crds/*.yaml (with the chart's copy) and the instance-type catalog from the API models.

The CRDs are written twice, identical: ``crds/`` for ``kubectl apply``, and
``charts/sageport/files/crds/`` because Helm cannot read files outside the chart. The API models are the single source of truth. Their JSON schema is rewritten into a
Kubernetes structural schema: refs inlined, ``Optional`` as ``nullable``, no titles, no
``additionalProperties: false`` (the API server prunes or, with strict field validation,
rejects unknown fields), ``propertyNames`` turned into CEL. ``--check`` exits non-zero when
the committed files differ from what the models generate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from sageport.api.v1alpha1 import (
    GROUP,
    VERSION,
    EndpointConfigSpec,
    EndpointSpec,
    EndpointStatus,
    InstanceTypeSpec,
    ModelSpec,
    ModelStatus,
    ObjectStatus,
    TransformJobSpec,
    TransformJobStatus,
)
from sageport.contract import Plural
from sageport.operator.catalog import catalog_manifests

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = REPO_ROOT / "crds"
CHART_DIR = REPO_ROOT / "charts" / "sageport"
# Helm reads no file outside the chart: the chart templates its CRDs from this identical copy.
CHART_CRD_DIR = CHART_DIR / "files" / "crds"
CATALOG_FILE = CHART_DIR / "files" / "instance-types.yaml"

Schema = dict[str, Any]

_READY_COLUMN = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


@dataclass(frozen=True)
class Kind:
    """Everything the CRD of one kind needs besides the schema of its models."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel] | None
    description: str
    scope: str = "Namespaced"
    immutable_spec: bool = False
    columns: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


KINDS = (
    Kind(
        kind="Model",
        plural=Plural.MODELS.value,
        short_names=("spm", "spmodel"),
        spec=ModelSpec,
        status=ModelStatus,
        immutable_spec=True,
        description="A SageMaker Model: container image, model artifact and environment. Immutable.",
        columns=(
            _READY_COLUMN,
            {"name": "Image", "type": "string", "jsonPath": ".spec.primaryContainer.image", "priority": 1},
            {
                "name": "Runs",
                "type": "string",
                "jsonPath": ".status.deployedImages[0].resolvedImage",
                "priority": 1,
            },
            _AGE_COLUMN,
        ),
    ),
    Kind(
        kind="EndpointConfig",
        plural=Plural.ENDPOINT_CONFIGS.value,
        short_names=("spepc",),
        spec=EndpointConfigSpec,
        status=ObjectStatus,
        immutable_spec=True,
        description="A SageMaker EndpointConfig: production variants (model, instances, weight). Immutable.",
        columns=(_READY_COLUMN, _AGE_COLUMN),
    ),
    Kind(
        kind="Endpoint",
        plural=Plural.ENDPOINTS.value,
        short_names=("spep",),
        spec=EndpointSpec,
        status=EndpointStatus,
        description="A SageMaker Endpoint: runs an EndpointConfig's variants and serves invocations.",
        columns=(
            _READY_COLUMN,
            {"name": "Status", "type": "string", "jsonPath": ".status.endpointStatus"},
            {"name": "Config", "type": "string", "jsonPath": ".spec.endpointConfigName"},
            {"name": "Failure", "type": "string", "jsonPath": ".status.failureReason", "priority": 1},
            _AGE_COLUMN,
        ),
    ),
    Kind(
        kind="TransformJob",
        plural=Plural.TRANSFORM_JOBS.value,
        short_names=("sptj",),
        spec=TransformJobSpec,
        status=TransformJobStatus,
        immutable_spec=True,
        description="A SageMaker batch TransformJob over S3 objects.",
        columns=(
            {"name": "Status", "type": "string", "jsonPath": ".status.transformJobStatus"},
            {"name": "Model", "type": "string", "jsonPath": ".spec.modelName"},
            {"name": "Instances", "type": "integer", "jsonPath": ".spec.transformResources.instanceCount"},
            {
                "name": "Instance-Type",
                "type": "string",
                "jsonPath": ".spec.transformResources.instanceType",
                "priority": 1,
            },
            {"name": "Start-Time", "type": "date", "jsonPath": ".status.transformStartTime", "priority": 1},
            {"name": "Failure", "type": "string", "jsonPath": ".status.failureReason", "priority": 1},
            _AGE_COLUMN,
        ),
    ),
    Kind(
        kind="InstanceType",
        plural=Plural.INSTANCE_TYPES.value,
        short_names=("spit",),
        spec=InstanceTypeSpec,
        status=None,
        scope="Cluster",
        description="Catalog entry: what an ml.* instance type means in this cluster (resources, placement).",
        columns=(
            {"name": "CPU", "type": "string", "jsonPath": ".spec.cpu"},
            {"name": "Memory", "type": "string", "jsonPath": ".spec.memory"},
            {"name": "GPUs", "type": "integer", "jsonPath": ".spec.gpuCount"},
            {"name": "GPU Product", "type": "string", "jsonPath": ".spec.gpuProduct"},
        ),
    ),
)


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's JSON schema rewritten into a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, Schema] = raw.pop("$defs", {})
    return _rewrite(raw, definitions)


def _rewrite(node: Schema, definitions: Mapping[str, Schema]) -> Schema:
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _rewrite(merged, definitions)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"only Optional[X] unions map to a structural schema, got {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        inner = _rewrite(options[0], definitions)
        return {**inner, **_rewrite(rest, definitions), "nullable": True}

    out: Schema = {}
    for key, value in node.items():
        if key in ("title", "additionalProperties") and not isinstance(value, dict):
            continue  # titles are noise; `additionalProperties: false` is not structural
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: _rewrite(prop, definitions) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _rewrite(value, definitions)
        elif key == "propertyNames":
            out.setdefault("x-kubernetes-validations", []).append(
                {
                    "rule": f"self.all(k, k.matches('{value['pattern']}'))",
                    "message": f"keys must match {value['pattern']}",
                }
            )
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # OpenAPI v3.0 (what Kubernetes speaks) has boolean exclusive bounds.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
    return out


# What SageMaker lets change on its immutable resources: tags (AddTags, DeleteTags).
MUTABLE_FIELDS = frozenset({"tags"})


def _immutable_except(spec_schema: Schema, mutable: frozenset[str], kind: str) -> None:
    """Transition rules: every top-level field but ``mutable`` keeps its value (a rule on the
    field) and stays set or unset (a rule on the spec)."""
    message = (
        f"{kind} spec is immutable except tags, as in SageMaker: create a new {kind} under another "
        "name and point to it instead"
    )
    fields = sorted(set(spec_schema.get("properties", {})) - mutable)
    for name in fields:
        spec_schema["properties"][name].setdefault("x-kubernetes-validations", []).append(
            {"rule": "self == oldSelf", "message": message}
        )
    spec_schema.setdefault("x-kubernetes-validations", []).append(
        {
            "rule": " && ".join(f"has(self.{name}) == has(oldSelf.{name})" for name in fields),
            "message": message,
        }
    )


def crd(kind: Kind) -> Schema:
    """The CustomResourceDefinition of one kind."""
    spec_schema = structural_schema(kind.spec)
    spec_schema["description"] = kind.spec.__doc__ or ""
    if kind.immutable_spec:
        _immutable_except(spec_schema, MUTABLE_FIELDS, kind.kind)
    properties: Schema = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec_schema,
    }
    version: Schema = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "description": kind.description,
                "type": "object",
                "required": ["spec"],
                "properties": properties,
            }
        },
        "additionalPrinterColumns": [dict(c) for c in kind.columns],
    }
    if kind.status is not None:
        properties["status"] = structural_schema(kind.status)
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["sageport"],
            },
            "versions": [version],
        },
    }


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated sub-schemas out in full: anchors and aliases confuse readers of a CRD."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(documents: list[Schema]) -> str:
    header = "# Generated by `make manifests` from the pydantic API models. Do not edit.\n"
    return header + yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False, width=120)


def generated_files() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    for kind in KINDS:
        text = _dump([crd(kind)])
        files[CRD_DIR / f"{GROUP}_{kind.plural}.yaml"] = text
        files[CHART_CRD_DIR / f"{GROUP}_{kind.plural}.yaml"] = text
    files[CATALOG_FILE] = _dump(catalog_manifests())
    return files


def leftover_files(files: Mapping[Path, str]) -> list[Path]:
    """CRD files in the generated directories that no kind generates any more (a removed kind)."""
    found = [*CRD_DIR.glob(f"{GROUP}_*.yaml"), *CHART_CRD_DIR.glob(f"{GROUP}_*.yaml")]
    return sorted(path for path in found if path not in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if committed files are out of date")
    args = parser.parse_args(argv)
    files = generated_files()
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    leftovers = leftover_files(files)
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)} (run `make manifests`)", file=sys.stderr)
        for path in leftovers:
            print(f"not generated: {path.relative_to(REPO_ROOT)} (run `make manifests`)", file=sys.stderr)
        return 1 if stale or leftovers else 0
    for path in leftovers:
        path.unlink()
        print(f"removed {path.relative_to(REPO_ROOT)}")
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
