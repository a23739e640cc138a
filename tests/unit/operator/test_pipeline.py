"""Serial inference pipelines: the plan's shape (instances, stages, ports, resource split) and
what the operator does for each instance from the pods it finds (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sageport.contract import ANNOTATION_STAGES, ANNOTATION_TEMPLATE_HASH, LABEL_INSTANCE, LABEL_ROLE
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.pipeline import pipeline_actions
from sageport.operator.reconcile.plan import EndpointPlan, container_ports, plan_endpoint
from sageport.operator.render import RenderSettings, variant_children
from sageport.operator.render.shape import VariantShape
from sageport.operator.render.stage import stage_pod
from tests.support.endpoints import resolve_documents
from tests.support.manifests import EXAMPLES, load_documents

SETTINGS = RenderSettings(runtime_image="sageport/runtime:test")


def _plan(docs: list[dict[str, Any]] | None = None) -> EndpointPlan:
    resolved = resolve_documents(docs or load_documents(EXAMPLES / "serial-pipeline"), namespace="ml")
    assert not hasattr(resolved, "reason"), resolved
    assert admit(resolved).problem is None  # type: ignore[arg-type]
    return plan_endpoint(resolved, SETTINGS)  # type: ignore[arg-type]


def _shape() -> VariantShape:
    (shape,) = _plan().variants
    return shape


def test_the_instance_is_the_anchor_and_one_pod_per_further_stage() -> None:
    plan = _plan()
    (shape,) = plan.variants
    assert [c.hostname for c in shape.containers] == ["preprocess"]  # the anchor's model container
    assert [s.hostname for s in shape.stages] == ["model", "postprocess"]
    assert shape.replicas == 2  # initialInstanceCount counts instances: the anchors
    # Each stage keeps its own slice of 23000-23999, as in one SageMaker instance.
    assert [c.port for c in (*shape.containers, *shape.stages)] == [container_ports(i)[0] for i in range(3)]
    (router,) = shape.sidecars
    assert "--container=preprocess=23000" in router.args
    assert [a for a in router.args if a.startswith("--stage")] == [
        "--stage=model",
        "--stage=postprocess",
        "--stages-file=/etc/sageport/pod/stages",
    ]
    (summary,) = plan.plans
    assert summary.pipeline_hostnames == ("preprocess", "model", "postprocess")
    assert summary.container_hostnames is None  # no TargetContainerHostname on a pipeline
    assert len(summary.images) == 3


def test_the_instance_type_is_split_between_the_router_and_the_stages() -> None:
    shape = _shape()
    shares = [c.resources for c in (*shape.containers, *shape.stages)]
    # ml.m5.xlarge: 3600m and 14745Mi; the router takes 100m and 128Mi, the stages a third each.
    assert {(r.cpu, r.memory, r.gpus) for r in shares} == {("1166m", "4872Mi", 0)}


def test_the_service_pdb_and_spread_select_anchors_only() -> None:
    deployment, service, pdb = variant_children(_shape(), SETTINGS)
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector[LABEL_ROLE] == "instance"
    pod = deployment["spec"]["template"]["spec"]
    router = pod["containers"][-1]
    assert router["readinessProbe"]["failureThreshold"] == 1  # a dead stage leaves at once
    assert router["volumeMounts"] == [
        {"name": "pod-info", "mountPath": "/etc/sageport/pod", "readOnly": True}
    ]


def test_a_stage_pod_follows_its_anchor_by_required_affinity() -> None:
    shape = _shape()
    pod = stage_pod(shape, shape.stages[0], "anchor-1", "uid-1", SETTINGS)
    term = pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == [
        {
            "labelSelector": {"matchLabels": {LABEL_INSTANCE: "anchor-1"}},
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    assert LABEL_ROLE not in pod["metadata"]["labels"]  # never an endpoint of the Service
    assert pod["metadata"]["ownerReferences"][0] | {} == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "anchor-1",
        "uid": "uid-1",
        "controller": True,
    }


def _anchor(name: str, node: str | None = "node-a", **meta: Any) -> dict[str, Any]:
    labels = {"sageport.io/variant": "AllTraffic", LABEL_ROLE: "instance", **meta.pop("labels", {})}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels, **meta},
        "spec": {"nodeName": node} if node else {},
        "status": {},
    }


def _running(pod: dict[str, Any], ip: str) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["status"] = {"phase": "Running", "podIP": ip}
    pod["spec"]["nodeName"] = "node-a"
    return pod


def test_a_placed_anchor_is_labelled_and_gets_its_stage_pods() -> None:
    shape = _shape()
    actions = pipeline_actions(shape, [_anchor("a1"), _anchor("a2", node=None)], SETTINGS)
    assert actions.patches == {"a1": {"metadata": {"labels": {LABEL_INSTANCE: "a1"}}}}  # no stage address yet
    assert [p["metadata"]["name"] for p in actions.create] == ["a1-model", "a1-postprocess"]
    assert actions.delete == []  # a2 is not placed: its stages would have no node to follow


def test_the_anchor_learns_where_its_stages_answer() -> None:
    shape = _shape()
    anchor = _anchor("a1", labels={LABEL_INSTANCE: "a1"})
    model, post = (stage_pod(shape, stage, "a1", "uid-a1", SETTINGS) for stage in shape.stages)
    pods = [anchor, _running(model, "10.0.0.7"), post]  # post has no IP yet
    actions = pipeline_actions(shape, pods, SETTINGS)
    assert actions.patches == {
        "a1": {"metadata": {"annotations": {ANNOTATION_STAGES: "model=10.0.0.7:23066"}}}
    }
    assert (actions.create, actions.delete) == ([], [])

    pods = [anchor, _running(model, "10.0.0.7"), _running(post, "fd00::9")]
    actions = pipeline_actions(shape, pods, SETTINGS)
    expected = "model=10.0.0.7:23066,postprocess=[fd00::9]:23132"
    assert actions.patches["a1"]["metadata"]["annotations"][ANNOTATION_STAGES] == expected
    anchor["metadata"]["annotations"] = {ANNOTATION_STAGES: expected}
    assert not pipeline_actions(shape, pods, SETTINGS)  # all in place: nothing to do


@pytest.mark.parametrize("how", ["terminating", "failed", "old template", "deleted"])
def test_a_stage_that_died_takes_its_instance_out_until_it_is_back(how: str) -> None:
    shape = _shape()
    addresses = "model=10.0.0.7:23066,postprocess=10.0.0.8:23132"
    anchor = _anchor("a1", labels={LABEL_INSTANCE: "a1"}, annotations={ANNOTATION_STAGES: addresses})
    model, post = (stage_pod(shape, stage, "a1", "uid-a1", SETTINGS) for stage in shape.stages)
    model, post = _running(model, "10.0.0.7"), _running(post, "10.0.0.8")
    if how == "terminating":
        post["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    elif how == "failed":
        post["status"]["phase"] = "Failed"
    elif how == "old template":
        post["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH] = "old"
    pods = [anchor, model] if how == "deleted" else [anchor, model, post]
    actions = pipeline_actions(shape, pods, SETTINGS)
    # Out of the addresses at once: the router's /ping fails, the anchor leaves the Service.
    assert actions.patches == {
        "a1": {"metadata": {"annotations": {ANNOTATION_STAGES: "model=10.0.0.7:23066"}}}
    }
    if how == "deleted":
        assert [p["metadata"]["name"] for p in actions.create] == ["a1-postprocess"]
    elif how == "terminating":
        assert (actions.create, actions.delete) == ([], [])  # its replacement once the name is free
    else:
        assert actions.delete == ["a1-postprocess"]


def test_other_variants_and_terminating_anchors_are_left_alone() -> None:
    shape = _shape()
    other = _anchor("b1")
    other["metadata"]["labels"]["sageport.io/variant"] = "Other"
    leaving = _anchor("a9", deletionTimestamp="2026-01-01T00:00:00Z")
    assert not pipeline_actions(shape, [other, leaving], SETTINGS)


def test_a_single_container_in_the_list_is_no_pipeline() -> None:
    docs = load_documents(EXAMPLES / "serial-pipeline")
    model = next(d for d in docs if d["kind"] == "Model")
    model["spec"]["containers"] = model["spec"]["containers"][1:2]
    del model["spec"]["inferenceExecutionConfig"]
    (shape,) = _plan(docs).variants
    assert (shape.stages, shape.sidecars) == ((), ())
    assert not pipeline_actions(shape, [_anchor("a1")], SETTINGS)
