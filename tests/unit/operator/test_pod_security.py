"""The root opt-out: a Model annotated sageport.io/run-as-root runs its model containers as root
where the namespace's Pod Security allows it, and is refused by name (with the fix) where it
does not; everything else keeps the restricted security context."""

from __future__ import annotations

from typing import Any

import pytest

from sageport.operator.pod_security import REASON, root_problem, runs_as_root
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.plan import plan_endpoint
from sageport.operator.render import RenderSettings, variant_children
from sageport.operator.status import Problem
from tests.support.endpoints import kind, resolve_documents
from tests.support.manifests import EXAMPLES, load_documents

ANNOTATION = "sageport.io/run-as-root"
SETTINGS = RenderSettings(runtime_image="sageport/runtime:test")


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, False),
        ({}, False),
        ({ANNOTATION: "true"}, True),
        ({ANNOTATION: "True"}, True),
        ({ANNOTATION: "false"}, False),
        ({"other": "true"}, False),
    ],
)
def test_the_annotation_is_a_boolean(annotations: dict[str, str] | None, expected: bool) -> None:
    assert runs_as_root(annotations) is expected


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_a_value_that_is_not_a_boolean_is_refused_naming_the_annotation(value: str) -> None:
    problem = root_problem("m", {ANNOTATION: value}, "ns", "baseline")
    assert problem is not None
    assert (problem.reason, problem.terminal) == ("InvalidSpec", True)
    assert ANNOTATION in problem.message
    assert '"true" or "false"' in problem.message


@pytest.mark.parametrize("level", ["baseline", "privileged", None])
def test_root_is_allowed_where_pod_security_allows_it(level: str | None) -> None:
    assert root_problem("m", {ANNOTATION: "true"}, "ns", level) is None


def test_root_in_a_restricted_namespace_is_refused_with_the_fix() -> None:
    problem = root_problem("mms", {ANNOTATION: "true"}, "team-a", "restricted")
    assert problem is not None
    assert (problem.reason, problem.terminal) == (REASON, True)
    message = problem.message
    assert "Model mms" in message
    assert "namespace team-a enforces Pod Security 'restricted'" in message
    assert "kubectl label namespace team-a pod-security.kubernetes.io/enforce=baseline --overwrite" in message


def test_models_without_the_annotation_are_never_refused() -> None:
    assert root_problem("m", None, "ns", "restricted") is None


def _docs(annotation: str | None) -> list[dict[str, Any]]:
    docs = load_documents(EXAMPLES / "aws-inference-toolkit" / "single-model")
    model = kind(docs, "Model")
    model["metadata"]["annotations"] = {} if annotation is None else {ANNOTATION: annotation}
    return docs


def _pod(docs: list[dict[str, Any]], pod_security: str | None) -> dict[str, Any] | Problem:
    resolved = resolve_documents(docs)
    assert not isinstance(resolved, Problem), resolved
    problem = admit(resolved, pod_security).problem
    if problem is not None:
        return problem
    (shape,) = plan_endpoint(resolved, SETTINGS).variants
    deployment = next(m for m in variant_children(shape, SETTINGS) if m["kind"] == "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_the_admitted_root_model_runs_as_root_and_nothing_else_does() -> None:
    pod = _pod(_docs("true"), "baseline")
    assert isinstance(pod, dict)
    (model,) = pod["containers"]
    assert model["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": False,
        "runAsUser": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The model fetch still runs as the image's non-root user, and so does the pod by default.
    assert all(c["securityContext"]["runAsNonRoot"] is True for c in pod["initContainers"])
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("annotation", [None, "false"])
def test_without_the_opt_out_the_model_stays_restricted(annotation: str | None) -> None:
    pod = _pod(_docs(annotation), "restricted")
    assert isinstance(pod, dict)
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True


def test_admit_refuses_the_root_model_in_a_restricted_namespace() -> None:
    problem = _pod(_docs("true"), "restricted")
    assert isinstance(problem, Problem)
    assert problem.reason == REASON
    assert "Model aws-toolkit-linear" in problem.message


def test_an_own_multi_model_container_gets_the_loading_router_in_front() -> None:
    docs = load_documents(EXAMPLES / "aws-inference-toolkit" / "multi-model")
    settings = RenderSettings(runtime_image="sageport/runtime:test", storage_secret="sageport-storage")
    resolved = resolve_documents(docs)
    assert not isinstance(resolved, Problem), resolved
    assert admit(resolved, "baseline").problem is None
    (shape,) = plan_endpoint(resolved, settings).variants
    deployment = next(m for m in variant_children(shape, settings) if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    model, router = pod["containers"]
    assert model["image"] == "docker.io/sageport/aws-mms:0.1.0"
    assert model["ports"] == [{"containerPort": 23000, "protocol": "TCP"}]  # behind the router
    env = {e["name"]: e["value"] for e in model["env"]}
    assert (env["SAGEMAKER_MULTI_MODEL"], env["SAGEMAKER_BIND_TO_PORT"]) == ("true", "23000")
    assert "SAGEPORT_MODEL_PREFIX" not in env  # the router downloads; no S3 credentials either
    assert "envFrom" not in model
    assert model["securityContext"]["runAsUser"] == 0
    assert router["image"] == "sageport/runtime:test"
    assert router["args"][0] == "sageport-router"
    assert "--multi-model-prefix=s3://sageport-models/aws-toolkit-mme/" in router["args"]
    assert "--container=model=23000" in router["args"]
    assert router["ports"][0]["containerPort"] == 8080
    assert router["securityContext"]["runAsNonRoot"] is True  # only the model container is root
    assert {"name": "models", "mountPath": "/opt/ml/models"} in router["volumeMounts"]
    assert {"name": "models", "mountPath": "/opt/ml/models"} in model["volumeMounts"]
    assert router["envFrom"] == [{"secretRef": {"name": "sageport-storage"}}]  # S3 for the downloads


def test_sageports_own_multi_model_server_loads_by_itself_without_a_router() -> None:
    docs = load_documents(EXAMPLES / "multi-model")
    resolved = resolve_documents(docs)
    assert not isinstance(resolved, Problem)
    (shape,) = plan_endpoint(resolved, SETTINGS).variants
    assert shape.sidecars == ()
