"""The local cluster schedules for real: kube-scheduler places pods on KWOK nodes by GPU
product, taints keep CPU work off GPU nodes, impossible requests stay Pending with the
scheduler's reason, Services over kwok-Ready pods get ready EndpointSlice addresses, and
kwok plays the rest of a pod's life (deletion, Job completion).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    BatchV1Api,
    CoreV1Api,
    DiscoveryV1Api,
    V1Deployment,
    V1Job,
    V1Pod,
    V1Service,
)
from pydantic import BaseModel

from sageport_dev.nodes import (
    FAKE_NODE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT,
    INSTANCE_TYPE_LABEL,
    POD_CIDR_PREFIX,
    ZONE_LABEL,
    load_node_set,
)
from sageport_dev.processes import eventually

pytestmark = pytest.mark.cluster

T = TypeVar("T")

GPU_TOLERATION = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}
POD_NETWORK = ipaddress.ip_network(f"{POD_CIDR_PREFIX}.0.0/16")  # every node's podCIDR is in it


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy and return that, or fail naming ``what``."""
    return eventually(probe, timeout=timeout, interval=0.1, what=what)


def deployment(
    name: str,
    *,
    replicas: int,
    resources: dict[str, str],
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
) -> V1Deployment:
    labels = {"app": name}
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "model",
                "image": "sageport.local/never-pulled:test",
                "ports": [{"containerPort": 8080, "name": "http"}],
                # Extended resources such as nvidia.com/gpu must have limits equal to requests.
                "resources": {"requests": resources, "limits": resources},
            }
        ],
        "nodeSelector": node_selector or {},
        "tolerations": tolerations or [],
    }
    return V1Deployment.model_validate(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }
    )


def service(name: str) -> V1Service:
    """A ClusterIP Service on port 80 over the pods of app ``name``, to their ``http`` port."""
    return V1Service.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    )


def ready_slice_addresses(discovery: DiscoveryV1Api, namespace: str, service_name: str) -> set[str]:
    selector = f"kubernetes.io/service-name={service_name}"
    found = discovery.list_namespaced_endpoint_slice(namespace=namespace, label_selector=selector)
    return {
        address
        for endpoint_slice in map(wire, found.items)
        for endpoint in endpoint_slice.get("endpoints", [])
        if endpoint["conditions"].get("ready")
        for address in endpoint["addresses"]
    }


def wire(obj: BaseModel) -> dict[str, Any]:
    """An API object as the JSON the server sent (camelCase keys, unset fields left out)."""
    return obj.model_dump(by_alias=True, exclude_none=True)


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("labels", {}))


