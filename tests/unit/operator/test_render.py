"""Resolution and rendering of Endpoints into children, checked against golden manifests.

Regenerate the goldens after an intended change with SAGEPORT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sageport.api.v1alpha1 import Endpoint, Toleration
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.plan import EndpointPlan, plan_endpoint
from sageport.operator.render import RenderSettings, child_name, variant_children
from sageport.operator.render.stage import stage_pod
from sageport.operator.status import Problem
from tests.support.endpoints import resolve_documents
from tests.support.manifests import EXAMPLES, REPO, load_documents

GOLDEN = REPO / "tests" / "data" / "golden"
GOLDEN_EXAMPLES = [
    "realtime-sklearn",
    "gpu-g5",
    "ab-test-two-variants",
    "autoscaling",
    "multi-container-direct",
    "serial-pipeline",
    "multi-model",
    "serverless",
    "async-scale-to-zero",
]
SETTINGS = RenderSettings(
    runtime_image="sageport/runtime:test",
    storage_env=(("AWS_ENDPOINT_URL", "http://s3:9000"),),
    serverless_node_selector=(("example.com/pool", "serverless"),),
    serverless_tolerations=(
        Toleration(key="example.com/serverless", operator="Exists", effect="NoSchedule"),
    ),
    scaler_address="sageport-gateway.sageport-system.svc:9091",
    redis_url="redis://redis.example:6380/2",
    redis_secret="sageport-redis",
)


def _resolve(docs: Sequence[dict[str, Any]], *, namespace: str = "ml") -> EndpointPlan | Problem:
    """Resolve, admit and plan the Endpoint among ``docs``, as the reconciler does."""
    resolved = resolve_documents(docs, namespace=namespace)
    if isinstance(resolved, Problem):
        return resolved
    return admit(resolved).problem or plan_endpoint(resolved, SETTINGS)


# A Serial pipeline's stage pods are made per anchor pod: the goldens show them for this one.
ANCHOR = ("iris-pipeline-alltraffic-abcde-7d9f8c6b5-x2x4q", "anchor-uid")


def _children(resolution: EndpointPlan | Problem) -> list[dict[str, Any]]:
    assert isinstance(resolution, EndpointPlan), resolution
    children = [m for rv in resolution.variants for m in variant_children(rv, SETTINGS)]
    stages = [stage_pod(rv, stage, *ANCHOR, SETTINGS) for rv in resolution.variants for stage in rv.stages]
    return children + stages


def _check_golden(name: str, manifests: list[dict[str, Any]]) -> None:
    path = GOLDEN / f"{name}.yaml"
    # A JSON round trip unshares nested dicts, so the YAML has no anchors and reads plainly.
    text = yaml.safe_dump_all(json.loads(json.dumps(manifests)), sort_keys=True)
    if os.environ.get("SAGEPORT_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden {path}; run with SAGEPORT_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("example", GOLDEN_EXAMPLES)
def test_examples_render_like_their_goldens(example: str) -> None:
    _check_golden(example, _children(_resolve(load_documents(EXAMPLES / example))))


def test_cpu_variant_pod_gets_instance_resources_and_no_gpu() -> None:
    deployment, service, pdb = _children(_resolve(load_documents(EXAMPLES / "realtime-sklearn")))
    pod = deployment["spec"]["template"]["spec"]
    model = pod["containers"][0]
    assert model["resources"] == {
        "requests": {"cpu": "1800m", "memory": "3686Mi"},
        "limits": {"memory": "3686Mi"},
    }
    assert model["args"] == ["serve"]
    assert model["ports"][0]["containerPort"] == 8080
    assert model["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert "tolerations" not in pod
    assert "nodeSelector" not in pod
    fetch = pod["initContainers"][0]
    assert fetch["command"][-2:] == ["s3://sageport-models/iris/model.tar.gz", "/opt/ml/model"]
    assert deployment["spec"]["replicas"] == 1
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Endpoint", "iris", True)
    assert deployment["metadata"]["labels"]["sageport.io/endpoint"] == "iris"
    assert deployment["metadata"]["labels"]["sageport.io/variant"] == "AllTraffic"


def test_gpu_variant_selects_product_and_tolerates_gpu_taint() -> None:
    deployment, *_ = _children(_resolve(load_documents(EXAMPLES / "gpu-g5")))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert pod["containers"][0]["startupProbe"]["failureThreshold"] * 2 == 600
    # Kubernetes' default 600 s progress deadline would fail a model still inside its 600 s budget.
    assert deployment["spec"]["progressDeadlineSeconds"] == 600 + 300
    keys = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
    assert keys == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]


def test_autoscaled_variant_leaves_replicas_to_the_hpa() -> None:
    deployment, _, _, hpa = _children(_resolve(load_documents(EXAMPLES / "autoscaling")))
    assert "replicas" not in deployment["spec"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_restricted_pod_security() -> None:
    deployment, *_ = _children(_resolve(load_documents(EXAMPLES / "realtime-sklearn")))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_pod_template_hash_changes_with_the_model() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    before = _children(_resolve(docs))[0]["spec"]["template"]["metadata"]["annotations"]
    _kind(docs, "Model")["spec"]["primaryContainer"]["modelDataURL"] = "s3://sageport-models/iris/v2.tar.gz"
    after = _children(_resolve(docs))[0]["spec"]["template"]["metadata"]["annotations"]
    assert before != after


@pytest.mark.parametrize(
    ("endpoint", "variant"),
    [("iris", "AllTraffic"), ("a" * 63, "b" * 63), ("x", "Variant"), ("x", "variant"), ("9lives", "v")],
)
def test_child_names_are_dns_labels_and_unique(endpoint: str, variant: str) -> None:
    name = child_name(endpoint, variant)
    assert len(name) <= 63
    assert name[0].isalpha()
    assert name.replace("-", "").isalnum()
    assert name == name.lower()
    assert child_name(endpoint, variant) == name  # deterministic
    assert child_name("x", "Variant") != child_name("x", "variant")
    assert child_name("ep", "v") == "ep-v"


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def _problem(docs: list[dict[str, Any]]) -> Problem:
    result = _resolve(docs)
    assert isinstance(result, Problem), result
    return result


def test_missing_references_wait_with_a_message() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    no_config = _problem([d for d in docs if d["kind"] != "EndpointConfig"])
    assert (no_config.reason, no_config.terminal) == ("EndpointConfigNotFound", False)
    assert "'iris-config-v1' not found in namespace ml" in no_config.message
    no_model = _problem([d for d in docs if d["kind"] != "Model"])
    assert (no_model.reason, no_model.terminal) == ("ModelNotFound", False)


def test_unknown_instance_type_fails_with_what_to_do() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    _kind(docs, "EndpointConfig")["spec"]["productionVariants"][0]["instanceType"] = "ml.z9.huge"
    problem = _problem(docs)
    assert (problem.reason, problem.terminal) == ("InstanceTypeNotFound", True)
    assert "ml.z9.huge" in problem.message
    assert "kubectl get instancetypes" in problem.message


def _serverless(memory: int = 2048, **extra: Any) -> list[dict[str, Any]]:
    docs = load_documents(EXAMPLES / "serverless")
    config = _kind(docs, "EndpointConfig")["spec"]["productionVariants"][0]["serverlessConfig"]
    config.update(memorySizeInMB=memory, **extra)
    return docs


def _scaled_object(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in _children(_resolve(docs)) if m["kind"] == "ScaledObject")


@pytest.mark.parametrize(("memory", "cpu"), [(1024, "500m"), (2048, "1000m"), (6144, "3000m")])
def test_a_serverless_pod_gets_its_memory_and_cpu_in_proportion(memory: int, cpu: str) -> None:
    deployment = next(m for m in _children(_resolve(_serverless(memory))) if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    model = next(c for c in pod["containers"] if c["name"] == "model")
    assert model["resources"]["requests"] == {"cpu": cpu, "memory": f"{memory}Mi"}
    assert not any("gpu" in key for key in model["resources"]["limits"])
    assert "replicas" not in deployment["spec"]  # KEDA owns the count
    assert pod["nodeSelector"] == {"example.com/pool": "serverless"}
    assert {"key": "example.com/serverless", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_a_serverless_variant_scales_to_zero_without_provisioned_concurrency() -> None:
    spec = _scaled_object(_serverless(maxConcurrency=20))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (0, 5, 300)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "external-push"
    assert trigger["metadata"]["scalerAddress"] == SETTINGS.scaler_address
    assert trigger["metadata"]["sageportEndpoint"] == "iris-serverless"
    assert trigger["metadata"]["sageportVariant"] == "AllTraffic"


def test_provisioned_concurrency_keeps_pods_warm_and_the_annotation_sets_the_idle_period() -> None:
    docs = _serverless(maxConcurrency=10, provisionedConcurrency=5)
    _kind(docs, "Endpoint")["metadata"]["annotations"]["sageport.io/serverless-idle-seconds"] = "30"
    spec = _scaled_object(docs)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (2, 3, 30)


@pytest.mark.parametrize("value", ["soon", "0", "-5", "1.5"])
def test_a_bad_idle_annotation_is_refused_naming_it(value: str) -> None:
    docs = _serverless()
    _kind(docs, "Endpoint")["metadata"]["annotations"]["sageport.io/serverless-idle-seconds"] = value
    problem = _problem(docs)
    assert (problem.reason, problem.terminal) == ("InvalidSpec", True)
    assert "sageport.io/serverless-idle-seconds" in problem.message


def test_autoscaling_a_serverless_variant_is_refused() -> None:
    docs = _serverless()
    _kind(docs, "Endpoint")["spec"]["autoScaling"] = [
        {"variantName": "AllTraffic", "minInstanceCount": 1, "maxInstanceCount": 2}
    ]
    problem = _problem(docs)
    assert problem.reason == "InvalidSpec"
    assert "serverless" in problem.message


def test_converting_a_real_time_variant_to_serverless_is_refused_naming_it() -> None:
    docs = _serverless()
    endpoint = _kind(docs, "Endpoint")
    endpoint["status"] = {
        "endpointConfigName": "iris-realtime-config",
        "productionVariants": [{"variantName": "AllTraffic", "currentInstanceCount": 1}],
    }
    problem = _problem(docs)
    assert (problem.reason, problem.terminal) == ("ValidationError", True)
    assert "real-time variant(s) AllTraffic" in problem.message
    assert "iris-realtime-config" in problem.message


def test_serverless_to_serverless_updates_are_admitted() -> None:
    docs = _serverless()
    _kind(docs, "Endpoint")["status"] = {
        "endpointConfigName": "older-serverless-config",
        "productionVariants": [
            {
                "variantName": "AllTraffic",
                "desiredServerlessConfig": {"memorySizeInMB": 1024, "maxConcurrency": 1},
            }
        ],
    }
    assert isinstance(_resolve(docs), EndpointPlan)


def test_autoscaling_for_a_variant_the_config_lacks() -> None:
    docs = load_documents(EXAMPLES / "autoscaling")
    _kind(docs, "Endpoint")["spec"]["autoScaling"][0]["variantName"] = "Nope"
    problem = _problem(docs)
    assert problem.reason == "InvalidSpec"
    assert "Nope" in problem.message
    assert "AllTraffic" in problem.message


def test_ack_sample_resolves() -> None:
    from tests.support.manifests import ACK_SAMPLES

    resolution = _resolve(load_documents(ACK_SAMPLES))
    assert isinstance(resolution, EndpointPlan)
    assert [p.name for p in resolution.plans] == ["variant-1", "variant-2"]


def test_goldens_directory_is_only_what_tests_write() -> None:
    expected = {f"{n}.yaml" for n in GOLDEN_EXAMPLES} | {"batch-transform.yaml"}  # test_transform's
    assert {p.name for p in Path(GOLDEN).glob("*.yaml")} == expected


@pytest.mark.parametrize(
    ("url", "fetched", "volume"),
    [
        (
            "pvc://models/iris/model.tar.gz",
            "file:///mnt/model-source/iris/model.tar.gz",
            {"persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
        ),
        (
            "file:///srv/models/iris.tar.gz",
            "file:///mnt/model-source/iris.tar.gz",
            {"hostPath": {"path": "/srv/models", "type": "Directory"}},
        ),
        ("https://example.com/iris.tar.gz", "https://example.com/iris.tar.gz", None),
    ],
)
def test_model_sources_mount_what_the_fetcher_reads(
    url: str, fetched: str, volume: dict[str, Any] | None
) -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    _kind(docs, "Model")["spec"]["primaryContainer"]["modelDataURL"] = url
    pod = _children(_resolve(docs))[0]["spec"]["template"]["spec"]
    fetch = pod["initContainers"][0]
    assert fetch["command"][-2] == fetched
    sources = [v for v in pod["volumes"] if v["name"] == "model-source"]
    if volume is None:
        assert sources == []
        assert len(fetch["volumeMounts"]) == 1
    else:
        assert [{k: v for k, v in sources[0].items() if k != "name"}] == [volume]
        assert {"name": "model-source", "mountPath": "/mnt/model-source", "readOnly": True} in fetch[
            "volumeMounts"
        ]


def test_cluster_wide_taints_are_tolerated() -> None:
    settings = RenderSettings(tolerate_taints=("dedicated",))
    resolution = _resolve(load_documents(EXAMPLES / "realtime-sklearn"))
    assert isinstance(resolution, EndpointPlan)
    pod = variant_children(resolution.variants[0], settings)[0]["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]


def test_the_download_budget_bounds_the_fetch_and_extends_the_progress_deadline() -> None:
    docs = load_documents(EXAMPLES / "gpu-g5")
    for doc in docs:
        if doc["kind"] == "EndpointConfig":
            doc["spec"]["productionVariants"][0]["modelDataDownloadTimeoutInSeconds"] = 1200
    deployment, *_ = _children(_resolve(docs))
    (fetcher,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert fetcher["command"][-2:] == ["--timeout", "1200"]
    assert deployment["spec"]["progressDeadlineSeconds"] == 600 + 1200 + 300


def test_a_3600_s_startup_budget_is_the_probe_window_and_beats_the_600_s_progress_deadline() -> None:
    docs = load_documents(EXAMPLES / "gpu-g5")
    for doc in docs:
        if doc["kind"] == "EndpointConfig":
            doc["spec"]["productionVariants"][0]["containerStartupHealthCheckTimeoutInSeconds"] = 3600
    deployment, *_ = _children(_resolve(docs))
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe["failureThreshold"] * probe["periodSeconds"] == 3600
    assert deployment["spec"]["progressDeadlineSeconds"] == 3600 + 300


def test_a_direct_pod_gives_each_container_its_model_port_and_share() -> None:
    deployment, service, _ = _children(_resolve(load_documents(EXAMPLES / "multi-container-direct")))
    pod = deployment["spec"]["template"]["spec"]
    sklearn, custom, router = pod["containers"]
    env = {c["name"]: {e["name"]: e["value"] for e in c["env"]} for c in pod["containers"]}
    assert env["sklearn"]["SAGEMAKER_BIND_TO_PORT"] == "23000"
    assert env["sklearn"]["SAGEMAKER_SAFE_PORT_RANGE"] == "23001-23065"
    assert env["custom"]["SAGEMAKER_BIND_TO_PORT"] == "23066"
    assert env["custom"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert "SAGEMAKER_PROGRAM" not in env["sklearn"]
    assert sklearn["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 23000}
    assert custom["startupProbe"]["httpGet"] == {"path": "/ping", "port": 23066}
    assert [m["name"] for m in sklearn["volumeMounts"]] == ["model-0", "tmp-0"]
    assert [m["name"] for m in custom["volumeMounts"]] == ["model-1", "tmp-1"]
    fetches = pod["initContainers"]
    assert [(f["name"], f["command"][-2], f["volumeMounts"][0]["name"]) for f in fetches] == [
        ("model-fetch-0", "s3://sageport-models/iris/model.tar.gz", "model-0"),
        ("model-fetch-1", "s3://sageport-models/echo/model.tar.gz", "model-1"),
    ]
    # ml.m5.xlarge (3600m, 14745Mi): 100m and 128Mi for the router, the rest halved
    assert sklearn["resources"] == {
        "requests": {"cpu": "1750m", "memory": "7308Mi"},
        "limits": {"memory": "7308Mi"},
    }
    assert router["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    # the router alone has the named port the Service targets, and answers readiness
    assert router["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert all("name" not in p for c in (sklearn, custom) for p in c["ports"])
    assert router["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert router["args"][0] == "sageport-router"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def _async_zero() -> list[dict[str, Any]]:
    return load_documents(EXAMPLES / "async-scale-to-zero")


def test_an_async_variant_at_min_zero_scales_on_its_queue_with_two_triggers() -> None:
    children = _children(_resolve(_async_zero()))
    assert not [m for m in children if m["kind"] == "HorizontalPodAutoscaler"]
    deployment = next(m for m in children if m["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]  # KEDA owns the count
    scaled = next(m for m in children if m["kind"] == "ScaledObject")["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"], scaled["cooldownPeriod"]) == (0, 2, 30)
    modes = {}
    for trigger in scaled["triggers"]:
        metadata = trigger["metadata"]
        assert trigger["type"] == "redis-streams"
        assert metadata["stream"] == "sageport:async:ml:iris-async-zero:AllTraffic"
        assert (metadata["consumerGroup"], metadata["address"]) == ("sageport-agents", "redis.example:6380")
        assert metadata["databaseIndex"] == "2"
        assert trigger["authenticationRef"] == {"name": deployment["metadata"]["name"]}
        modes.update({key: metadata[key] for key in ("lagCount", "pendingEntriesCount") if key in metadata})
    # one trigger wakes from zero (lag), the other keeps calls in flight (pending): 4 per pod
    assert modes == {"lagCount": "4", "pendingEntriesCount": "4"}
    auth = next(m for m in children if m["kind"] == "TriggerAuthentication")
    assert auth["metadata"]["name"] == deployment["metadata"]["name"]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "sageport-redis", "key": "password"}
    ]


def test_min_zero_is_refused_for_a_real_time_endpoint_naming_the_field() -> None:
    docs = load_documents(EXAMPLES / "autoscaling")
    _kind(docs, "Endpoint")["spec"]["autoScaling"][0]["minInstanceCount"] = 0
    problem = _problem(docs)
    assert "minInstanceCount is 0" in problem.message
    assert "asyncInferenceConfig" in problem.message


@pytest.mark.parametrize("value", ["0", "soon", "86401"])
def test_a_bad_async_idle_annotation_is_refused_naming_it(value: str) -> None:
    docs = _async_zero()
    _kind(docs, "Endpoint")["metadata"]["annotations"]["sageport.io/async-idle-seconds"] = value
    assert "sageport.io/async-idle-seconds" in _problem(docs).message


def _tracked(**policy: Any) -> list[dict[str, Any]]:
    docs = load_documents(EXAMPLES / "target-tracking")
    if policy:
        _kind(docs, "Endpoint")["spec"]["autoScaling"][0]["targetTrackingScalingPolicyConfiguration"] = policy
    return docs


def test_target_tracking_on_invocations_is_a_scaled_object_on_the_gateways_count() -> None:
    children = _children(_resolve(_tracked()))
    assert not [m for m in children if m["kind"] == "HorizontalPodAutoscaler"]  # KEDA makes its own
    deployment = next(m for m in children if m["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    scaled = next(m for m in children if m["kind"] == "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 3)
    (trigger,) = scaled["triggers"]
    assert (trigger["type"], trigger["metricType"]) == ("external", "AverageValue")
    assert trigger["metadata"] == {
        "scalerAddress": SETTINGS.scaler_address,
        "sageportEndpoint": "iris-tracked",
        "sageportEndpointConfig": deployment["metadata"]["labels"]["sageport.io/endpoint-config"],
        "sageportVariant": "AllTraffic",
        "sageportMetric": "sageport-invocations-per-minute",
        "sageportTargetValue": "70",
    }
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == {
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": 300},
    }


def test_target_tracking_on_cpu_is_keda_cpu_trigger_and_disable_scale_in_stops_scale_down() -> None:
    cpu = {"metricName": "CPUUtilization", "namespace": "/aws/sagemaker/Endpoints", "statistic": "Average"}
    docs = _tracked(targetValue=55, customizedMetricSpecification=cpu, disableScaleIn=True)
    scaled = _scaled_object(docs)["spec"]
    assert scaled["triggers"] == [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "55"}}]
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"selectPolicy": "Disabled"}
    }


def test_the_cpu_autoscaling_without_a_policy_stays_a_cpu_hpa() -> None:
    children = _children(_resolve(load_documents(EXAMPLES / "autoscaling")))
    assert not [m for m in children if m["kind"] == "ScaledObject"]
    hpa = next(m for m in children if m["kind"] == "HorizontalPodAutoscaler")["spec"]
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


@pytest.mark.parametrize(
    ("policy", "scaling", "named"),
    [
        ({"targetValue": 70}, {}, "predefinedMetricSpecification"),
        (
            {
                "targetValue": 70,
                "predefinedMetricSpecification": {"predefinedMetricType": "SageMakerVariantCPU"},
            },
            {},
            "predefinedMetricType",
        ),
        ({"targetValue": 0, "predefinedMetricSpecification": {}}, {}, "targetValue"),
        (
            {"targetValue": 150, "customizedMetricSpecification": {"metricName": "CPUUtilization"}},
            {},
            "targetValue",
        ),
        (
            {"targetValue": 70, "customizedMetricSpecification": {"metricName": "MemoryUtilization"}},
            {},
            "metricName",
        ),
        (
            {
                "targetValue": 70,
                "predefinedMetricSpecification": {
                    "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "scaleInCooldown": -1,
            },
            {},
            "scaleInCooldown",
        ),
        (
            {
                "targetValue": 70,
                "predefinedMetricSpecification": {
                    "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
            },
            {"minInstanceCount": 0},
            "minInstanceCount",
        ),
    ],
)
def test_a_bad_target_tracking_policy_is_refused_naming_the_field(
    policy: dict[str, Any], scaling: dict[str, Any], named: str
) -> None:
    docs = _tracked(**policy)
    _kind(docs, "Endpoint")["spec"]["autoScaling"][0].update(scaling)
    with pytest.raises(ValidationError) as refused:
        Endpoint.model_validate(_kind(docs, "Endpoint"))
    assert named in str(refused.value)
