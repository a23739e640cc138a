"""The default InstanceType catalog: common SageMaker ``ml.*`` hosting types.

Pods request 90 % of the instance's vCPUs and memory, leaving room for node daemons, and all
of its accelerators. GPU types select nodes by the GPU feature-discovery product label and
tolerate the usual ``nvidia.com/gpu`` taint. Clusters override entries by applying their own
InstanceType objects with the same names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from sageport import contract
from sageport.api.v1alpha1 import API_VERSION, InstanceType, InstanceTypeSpec, Toleration

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
_REQUEST_SHARE = 0.9


class _Shape(NamedTuple):
    vcpus: int
    memory_gib: int
    accelerators: int = 0
    product: str | None = None
    resource: str = "nvidia.com/gpu"


_SIZES_XLARGE_UP = ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")


def _gpu_family(product: str, gpus: tuple[int, ...]) -> dict[str, _Shape]:
    """g5/g6-style families: vCPUs and memory double per size, GPUs as listed."""
    vcpus = (4, 8, 16, 32, 48, 64, 96, 192)
    return {
        size: _Shape(cpu, cpu * 4, count, product)
        for size, cpu, count in zip(_SIZES_XLARGE_UP, vcpus, gpus, strict=True)
    }


def _table() -> dict[str, _Shape]:
    table: dict[str, _Shape] = {"ml.t2.medium": _Shape(2, 4), "ml.m4.xlarge": _Shape(4, 16)}
    general = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "12xlarge": 48, "24xlarge": 96}
    for family, gib_per_vcpu in (("m5", 4), ("r5", 8)):
        table.update(
            {f"ml.{family}.{size}": _Shape(cpu, cpu * gib_per_vcpu) for size, cpu in general.items()}
        )
    compute = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "9xlarge": 36, "18xlarge": 72}
    table.update({f"ml.c5.{size}": _Shape(cpu, cpu * 2) for size, cpu in compute.items()})
    g4dn = {"xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48, "16xlarge": 64}
    table.update(
        {
            f"ml.g4dn.{size}": _Shape(cpu, cpu * 4, 4 if size == "12xlarge" else 1, "Tesla-T4")
            for size, cpu in g4dn.items()
        }
    )
    for family, product in (("g5", "NVIDIA-A10G"), ("g6", "NVIDIA-L4")):
        shapes = _gpu_family(product, (1, 1, 1, 1, 4, 1, 4, 8))
        table.update({f"ml.{family}.{size}": shape for size, shape in shapes.items()})
    table.update(
        {
            "ml.p3.2xlarge": _Shape(8, 61, 1, "Tesla-V100-SXM2-16GB"),
            "ml.p3.8xlarge": _Shape(32, 244, 4, "Tesla-V100-SXM2-16GB"),
            "ml.p3.16xlarge": _Shape(64, 488, 8, "Tesla-V100-SXM2-16GB"),
            "ml.p4d.24xlarge": _Shape(96, 1152, 8, "NVIDIA-A100-SXM4-40GB"),
            "ml.p5.48xlarge": _Shape(192, 2048, 8, "NVIDIA-H100-80GB-HBM3"),
        }
    )
    neuron = {
        "xlarge": (4, 16, 1),
        "8xlarge": (32, 128, 1),
        "24xlarge": (96, 384, 6),
        "48xlarge": (192, 768, 12),
    }
    table.update(
        {
            f"ml.inf2.{size}": _Shape(cpu, mem, devices, None, "aws.amazon.com/neuron")
            for size, (cpu, mem, devices) in neuron.items()
        }
    )
    return table


def instance_type_spec(shape: _Shape) -> InstanceTypeSpec:
    millicores = int(shape.vcpus * 1000 * _REQUEST_SHARE)
    mebibytes = int(shape.memory_gib * 1024 * _REQUEST_SHARE)
    tolerations = None
    if shape.accelerators:
        tolerations = [Toleration(key=shape.resource, operator="Exists", effect="NoSchedule")]
    return InstanceTypeSpec(
        cpu=f"{millicores}m",
        memory=f"{mebibytes}Mi",
        gpu_count=shape.accelerators,
        gpu_resource_name=shape.resource,
        gpu_product=shape.product,
        tolerations=tolerations,
    )


def default_catalog() -> dict[str, InstanceTypeSpec]:
    """Every default instance type by name."""
    return {name: instance_type_spec(shape) for name, shape in sorted(_table().items())}


def catalog_manifests() -> list[dict[str, Any]]:
    """The catalog as InstanceType manifests, ready to apply."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "InstanceType",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "sageport"}},
            "spec": spec.to_wire(),
        }
        for name, spec in default_catalog().items()
    ]


# ---- a catalog from files (the Helm chart's ConfigMap) --------------------------------------

CATALOG_LABEL = contract.LABEL_CATALOG  # "true" on the InstanceTypes a catalog sync owns (and prunes)


class CatalogError(ValueError):
    """A catalog file is not a list of valid InstanceType documents."""


def parse_catalog(sources: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """InstanceType manifests by name from YAML texts, given as (source name, text) in order.

    Every document must be a valid InstanceType; a later document overrides an earlier one of
    the same name (the chart's ``instanceTypes.extra`` come after the defaults). The manifests
    carry :data:`CATALOG_LABEL`, and their specs are normalised (defaults filled in) so that
    they compare equal to what the API server returns.
    """
    manifests: dict[str, dict[str, Any]] = {}
    for source, text in sources:
        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            raise CatalogError(f"{source}: not YAML: {error}") from None
        for number, document in enumerate(documents, start=1):
            try:
                item = InstanceType.model_validate(document)
            except ValidationError as error:
                raise CatalogError(f"{source}, document {number}: not an InstanceType: {error}") from None
            labels = {**(item.metadata.labels or {}), CATALOG_LABEL: "true"}
            manifests[item.metadata.name] = {
                "apiVersion": API_VERSION,
                "kind": "InstanceType",
                "metadata": {"name": item.metadata.name, "labels": labels},
                "spec": item.spec.to_wire(),
            }
    return manifests


def catalog_changes(
    desired: Mapping[str, Mapping[str, Any]], existing: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """What to apply (missing or different objects) and what to delete (objects this catalog
    owns that it no longer lists). Objects without :data:`CATALOG_LABEL` are never deleted."""
    current = {obj["metadata"]["name"]: obj for obj in existing}
    to_apply = []
    for name, manifest in sorted(desired.items()):
        obj = current.get(name)
        if obj is None or not _same(manifest, obj):
            to_apply.append(dict(manifest))
    to_delete = sorted(
        name
        for name, obj in current.items()
        if name not in desired and (obj["metadata"].get("labels") or {}).get(CATALOG_LABEL) == "true"
    )
    return to_apply, to_delete


def _same(manifest: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in manifest["metadata"]["labels"].items()):
        return False
    try:
        spec = InstanceTypeSpec.model_validate(obj.get("spec") or {}).to_wire()
    except ValidationError:
        return False
    return bool(spec == manifest["spec"])