def is_ready(obj: dict[str, Any]) -> bool:
    """The object's Ready condition is True (pods and nodes alike)."""
    conditions = obj["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pods_of(core: CoreV1Api, namespace: str, app: str) -> list[dict[str, Any]]:
    return [
        wire(pod) for pod in core.list_namespaced_pod(namespace=namespace, label_selector=f"app={app}").items
    ]


def running_pods(core: CoreV1Api, namespace: str, app: str, count: int) -> list[dict[str, Any]] | None:
    """The app's pods once exactly ``count`` exist and all are bound, Running and Ready."""
    pods = pods_of(core, namespace, app)
    ready = [
        pod
        for pod in pods
        if pod["spec"].get("nodeName") and pod["status"].get("phase") == "Running" and is_ready(pod)
    ]
    return ready if len(pods) == count and len(ready) == count else None


def nodes_by_name(core: CoreV1Api) -> dict[str, dict[str, Any]]:
    return {node["metadata"]["name"]: node for node in map(wire, core.list_node().items)}


def test_node_set_is_registered_and_ready(kube_api: ApiClient) -> None:
    node_set = load_node_set()
    nodes = nodes_by_name(CoreV1Api(kube_api))

    assert set(node_set.node_names()) <= set(nodes)
    fake = [node for node in nodes.values() if labels(node).get(FAKE_NODE_LABEL[0]) == FAKE_NODE_LABEL[1]]
    assert all(is_ready(node) for node in fake)
    assert len({labels(node)[ZONE_LABEL] for node in fake}) >= 2
    assert all(INSTANCE_TYPE_LABEL in labels(node) for node in fake)
    gpu_nodes = [node for node in fake if GPU_PRODUCT_LABEL in labels(node)]
    assert len({labels(node)[GPU_PRODUCT_LABEL] for node in gpu_nodes}) >= 2
    for node in gpu_nodes:
        count = labels(node)["nvidia.com/gpu.count"]
        assert node["status"]["capacity"][GPU_RESOURCE] == count
        assert node["status"]["allocatable"][GPU_RESOURCE] == count
        assert GPU_TAINT in node["spec"]["taints"]
    cpu_nodes = [node for node in fake if GPU_PRODUCT_LABEL not in labels(node)]
    assert len(cpu_nodes) >= 4
    assert all(GPU_RESOURCE not in node["status"]["capacity"] for node in cpu_nodes)
    assert all(not node["spec"].get("taints") for node in cpu_nodes), "CPU nodes take any pod"


@pytest.mark.parametrize("product", ["NVIDIA-A10G", "NVIDIA-L4", "NVIDIA-A100-SXM4-40GB"])
def test_gpu_deployment_is_bound_to_a_node_of_the_requested_product(
    kube_api: ApiClient, namespace: str, product: str
) -> None:
    core, apps = CoreV1Api(kube_api), AppsV1Api(kube_api)
    apps.create_namespaced_deployment(
        namespace=namespace,
        body=deployment(
            "gpu",
            replicas=1,
            resources={"cpu": "1", "memory": "4Gi", GPU_RESOURCE: "1"},
            node_selector={GPU_PRODUCT_LABEL: product},
            tolerations=[GPU_TOLERATION],
        ),
    )

    (pod,) = wait_for("the GPU pod to run", lambda: running_pods(core, namespace, "gpu", 1))

    node = wire(core.read_node(name=pod["spec"]["nodeName"]))
    assert labels(node)[GPU_PRODUCT_LABEL] == product
    assert int(node["status"]["allocatable"][GPU_RESOURCE]) >= 1


def test_cpu_deployment_never_lands_on_gpu_nodes(kube_api: ApiClient, namespace: str) -> None:
    core, apps = CoreV1Api(kube_api), AppsV1Api(kube_api)
    # More replicas than CPU nodes: without the GPU taint the scheduler would spread onto GPU nodes.
    apps.create_namespaced_deployment(
        namespace=namespace,
        body=deployment("cpu", replicas=12, resources={"cpu": "100m", "memory": "128Mi"}),
    )

    pods = wait_for("12 CPU pods to run", lambda: running_pods(core, namespace, "cpu", 12))

    nodes = nodes_by_name(core)
    used = {pod["spec"]["nodeName"] for pod in pods}
    assert all(GPU_RESOURCE not in nodes[name]["status"]["capacity"] for name in used), used
    assert len({labels(nodes[name])[ZONE_LABEL] for name in used}) >= 2


def test_pod_asking_more_gpus_than_any_node_has_stays_pending(kube_api: ApiClient, namespace: str) -> None:
    core = CoreV1Api(kube_api)
    most_gpus = max(pool.gpu.count for pool in load_node_set().pools if pool.gpu is not None)
    too_many = {GPU_RESOURCE: str(most_gpus + 1)}
    core.create_namespaced_pod(
        namespace=namespace,
        body=V1Pod.model_validate(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "too-many-gpus"},
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": "sageport.local/never-pulled:test",
                            "resources": {"requests": too_many, "limits": too_many},
                        }
                    ],
                    "tolerations": [GPU_TOLERATION],
                },
            }
        ),
    )

    def unschedulable_message() -> str | None:
        pod = wire(core.read_namespaced_pod(name="too-many-gpus", namespace=namespace))
        for condition in pod["status"].get("conditions", []):
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                assert condition["reason"] == "Unschedulable"
                return str(condition["message"])
        return None

    assert f"Insufficient {GPU_RESOURCE}" in wait_for("PodScheduled=False", unschedulable_message)

    def failed_scheduling_message() -> str | None:
        selector = "involvedObject.name=too-many-gpus,reason=FailedScheduling"
        events = core.list_namespaced_event(namespace=namespace, field_selector=selector).items
        return next((str(wire(event)["message"]) for event in events), None)

    assert f"Insufficient {GPU_RESOURCE}" in wait_for("a FailedScheduling event", failed_scheduling_message)
    pod = wire(core.read_namespaced_pod(name="too-many-gpus", namespace=namespace))
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]


