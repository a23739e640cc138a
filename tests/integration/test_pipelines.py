"""Serial inference pipelines at scale on the local cluster (real API server, scheduler and
controllers; kwok nodes): 40 instances x 3 stages on ml.m5.xlarge. Over every pod, each
instance's stages share one node (the scheduler's required affinity, never luck), and the
instances spread over the zones."""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from sageport.contract import LABEL_INSTANCE, LABEL_ROLE, LABEL_STAGE
from sageport_dev.handle import KubeCluster
from sageport_dev.nodes import NodePool, NodeSet, node_manifests
from sageport_dev.processes import eventually
from tests.support.kube import apply, condition, get
from tests.support.manifests import EXAMPLES, load_documents

pytestmark = pytest.mark.usefixtures("sageport_operator")

INSTANCES = 40
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
NODES_PER_ZONE = 14  # EC2 m5.xlarge-sized (4 CPU, 16 GiB): room for one ml.m5.xlarge instance each
ZONE_LABEL = "topology.kubernetes.io/zone"


@pytest.fixture
def m5_nodes(kube_api: ApiClient) -> Iterator[list[str]]:
    """Extra kwok nodes, one instance's worth each, in three zones; removed afterwards."""
    pools = [
        NodePool(
            name=f"pipe-{zone[-1]}",
            count=NODES_PER_ZONE,
            zone=zone,
            instanceType="m5.xlarge",
            cpu="4",
            memory="16Gi",
        )
        for zone in ZONES
    ]
    manifests = node_manifests(NodeSet(region="us-east-1", pools=pools))
    core = CoreV1Api(kube_api)
    for ordinal, manifest in enumerate(manifests):
        manifest["spec"]["podCIDR"] = f"10.244.{100 + ordinal}.0/24"  # clear of the cluster's own nodes
        try:
            core.create_node(body=manifest)
        except ApiException as error:
            if error.status != 409:
                raise
    names = [m["metadata"]["name"] for m in manifests]
    try:
        yield names
    finally:
        for name in names:
            try:
                core.delete_node(name=name)
            except ApiException as error:
                if error.status != 404:
                    raise


def _pipeline_docs(instances: int) -> list[dict[str, Any]]:
    docs = copy.deepcopy(load_documents(EXAMPLES / "serial-pipeline"))
    for doc in docs:
        if doc["kind"] == "EndpointConfig":
            (variant,) = doc["spec"]["productionVariants"]
            assert variant["instanceType"] == "ml.m5.xlarge"
            variant["initialInstanceCount"] = instances
    return docs


def test_forty_instances_of_three_stages_each_share_a_node_and_spread_over_zones(
    kube_cluster: KubeCluster, namespace: str, m5_nodes: list[str]
) -> None:
    started = time.monotonic()
    apply(kube_cluster, _pipeline_docs(INSTANCES), namespace)
    selector = "sageport.io/endpoint-object=iris-pipeline"

    def all_placed() -> list[dict[str, Any]] | None:
        pods = get(kube_cluster, "pods", namespace, selector=selector)
        placed = [p for p in pods if p["spec"].get("nodeName") and p["status"].get("phase") == "Running"]
        return pods if len(pods) == 3 * INSTANCES and len(placed) == len(pods) else None

    try:
        pods = eventually(all_placed, timeout=180, what=f"{3 * INSTANCES} pipeline pods running")
    except AssertionError:
        pods = get(kube_cluster, "pods", namespace, selector=selector)
        pending = [
            (p["metadata"]["name"], p["status"].get("conditions"))
            for p in pods
            if not p["spec"].get("nodeName")
        ]
        raise AssertionError(f"{len(pods)} pods, not placed: {pending[:3]}") from None
    placed_seconds = time.monotonic() - started

    anchors = [p for p in pods if p["metadata"]["labels"].get(LABEL_ROLE) == "instance"]
    assert len(anchors) == INSTANCES
    instances: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pod in pods:
        instances[pod["metadata"]["labels"][LABEL_INSTANCE]].append(pod)
    assert set(instances) == {a["metadata"]["name"] for a in anchors}
    for anchor_name, members in instances.items():
        stages = sorted(p["metadata"]["labels"].get(LABEL_STAGE, "preprocess") for p in members)
        assert stages == ["model", "postprocess", "preprocess"], anchor_name
        nodes = {p["spec"]["nodeName"] for p in members}
        assert len(nodes) == 1, f"instance {anchor_name} is on {nodes}"
        for stage in (p for p in members if LABEL_STAGE in p["metadata"]["labels"]):
            # The rule the scheduler enforced, not a coincidence of placement.
            (term,) = stage["spec"]["affinity"]["podAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]
            assert term["labelSelector"]["matchLabels"] == {LABEL_INSTANCE: anchor_name}
            assert term["topologyKey"] == "kubernetes.io/hostname"

    zone_of = {
        n["metadata"]["name"]: n["metadata"]["labels"][ZONE_LABEL]
        for n in get(kube_cluster, "nodes", "default")
    }
    per_zone = Counter(zone_of[a["spec"]["nodeName"]] for a in anchors)
    assert set(per_zone) == set(ZONES), per_zone
    assert max(per_zone.values()) - min(per_zone.values()) <= INSTANCES // len(ZONES) // 2, per_zone

    # Each anchor knows where its two further stages answer (pod IPs on its node).
    def addressed() -> bool:
        current = get(kube_cluster, "pods", namespace, selector=f"{selector},{LABEL_ROLE}=instance")
        return all(
            len((p["metadata"].get("annotations") or {}).get("sageport.io/stages", "").split(",")) == 2
            for p in current
        )

    eventually(addressed, timeout=60, what="every anchor annotated with its stages")

    def in_service() -> dict[str, Any] | None:
        endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, "iris-pipeline")
        ready = condition(endpoint)
        return endpoint if ready and ready["status"] == "True" else None

    endpoint = eventually(in_service, timeout=120, what="iris-pipeline InService")
    (variant,) = endpoint["status"]["productionVariants"]
    assert variant["currentInstanceCount"] == INSTANCES  # instances, not the 120 pods
    assert variant["pipelineHostnames"] == ["preprocess", "model", "postprocess"]
    print(f"{INSTANCES} instances x 3 stages placed in {placed_seconds:.1f} s; per zone {dict(per_zone)}")


def test_a_pipeline_with_a_duplicate_hostname_is_refused_naming_the_field(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    docs = load_documents(EXAMPLES / "serial-pipeline")
    model = next(d for d in docs if d["kind"] == "Model")
    model["spec"]["containers"][2]["containerHostname"] = "model"
    apply(kube_cluster, [model], namespace)

    def refused() -> dict[str, Any] | None:
        ready = condition(get(kube_cluster, "models.sageport.io", namespace, "iris-pipeline"))
        return ready if ready and ready["status"] == "False" else None

    ready = eventually(refused, timeout=30, what="Model Ready=False")
    assert ready["reason"] == "InvalidSpec"
    assert "containerHostname values must be unique" in ready["message"]
