"""Plan: the shape of each variant, and how a feature extends it (a rule, not a branch)."""

from __future__ import annotations

from typing import Any

import pytest

from sageport.api.v1alpha1 import InstanceTypeSpec
from sageport.operator.reconcile import plan
from sageport.operator.reconcile.plan import EndpointPlan, plan_endpoint
from sageport.operator.reconcile.resolve import ResolvedEndpoint, ResolvedVariant
from sageport.operator.render import variant_children
from sageport.operator.render.shape import (
    Autoscaler,
    ContainerResources,
    RenderSettings,
    ServiceShape,
    Sidecar,
)
from sageport.operator.status import Problem
from tests.support.endpoints import kind, resolve_documents
from tests.support.manifests import EXAMPLES, load_documents

SETTINGS = RenderSettings(runtime_image="sageport/runtime:test")


def _plan(docs: list[dict[str, Any]]) -> EndpointPlan:
    resolved = resolve_documents(docs)
    assert not isinstance(resolved, Problem), resolved
    return plan_endpoint(resolved, SETTINGS)


def test_a_realtime_variant_is_one_model_container_a_service_and_fixed_replicas() -> None:
    (shape,) = _plan(load_documents(EXAMPLES / "realtime-sklearn")).variants
    (container,) = shape.containers
    assert (container.name, container.image) == ("model", "sageport/runtime:test")
    assert container.model_url == "s3://sageport-models/iris/model.tar.gz"
    assert shape.sidecars == ()
    assert (shape.autoscaler, shape.replicas) == (Autoscaler.NONE, 1)
    assert shape.services == (ServiceShape(shape.name),)
    assert shape.startup_seconds == 240


def test_an_autoscaled_variant_leaves_the_count_to_an_hpa() -> None:
    result = _plan(load_documents(EXAMPLES / "autoscaling"))
    (shape,) = result.variants
    assert (shape.autoscaler, shape.replicas) == (Autoscaler.HPA, None)
    assert [p.desired_instances for p in result.plans] == [None]


def test_status_plans_follow_the_variants() -> None:
    result = _plan(load_documents(EXAMPLES / "ab-test-two-variants"))
    assert [(p.name, p.weight) for p in result.plans] == [("variant-a", 0.8), ("variant-b", 0.2)]
    assert result.config_name == "churn-ab"


def test_model_data_source_is_the_url_fetched() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    container = kind(docs, "Model")["spec"]["primaryContainer"]
    del container["modelDataURL"]
    container["modelDataSource"] = {
        "s3DataSource": {"s3URI": "s3://b/prefix/", "s3DataType": "S3Prefix", "compressionType": "None"}
    }
    (shape,) = _plan(docs).variants
    assert shape.containers[0].model_url == "s3://b/prefix/"


def test_a_sidecar_rule_adds_a_container_without_touching_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    def agent(resolved: ResolvedEndpoint, rv: ResolvedVariant, settings: RenderSettings) -> Sidecar:
        return Sidecar("agent", settings.runtime_image, ("agent",))

    docs = load_documents(EXAMPLES / "realtime-sklearn")
    before = variant_children(_plan(docs).variants[0], SETTINGS)
    monkeypatch.setattr(plan, "SIDECARS", (agent,))
    after = variant_children(_plan(docs).variants[0], SETTINGS)
    containers = after[0]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["model", "agent"]
    assert containers[0] == before[0]["spec"]["template"]["spec"]["containers"][0]
    assert after[1:] == before[1:]


