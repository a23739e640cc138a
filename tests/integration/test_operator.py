"""The operator against a real API server, scheduler and controller manager (kwok nodes).

What a user sees: objects accepted or refused by the API server, children in the cluster,
status conditions and SageMaker's status fields.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from sageport_dev import keda
from sageport_dev.handle import KubeCluster
from sageport_dev.processes import eventually
from tests.integration.conftest import RunningOperator
from tests.support.capture import EXAMPLE_CAPTURE_SUMMARY
from tests.support.kube import apply, condition, get
from tests.support.manifests import ACK_SAMPLES, EXAMPLES, load_documents

pytestmark = pytest.mark.usefixtures("sageport_operator")

KIND_ORDER = {"Model": 0, "EndpointConfig": 1, "Endpoint": 2}


def _in_service(cluster: KubeCluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def ready() -> dict[str, Any] | None:
        endpoint = get(cluster, "endpoints.sageport.io", namespace, name)
        last["status"] = (endpoint or {}).get("status")
        ready_condition = condition(endpoint)
        if ready_condition and ready_condition["status"] == "True":
            return endpoint
        return None

    try:
        return eventually(ready, timeout=timeout, what=f"endpoint {name} Ready")
    except AssertionError as error:
        pods = get(cluster, "pods", namespace, selector=f"sageport.io/endpoint-object={name}")
        phases = [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
        raise AssertionError(f"{error}\nlast status: {last.get('status')}\npods: {phases}") from None


def _children(cluster: KubeCluster, namespace: str, endpoint: str) -> dict[str, list[dict[str, Any]]]:
    selector = f"sageport.io/endpoint-object={endpoint}"
    return {
        kind: get(cluster, kind, namespace, selector=selector)
        for kind in ("deployments", "services", "poddisruptionbudgets", "horizontalpodautoscalers")
    }


@pytest.mark.parametrize("order", list(itertools.permutations(KIND_ORDER)), ids="-".join)
def test_any_creation_order_ends_in_service(
    kube_cluster: KubeCluster, namespace: str, order: tuple[str, ...]
) -> None:
    docs = load_documents(EXAMPLES / "ab-test-two-variants")
    for kind in order:
        apply(kube_cluster, [d for d in docs if d["kind"] == kind], namespace)
    endpoint = _in_service(kube_cluster, namespace, "churn")

    # No finalizer (deletion never waits for the operator) and no operator state in annotations.
    assert not endpoint["metadata"].get("finalizers")
    assert not [
        a for a in endpoint["metadata"].get("annotations") or {} if "kopf" in a or "last-handled" in a
    ]
    status = endpoint["status"]
    assert status["endpointStatus"] == "InService"
    assert status["observedGeneration"] == endpoint["metadata"]["generation"]
    assert status.get("failureReason") is None
    variants = {v["variantName"]: v for v in status["productionVariants"]}
    assert variants["variant-a"]["currentInstanceCount"] == 2
    assert variants["variant-a"]["desiredWeight"] == 0.8
    assert variants["variant-b"]["currentWeight"] == 0.2

    children = _children(kube_cluster, namespace, "churn")
    assert len(children["deployments"]) == 2
    assert len(children["services"]) == 2
    assert len(children["poddisruptionbudgets"]) == 2
    for deployment in children["deployments"]:
        owner = deployment["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Endpoint",
            "churn",
            endpoint["metadata"]["uid"],
        )
        managers = {
            m["manager"] for m in deployment["metadata"]["managedFields"] if m["operation"] == "Apply"
        }
        assert managers == {"sageport-operator"}
    config = get(kube_cluster, "endpointconfigs.sageport.io", namespace, "churn-ab")
    assert condition(config)["status"] == "True"


def test_kubectl_wait_for_ready(kube_cluster: KubeCluster, namespace: str) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "realtime-sklearn"), namespace)
    kube_cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "--timeout=60s",
        "endpoints.sageport.io/iris",
        timeout=70,
    )
    printed = kube_cluster.kubectl("get", "-n", namespace, "spep", "iris").stdout
    assert "InService" in printed
    assert "iris-config-v1" in printed


def test_gpu_endpoint_pods_land_on_the_right_gpu_nodes(kube_cluster: KubeCluster, namespace: str) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "gpu-g5"), namespace)
    _in_service(kube_cluster, namespace, "llm-7b")
    pods = get(kube_cluster, "pods", namespace, selector="sageport.io/endpoint-object=llm-7b")
    assert pods
    for pod in pods:
        node = get(kube_cluster, "nodes", "default", pod["spec"]["nodeName"])
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A10G"
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_cpu_endpoint_pods_never_land_on_gpu_nodes(kube_cluster: KubeCluster, namespace: str) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "ab-test-two-variants"), namespace)
    _in_service(kube_cluster, namespace, "churn")
    for pod in get(kube_cluster, "pods", namespace, selector="sageport.io/endpoint-object=churn"):
        node = get(kube_cluster, "nodes", "default", pod["spec"]["nodeName"])
        assert "nvidia.com/gpu.product" not in node["metadata"]["labels"]


def test_more_gpus_than_any_node_stays_pending_and_says_why(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    huge = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "InstanceType",
        "metadata": {"name": f"test.gpu16.{namespace}"},
        "spec": {
            "cpu": "1",
            "memory": "1Gi",
            "gpuCount": 16,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        },
    }
    kube_cluster.kubectl("apply", "--server-side", "-f", "-", stdin=_yaml([huge]))
    try:
        docs = load_documents(EXAMPLES / "realtime-sklearn")
        for doc in docs:
            if doc["kind"] == "EndpointConfig":
                doc["spec"]["productionVariants"][0]["instanceType"] = huge["metadata"]["name"]
        apply(kube_cluster, docs, namespace)

        def unschedulable() -> dict[str, Any] | None:
            endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, "iris")
            ready = condition(endpoint)
            return endpoint if ready and ready["reason"] == "Unschedulable" else None

        endpoint = eventually(unschedulable, timeout=60, what="Unschedulable condition")
        assert condition(endpoint)["status"] == "False"
        assert "Insufficient nvidia.com/gpu" in endpoint["status"]["failureReason"]
        assert endpoint["status"]["endpointStatus"] == "Creating"
        pods = get(kube_cluster, "pods", namespace, selector="sageport.io/endpoint-object=iris")
        assert all(p["status"]["phase"] == "Pending" for p in pods)
    finally:
        kube_cluster.kubectl("delete", "instancetype.sageport.io", huge["metadata"]["name"], check=False)


def test_missing_config_waits_then_recovers(kube_cluster: KubeCluster, namespace: str) -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    apply(kube_cluster, [d for d in docs if d["kind"] == "Endpoint"], namespace)

    def waiting() -> dict[str, Any] | None:
        endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, "iris")
        return endpoint if condition(endpoint) else None

    endpoint = eventually(waiting, what="a Ready condition")
    ready = condition(endpoint)
    assert (ready["status"], ready["reason"]) == ("Unknown", "EndpointConfigNotFound")
    assert "iris-config-v1" in endpoint["status"]["failureReason"]
    apply(kube_cluster, [d for d in docs if d["kind"] != "Endpoint"], namespace)
    assert _in_service(kube_cluster, namespace, "iris")["status"].get("failureReason") is None


def test_unknown_instance_type_fails_clearly(kube_cluster: KubeCluster, namespace: str) -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    for doc in docs:
        if doc["kind"] == "EndpointConfig":
            doc["spec"]["productionVariants"][0]["instanceType"] = "ml.z9.huge"
    apply(kube_cluster, docs, namespace)

    def failed() -> dict[str, Any] | None:
        endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, "iris")
        return endpoint if (endpoint.get("status") or {}).get("endpointStatus") == "Failed" else None

    endpoint = eventually(failed, what="Failed status")
    assert condition(endpoint)["reason"] == "InstanceTypeNotFound"
    assert "ml.z9.huge" in endpoint["status"]["failureReason"]
    assert not _children(kube_cluster, namespace, "iris")["deployments"]


def test_serverless_without_keda_says_so_and_proceeds_once_keda_is_installed(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """The integration cluster has no KEDA: the Endpoint waits, naming it; with KEDA's CRDs
    installed (as `make up` installs them) it proceeds by itself to InService at zero instances."""
    docs = load_documents(EXAMPLES / "serverless")
    for doc in docs:
        if doc["kind"] == "Endpoint":
            doc["metadata"]["annotations"]["sageport.io/serverless-idle-seconds"] = "42"
    if kube_cluster.kubectl("get", "crd", "scaledobjects.keda.sh", check=False).returncode != 0:
        apply(kube_cluster, docs, namespace)
        waiting = eventually(
            lambda: (
                (e := get(kube_cluster, "endpoints.sageport.io", namespace, "iris-serverless"))
                and condition(e)
                and e
            ),
            what="a Ready condition",
        )
        assert condition(waiting)["reason"] == "KedaNotInstalled"
        assert waiting["status"]["endpointStatus"] == "Creating"
        assert "need KEDA" in condition(waiting)["message"]
        for crd in keda.crd_files():
            kube_cluster.kubectl("apply", "--server-side", "-f", str(crd))
    else:
        apply(kube_cluster, docs, namespace)
    endpoint = _in_service(kube_cluster, namespace, "iris-serverless", timeout=120)
    (variant,) = endpoint["status"]["productionVariants"]
    assert variant["desiredServerlessConfig"] == {"memorySizeInMB": 1024, "maxConcurrency": 20}
    assert variant["currentServerlessConfig"] == variant["desiredServerlessConfig"]
    assert variant["modelSetupTimeoutInSeconds"] == 240
    (scaled,) = eventually(
        lambda: get(kube_cluster, "scaledobjects.keda.sh", namespace), what="the ScaledObject"
    )
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["cooldownPeriod"] == 42
    assert (
        scaled["spec"]["scaleTargetRef"]["name"]
        == _children(kube_cluster, namespace, "iris-serverless")["deployments"][0]["metadata"]["name"]
    )


def test_an_async_endpoint_at_min_zero_gets_keda_on_its_queue_and_a_real_time_one_is_refused(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """minInstanceCount 0 passes the API server; the operator's ScaledObject (two redis-streams
    triggers) and TriggerAuthentication pass KEDA's CRD schemas; the Endpoint is InService with
    KEDA owning the count. The same on a real-time endpoint: Ready=False, naming the field."""
    for crd in keda.crd_files():
        kube_cluster.kubectl("apply", "--server-side", "-f", str(crd))
    apply(kube_cluster, load_documents(EXAMPLES / "async-scale-to-zero"), namespace)
    _in_service(kube_cluster, namespace, "iris-async-zero", timeout=120)
    (scaled,) = eventually(
        lambda: get(kube_cluster, "scaledobjects.keda.sh", namespace), what="the ScaledObject"
    )
    (auth,) = get(kube_cluster, "triggerauthentications.keda.sh", namespace)
    (deployment,) = _children(kube_cluster, namespace, "iris-async-zero")["deployments"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 2)
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    streams = {t["metadata"]["stream"] for t in scaled["spec"]["triggers"]}
    assert streams == {f"sageport:async:{namespace}:iris-async-zero:AllTraffic"}
    assert [t["authenticationRef"]["name"] for t in scaled["spec"]["triggers"]] == [
        auth["metadata"]["name"]
    ] * 2
    assert auth["spec"]["secretTargetRef"][0]["name"] == "sageport-redis"

    docs = load_documents(EXAMPLES / "autoscaling")
    for doc in docs:
        if doc["kind"] == "Endpoint":
            doc["spec"]["autoScaling"][0]["minInstanceCount"] = 0
    apply(kube_cluster, docs, namespace)
    refused = eventually(
        lambda: condition(get(kube_cluster, "endpoints.sageport.io", namespace, "fraud")), what="Ready"
    )
    assert (refused["status"], refused["reason"]) == ("False", "InvalidSpec")
    assert "minInstanceCount is 0" in refused["message"]


def test_fields_not_acted_on_are_warned_and_named_in_ready(kube_cluster: KubeCluster, namespace: str) -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    for doc in docs:
        if doc["kind"] == "EndpointConfig":
            doc["spec"]["kmsKeyID"] = "alias/volumes"
    apply(kube_cluster, docs, namespace)
    endpoint = _in_service(kube_cluster, namespace, "iris")
    sentence = "Accepted but not acted on yet: EndpointConfig.kmsKeyID."
    assert condition(endpoint)["message"].endswith(sentence)

    def warnings() -> list[dict[str, Any]]:
        events = get(kube_cluster, "events", namespace)
        return [
            e
            for e in events
            if e["involvedObject"].get("uid") == endpoint["metadata"]["uid"] and e["type"] == "Warning"
        ]

    (event,) = eventually(warnings, what="a Warning event on the Endpoint")
    assert (event["reason"], event["message"]) == ("AcceptedNotActedOn", sentence)
    assert event["involvedObject"]["kind"] == "Endpoint"


def test_model_spec_is_immutable(kube_cluster: KubeCluster, namespace: str) -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    apply(kube_cluster, docs, namespace)
    changed = copy.deepcopy(next(d for d in docs if d["kind"] == "Model"))
    changed["spec"]["primaryContainer"]["modelDataURL"] = "s3://sageport-models/iris/v2.tar.gz"
    output = apply(kube_cluster, [changed], namespace, check=False)
    assert "Model spec is immutable" in output


def test_api_server_refuses_what_the_schema_forbids(kube_cluster: KubeCluster, namespace: str) -> None:
    config = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "EndpointConfig",
        "metadata": {"name": "bad"},
        "spec": {
            "productionVariants": [
                {
                    "variantName": "v",
                    "modelName": "m",
                    "instanceType": "ml.m5.large",
                    "initialInstanceCount": 0,
                }
            ]
        },
    }
    output = apply(kube_cluster, [config], namespace, check=False)
    assert "initialInstanceCount" in output
    duplicate = copy.deepcopy(config)
    duplicate["spec"]["productionVariants"] = [
        {"variantName": "v", "modelName": "m", "instanceType": "ml.m5.large", "initialInstanceCount": 1}
    ] * 2
    assert "duplicate entries for key" in apply(kube_cluster, [duplicate], namespace, check=False)


def test_ack_samples_are_accepted(kube_cluster: KubeCluster, namespace: str) -> None:
    output = apply(kube_cluster, load_documents(ACK_SAMPLES), namespace)
    assert "serverside-applied" in output
    endpoint = _in_service(kube_cluster, namespace, "xgboost-endpoint")
    assert [v["variantName"] for v in endpoint["status"]["productionVariants"]] == ["variant-1", "variant-2"]


@pytest.mark.parametrize(
    "example",
    [
        "realtime-sklearn",
        "gpu-g5",
        "ab-test-two-variants",
        "autoscaling",
        "update-to-new-config",
        "data-capture",
        "canary-update",
        "alarm-rollback",
        "shadow-variant",
        "rolling-update",
        "multi-container-direct",
    ],
)
def test_every_example_applies_and_serves(kube_cluster: KubeCluster, namespace: str, example: str) -> None:
    docs = load_documents(EXAMPLES / example)
    apply(kube_cluster, docs, namespace)
    name = next(d for d in docs if d["kind"] == "Endpoint")["metadata"]["name"]
    _in_service(kube_cluster, namespace, name)


def test_a_direct_endpoint_is_one_pod_per_instance_and_names_its_containers(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """The status the gateway validates TargetContainerHostname against, through the real API
    server (the CRD keeps it), and the pod of every container behind the router."""
    apply(kube_cluster, load_documents(EXAMPLES / "multi-container-direct"), namespace)
    endpoint = _in_service(kube_cluster, namespace, "iris-direct")
    (variant,) = endpoint["status"]["productionVariants"]
    assert variant["containerHostnames"] == ["sklearn", "custom"]
    (deployment,) = _children(kube_cluster, namespace, "iris-direct")["deployments"]
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["sklearn", "custom", "sageport-router"]
    assert [c["name"] for c in pod["initContainers"]] == ["model-fetch-0", "model-fetch-1"]


def test_bad_multi_container_models_are_refused_naming_the_field(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    docs = load_documents(EXAMPLES / "multi-container-direct")
    model = next(d for d in docs if d["kind"] == "Model")
    bad_hostname = copy.deepcopy(model)
    bad_hostname["spec"]["containers"][0]["containerHostname"] = "bad_host"
    assert "containerHostname" in apply(kube_cluster, [bad_hostname], namespace, check=False)
    sixteen = copy.deepcopy(model)
    sixteen["spec"]["containers"] = [model["spec"]["containers"][0]] * 16
    assert "spec.containers" in apply(kube_cluster, [sixteen], namespace, check=False)
    unnamed = copy.deepcopy(model)
    for container in unnamed["spec"]["containers"]:
        del container["containerHostname"]
    apply(kube_cluster, [unnamed], namespace)

    def refused() -> dict[str, Any] | None:
        ready = condition(get(kube_cluster, "models.sageport.io", namespace, "iris-direct"))
        return ready if ready and ready["status"] == "False" else None

    ready = eventually(refused, timeout=30, what="Model Ready=False")
    assert ready["reason"] == "InvalidSpec"
    assert "Direct needs containerHostname on every container" in ready["message"]


def test_data_capture_is_summarised_in_the_endpoint_status(kube_cluster: KubeCluster, namespace: str) -> None:
    """What the gateway captures by, written by the operator through the real API server (the
    CRD's status schema keeps it, nothing is pruned)."""
    apply(kube_cluster, load_documents(EXAMPLES / "data-capture"), namespace)
    endpoint = _in_service(kube_cluster, namespace, "iris-capture")
    assert endpoint["status"]["dataCaptureConfig"] == EXAMPLE_CAPTURE_SUMMARY


def test_autoscaling_renders_an_hpa_that_owns_replicas(kube_cluster: KubeCluster, namespace: str) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "autoscaling"), namespace)
    _in_service(kube_cluster, namespace, "fraud")
    children = _children(kube_cluster, namespace, "fraud")
    (hpa,) = children["horizontalpodautoscalers"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (deployment,) = children["deployments"]
    operator_fields = [
        m for m in deployment["metadata"]["managedFields"] if m["manager"] == "sageport-operator"
    ]
    assert all("f:replicas" not in str(m.get("fieldsV1", {}).get("f:spec", {})) for m in operator_fields)


def test_removing_autoscaling_deletes_the_hpa(kube_cluster: KubeCluster, namespace: str) -> None:
    docs = load_documents(EXAMPLES / "autoscaling")
    apply(kube_cluster, docs, namespace)
    eventually(lambda: _children(kube_cluster, namespace, "fraud")["horizontalpodautoscalers"], what="HPA")
    remove = '[{"op": "remove", "path": "/spec/autoScaling"}]'
    kube_cluster.kubectl(
        "patch", "-n", namespace, "endpoints.sageport.io", "fraud", "--type=json", "-p", remove
    )
    eventually(
        lambda: not _children(kube_cluster, namespace, "fraud")["horizontalpodautoscalers"], what="HPA gone"
    )
    deployment = _children(kube_cluster, namespace, "fraud")["deployments"][0]
    assert deployment["spec"]["replicas"] == 2


def test_deleting_an_endpoint_removes_its_children(kube_cluster: KubeCluster, namespace: str) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "realtime-sklearn"), namespace)
    _in_service(kube_cluster, namespace, "iris")
    kube_cluster.kubectl(
        "delete", "-n", namespace, "endpoints.sageport.io", "iris", "--wait=true", timeout=60
    )

    def gone() -> bool:
        return not any(_children(kube_cluster, namespace, "iris").values())

    eventually(gone, timeout=60, what="children garbage-collected")