def test_service_over_ready_pods_gets_ready_endpoint_slice(kube_api: ApiClient, namespace: str) -> None:
    core, apps, discovery = CoreV1Api(kube_api), AppsV1Api(kube_api), DiscoveryV1Api(kube_api)
    apps.create_namespaced_deployment(
        namespace=namespace,
        body=deployment("web", replicas=3, resources={"cpu": "100m", "memory": "128Mi"}),
    )
    core.create_namespaced_service(namespace=namespace, body=service("web"))
    pods = wait_for("3 web pods to run", lambda: running_pods(core, namespace, "web", 3))
    pod_ips = {str(pod["status"]["podIP"]) for pod in pods}
    assert len(pod_ips) == 3, "every kwok pod gets its own IP"
    assert all(ipaddress.ip_address(ip) in POD_NETWORK for ip in pod_ips)

    def web_slices() -> list[dict[str, Any]]:
        selector = "kubernetes.io/service-name=web"
        found = discovery.list_namespaced_endpoint_slice(namespace=namespace, label_selector=selector)
        return [wire(item) for item in found.items]

    wait_for(
        "the EndpointSlice to list every pod IP as ready",
        lambda: ready_slice_addresses(discovery, namespace, "web") == pod_ips,
    )
    (endpoint_slice,) = web_slices()
    assert endpoint_slice["addressType"] == "IPv4"
    assert [(port["name"], port["port"]) for port in endpoint_slice["ports"]] == [("http", 8080)]
    assert all(endpoint.get("nodeName") for endpoint in endpoint_slice["endpoints"])


def test_pods_of_a_scaled_down_deployment_go_away(kube_api: ApiClient, namespace: str) -> None:
    core, apps = CoreV1Api(kube_api), AppsV1Api(kube_api)
    apps.create_namespaced_deployment(
        namespace=namespace, body=deployment("gone", replicas=2, resources={"cpu": "100m"})
    )
    wait_for("the pods to run", lambda: running_pods(core, namespace, "gone", 2))

    apps.patch_namespaced_deployment_scale(name="gone", namespace=namespace, body={"spec": {"replicas": 0}})

    wait_for("the pods to be deleted", lambda: not pods_of(core, namespace, "gone"))


def test_job_pods_complete_and_the_job_succeeds(kube_api: ApiClient, namespace: str) -> None:
    batch = BatchV1Api(kube_api)
    batch.create_namespaced_job(
        namespace=namespace,
        body=V1Job.model_validate(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "transform"},
                "spec": {
                    "completions": 3,
                    "parallelism": 3,
                    "completionMode": "Indexed",
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "driver", "image": "sageport.local/never-pulled:test"}],
                        }
                    },
                },
            }
        ),
    )

    def succeeded() -> bool:
        job = wire(batch.read_namespaced_job(name="transform", namespace=namespace))
        return any(
            c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", [])
        )

    wait_for("the Job to complete", succeeded)
    job = wire(batch.read_namespaced_job(name="transform", namespace=namespace))
    assert job["status"]["succeeded"] == 3