def test_desired_weights_and_capacities_apply_in_place_over_the_config() -> None:
    docs = load_documents(EXAMPLES / "ab-test-two-variants")
    kind(docs, "Endpoint")["spec"]["desiredWeightsAndCapacities"] = [
        {"variantName": "variant-a", "desiredWeight": 0.5, "desiredInstanceCount": 4},
        {"variantName": "variant-b", "desiredWeight": 0.5},
    ]
    result = _plan(docs)
    assert [(p.name, p.weight, p.desired_instances) for p in result.plans] == [
        ("variant-a", 0.5, 4),
        ("variant-b", 0.5, 1),
    ]
    assert [s.replicas for s in result.variants] == [4, 1]


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        (
            [{"variantName": "nope", "desiredWeight": 1}],
            "spec.desiredWeightsAndCapacities names variant(s) nope",
        ),
        (
            [
                {"variantName": "variant-a", "desiredWeight": 0},
                {"variantName": "variant-b", "desiredWeight": 0},
            ],
            "leaves every variant at weight 0",
        ),
    ],
)
def test_desired_weights_and_capacities_refusals_name_the_field(
    desired: list[dict[str, Any]], message: str
) -> None:
    docs = load_documents(EXAMPLES / "ab-test-two-variants")
    kind(docs, "Endpoint")["spec"]["desiredWeightsAndCapacities"] = desired
    problem = resolve_documents(docs)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.terminal) == ("InvalidSpec", True)
    assert message in problem.message


def test_a_desired_count_for_an_autoscaled_variant_is_refused() -> None:
    docs = load_documents(EXAMPLES / "autoscaling")
    spec = kind(docs, "Endpoint")["spec"]
    variant = spec["autoScaling"][0]["variantName"]
    spec["desiredWeightsAndCapacities"] = [{"variantName": variant, "desiredInstanceCount": 3}]
    problem = resolve_documents(docs)
    assert isinstance(problem, Problem)
    assert "whose count spec.autoScaling owns" in problem.message


def test_with_capacity_scales_production_variants_and_keeps_at_least_one() -> None:
    """A rolling update's batch of the new fleet (or what is left of the old one)."""
    docs = load_documents(EXAMPLES / "ab-test-two-variants")
    full = _plan(docs)
    assert [s.replicas for s in full.variants] == [2, 1]
    quarter = plan.with_capacity(full, 0.25)
    assert [s.replicas for s in quarter.variants] == [1, 1]
    assert [p.desired_instances for p in quarter.plans] == [1, 1]
    assert [s.replicas for s in plan.with_capacity(full, 0.5).variants] == [1, 1]
    assert plan.with_capacity(full, 1.0) is full


def test_a_direct_variant_is_one_pod_of_every_container_behind_the_router() -> None:
    result = _plan(load_documents(EXAMPLES / "multi-container-direct"))
    (shape,) = result.variants
    sklearn, custom = shape.containers
    assert [(c.name, c.hostname, c.port, c.port_name) for c in shape.containers] == [
        ("sklearn", "sklearn", 23000, None),
        ("custom", "custom", 23066, None),
    ]
    assert (sklearn.safe_port_range, custom.safe_port_range) == ("23001-23065", "23067-23131")
    assert (sklearn.volume_suffix, custom.volume_suffix) == ("-0", "-1")
    assert custom.model_url == "s3://sageport-models/echo/model.tar.gz"
    (router,) = shape.sidecars
    assert (router.name, router.port, router.port_name) == ("sageport-router", 8080, "http")
    assert router.args == (
        "sageport-router",
        "--port=8080",
        "--endpoint=iris-direct",
        "--variant=AllTraffic",
        "--container=sklearn=23000",
        "--container=custom=23066",
    )
    assert shape.services == (ServiceShape(shape.name),)  # the Service targets the router's port
    assert result.plans[0].container_hostnames == ("sklearn", "custom")


def test_single_container_models_get_no_router_and_no_hostnames() -> None:
    result = _plan(load_documents(EXAMPLES / "realtime-sklearn"))
    assert result.variants[0].sidecars == ()
    assert result.plans[0].container_hostnames is None