def test_a_child_deleted_by_hand_comes_back(kube_cluster: KubeCluster, namespace: str) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "realtime-sklearn"), namespace)
    _in_service(kube_cluster, namespace, "iris")
    (service,) = _children(kube_cluster, namespace, "iris")["services"]
    kube_cluster.kubectl("delete", "-n", namespace, "service", service["metadata"]["name"])

    def recreated() -> list[dict[str, Any]]:
        services = _children(kube_cluster, namespace, "iris")["services"]
        return [s for s in services if s["metadata"]["uid"] != service["metadata"]["uid"]]

    eventually(recreated, timeout=30, what="the Service re-created")


def test_operator_is_still_running_after_everything_above(sageport_operator: RunningOperator) -> None:
    assert sageport_operator.process.poll() is None, sageport_operator.logs()[-4000:]


def _yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(docs)


def test_a_target_tracked_variant_gets_a_scaled_object_and_a_bad_policy_is_refused_naming_it(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """examples/target-tracking passes the API server and KEDA's CRD schema and is InService at
    minInstanceCount; a policy with no metric is refused by the operator, one with targetValue 0
    by the API server, each naming the field."""
    for crd in keda.crd_files():
        kube_cluster.kubectl("apply", "--server-side", "-f", str(crd))
    apply(kube_cluster, load_documents(EXAMPLES / "target-tracking"), namespace)
    endpoint = _in_service(kube_cluster, namespace, "iris-tracked", timeout=120)
    assert endpoint["status"]["productionVariants"][0]["currentInstanceCount"] == 1
    (scaled,) = eventually(
        lambda: get(kube_cluster, "scaledobjects.keda.sh", namespace), what="the ScaledObject"
    )
    (deployment,) = _children(kube_cluster, namespace, "iris-tracked")["deployments"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 3)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "external"
    assert trigger["metadata"]["sageportTargetValue"] == "70"
    assert not _children(kube_cluster, namespace, "iris-tracked")["horizontalpodautoscalers"]

    docs = load_documents(EXAMPLES / "target-tracking")
    endpoint_doc = next(d for d in docs if d["kind"] == "Endpoint")
    policy = endpoint_doc["spec"]["autoScaling"][0]["targetTrackingScalingPolicyConfiguration"]
    del policy["predefinedMetricSpecification"]
    apply(kube_cluster, [endpoint_doc], namespace)
    refused = eventually(
        lambda: (
            (c := condition(get(kube_cluster, "endpoints.sageport.io", namespace, "iris-tracked")))
            and c["status"] == "False"
            and c
        ),
        what="Ready=False",
    )
    assert refused["reason"] == "InvalidSpec", refused
    assert "predefinedMetricSpecification" in refused["message"]

    policy.update(
        targetValue=0,
        predefinedMetricSpecification={"predefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
    )
    output = apply(kube_cluster, [endpoint_doc], namespace, check=False)
    assert "targetValue" in output, output

    # CPU target tracking instead: KEDA's cpu trigger, which KEDA's schema accepts too.
    policy.update(targetValue=55, customizedMetricSpecification={"metricName": "CPUUtilization"})
    del policy["predefinedMetricSpecification"]
    apply(kube_cluster, [endpoint_doc], namespace)
    _in_service(kube_cluster, namespace, "iris-tracked", timeout=120)

    def cpu_trigger() -> Any:
        (current,) = get(kube_cluster, "scaledobjects.keda.sh", namespace)
        return current["spec"]["triggers"] == [
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "55"}}
        ]

    eventually(cpu_trigger, what="the ScaledObject's cpu trigger")
