"""Plan: the shape of each variant, and how a feature extends it (a rule, not a branch)."""

from __future__ import annotations

from typing import Any

import pytest

from sageport.operator.reconcile import plan
from sageport.operator.reconcile.plan import EndpointPlan, plan_endpoint
from sageport.operator.reconcile.resolve import ResolvedVariant
from sageport.operator.render import variant_children
from sageport.operator.render.shape import Autoscaler, RenderSettings, ServiceShape, Sidecar
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
    def agent(rv: ResolvedVariant, settings: RenderSettings) -> Sidecar:
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