def test_the_instance_is_split_among_the_containers_and_the_router() -> None:
    m5 = InstanceTypeSpec(cpu="3600m", memory="14745Mi")
    assert plan.split_resources(m5, 2) == [ContainerResources("1750m", "7308Mi", 0)] * 2
    gpus = InstanceTypeSpec(cpu="48", memory="180Gi", gpu_count=4)
    shares = plan.split_resources(gpus, 3)
    assert [s.gpus for s in shares] == [2, 1, 1]
    assert (shares[0].cpu, shares[0].memory) == ("15966m", "61397Mi")
    assert [
        s.gpus for s in plan.split_resources(InstanceTypeSpec(cpu="8", memory="32Gi", gpu_count=1), 2)
    ] == [1, 0]
    # every slice of ports fits in the range, for the most containers SageMaker allows
    port, safe = plan.container_ports(14)
    assert (port, safe) == (23924, "23925-23989")


def test_hostnames_that_collide_in_lower_case_give_positional_container_names() -> None:
    assert plan._container_names(["A", "a"]) == ["model-0", "model-1"]
    assert plan._container_names(["sageport-router", "x"]) == ["model-0", "model-1"]
    assert plan._container_names(["Pre", "post"]) == ["pre", "post"]


def test_an_async_agent_is_told_its_topics_and_which_notifications_include_the_answer() -> None:
    documents = load_documents(EXAMPLES / "async-inference")
    (config,) = [d for d in documents if d["kind"] == "EndpointConfig"]
    config["spec"]["asyncInferenceConfig"]["outputConfig"]["notificationConfig"] = {
        "successTopic": "https://hooks.example.com/ok",
        "errorTopic": "https://hooks.example.com/failed",
        "includeInferenceResponseIn": ["ERROR_NOTIFICATION_TOPIC", "SUCCESS_NOTIFICATION_TOPIC"],
    }
    resolved = resolve_documents(documents)
    assert not isinstance(resolved, Problem), resolved
    (shape,) = plan_endpoint(resolved, RenderSettings(runtime_image="sageport/runtime:test")).variants
    (agent,) = shape.sidecars
    assert agent.args[-4:] == (
        "--success-topic=https://hooks.example.com/ok",
        "--error-topic=https://hooks.example.com/failed",
        "--include-response-in=error",
        "--include-response-in=success",
    )


def test_an_async_variant_gets_the_agent_sidecar_on_its_stream() -> None:
    settings = RenderSettings(
        runtime_image="sageport/runtime:test",
        storage_env=(("AWS_ENDPOINT_URL", "http://s3:9000"),),
        storage_secret="storage",
        redis_url="redis://redis:6379",
        redis_secret="redis-auth",
    )
    resolved = resolve_documents(load_documents(EXAMPLES / "async-inference"))
    assert not isinstance(resolved, Problem), resolved
    (shape,) = plan_endpoint(resolved, settings).variants
    (agent,) = shape.sidecars
    assert agent.name == "sageport-async-agent"
    assert agent.args == (
        "sageport-async-agent",
        f"--stream=sageport:async:{resolved.namespace}:iris-async:AllTraffic",
        "--endpoint=iris-async",
        "--variant=AllTraffic",
        "--concurrency=4",
        "--spool-dir=/var/spool/sageport",
    )
    assert dict(agent.environment) == {
        "AWS_ENDPOINT_URL": "http://s3:9000",
        "SAGEPORT_REDIS_URL": "redis://redis:6379",
    }
    (pod,) = [c for c in variant_children(shape, settings) if c["kind"] == "Deployment"]
    containers = {c["name"]: c for c in pod["spec"]["template"]["spec"]["containers"]}
    sidecar = containers["sageport-async-agent"]
    assert {
        "name": "SAGEPORT_REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}},
    } in sidecar["env"]
    assert sidecar["envFrom"] == [{"secretRef": {"name": "storage"}}]
    assert sidecar["volumeMounts"] == [
        {"name": "sageport-async-agent-scratch", "mountPath": "/var/spool/sageport"}
    ]
    volumes = pod["spec"]["template"]["spec"]["volumes"]
    assert {"name": "sageport-async-agent-scratch", "emptyDir": {}} in volumes
    assert sidecar["resources"]["limits"]["memory"] == "256Mi"
