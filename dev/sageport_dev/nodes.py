"""The declarative set of fake nodes (``nodes.yaml``) and the Node objects it expands to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_NODE_SET = Path(__file__).with_name("nodes.yaml")

# kwok manages only nodes with this annotation (see the kwok --manage-nodes-with-annotation-selector).
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# A label (not a taint) marks fake nodes, so a test can keep a pod off them or pin it to them.
FAKE_NODE_LABEL = ("type", "kwok")
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Each node gets its own /24 out of this range; kwok hands pod IPs out of the node's podCIDR.
POD_CIDR_PREFIX = "10.244"
PODS_PER_NODE = "110"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Gpu(_Strict):
    """The GPUs of one node: how many, which product, memory per GPU."""

    count: int = Field(gt=0)
    product: str
    memory_mib: int = Field(alias="memoryMiB", gt=0)


class Taint(_Strict):
    key: str
    value: str = ""
    effect: str = "NoSchedule"


class NodePool(_Strict):
    """``count`` identical nodes of one instance type in one zone."""

    name: str
    count: int = Field(default=1, gt=0)
    zone: str
    instance_type: str = Field(alias="instanceType")
    cpu: str
    memory: str
    ephemeral_storage: str = Field(default="200Gi", alias="ephemeralStorage")
    gpu: Gpu | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)


class NodeSet(_Strict):
    region: str
    pools: list[NodePool]

    def node_names(self) -> list[str]:
        return [f"{pool.name}-{index}" for pool in self.pools for index in range(pool.count)]


def load_node_set(path: Path = DEFAULT_NODE_SET) -> NodeSet:
    return NodeSet.model_validate(yaml.safe_load(path.read_text()))


def _node_manifest(node_set: NodeSet, pool: NodePool, name: str, ordinal: int) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        REGION_LABEL: node_set.region,
        ZONE_LABEL: pool.zone,
        INSTANCE_TYPE_LABEL: pool.instance_type,
        FAKE_NODE_LABEL[0]: FAKE_NODE_LABEL[1],
    }
    resources = {
        "cpu": pool.cpu,
        "memory": pool.memory,
        "ephemeral-storage": pool.ephemeral_storage,
        "pods": PODS_PER_NODE,
    }
    taints = [taint.model_dump() for taint in pool.taints]
    if pool.gpu is not None:
        labels[GPU_PRODUCT_LABEL] = pool.gpu.product
        labels["nvidia.com/gpu.count"] = str(pool.gpu.count)
        labels["nvidia.com/gpu.memory"] = str(pool.gpu.memory_mib)
        resources[GPU_RESOURCE] = str(pool.gpu.count)
        taints.append(dict(GPU_TAINT))
    labels.update(pool.labels)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]},
        },
        "spec": {"taints": taints, "podCIDR": f"{POD_CIDR_PREFIX}.{ordinal}.0/24"},
        # kwok's node-initialize stage keeps a capacity that is already set.
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }


def node_manifests(node_set: NodeSet) -> list[dict[str, Any]]:
    """Every Node object of the set, in a stable order, each with its own pod CIDR."""
    manifests: list[dict[str, Any]] = []
    for pool in node_set.pools:
        for index in range(pool.count):
            name = f"{pool.name}-{index}"
            manifests.append(_node_manifest(node_set, pool, name, ordinal=len(manifests) + 1))
    if len(manifests) > 250:
        raise ValueError("at most 250 nodes: each takes a /24 of 10.244.0.0/16")
    return manifests
