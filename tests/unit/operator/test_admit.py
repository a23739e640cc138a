"""The admit table: every API field has a verdict; unsupported fields are refused by name,
fields accepted but not acted on yet are listed (for the Warning event and the Ready message)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sageport.api.v1alpha1 import EndpointConfigSpec
from sageport.operator.reconcile.admit import SPEC_MODELS, TABLE, Admission, Scope, Verdict, admit
from sageport.operator.status import Problem
from tests.support.endpoints import kind, resolve_documents
from tests.support.manifests import ACK_SAMPLES, EXAMPLES, load_documents


def _admit(docs: list[dict[str, Any]]) -> Admission:
    resolved = resolve_documents(docs)
    assert not isinstance(resolved, Problem), resolved
    return admit(resolved)


def _refusal(docs: list[dict[str, Any]]) -> Problem:
    problem = _admit(docs).problem
    assert problem is not None
    assert (problem.reason, problem.terminal) == ("NotSupported", True)
    return problem


@pytest.mark.parametrize("scope", list(Scope))
def test_every_field_of_the_api_has_a_row(scope: Scope) -> None:
    rows = {row.field for row in TABLE if row.scope is scope}
    assert rows == set(SPEC_MODELS[scope].model_fields)


def test_rows_that_need_a_reason_give_one() -> None:
    for row in TABLE:
        if row.verdict in (Verdict.NOT_SUPPORTED, Verdict.NO_EFFECT):
            assert row.note, row


@pytest.mark.parametrize(
    "example",
    ["realtime-sklearn", "gpu-g5", "ab-test-two-variants", "autoscaling", "serverless", "async-inference"],
)
def test_examples_are_admitted_with_nothing_to_warn_about(example: str) -> None:
    assert _admit(load_documents(EXAMPLES / example)) == Admission(None, ())


def test_async_inference_is_admitted() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    kind(docs, "EndpointConfig")["spec"]["asyncInferenceConfig"] = {
        "clientConfig": {"maxConcurrentInvocationsPerInstance": 4},
        "outputConfig": {
            "s3OutputPath": "s3://b/o",
            "s3FailurePath": "s3://b/f/",
            "notificationConfig": {"successTopic": "https://hooks.example/ok", "errorTopic": "http://h/e"},
        },
    }
    assert _admit(docs) == Admission(None, ())


@pytest.mark.parametrize(
    "output",
    [
        {},
        {"s3OutputPath": "https://b/o"},
        {"s3OutputPath": "s3://b/o", "s3FailurePath": "/tmp/f"},
        {"s3OutputPath": "s3://b/o", "notificationConfig": {"errorTopic": "arn:aws:sns:us-east-1:1:t"}},
    ],
)
def test_async_inference_without_s3_paths_or_with_sns_topics_is_refused_naming_the_field(
    output: dict[str, Any],
) -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    kind(docs, "EndpointConfig")["spec"]["asyncInferenceConfig"] = {"outputConfig": output}
    message = _refusal(docs).message
    assert message.startswith("EndpointConfig.asyncInferenceConfig is not supported yet")
    assert "s3OutputPath" in message
    assert "http(s)://" in message


def test_serial_pipelines_and_multi_model_endpoints_are_admitted() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    model = kind(docs, "Model")["spec"]
    container = model.pop("primaryContainer")
    model["containers"] = [container, {**container, "image": "other:1"}]
    assert _admit(docs).problem is None  # Serial: SageMaker's default for several containers
    model["inferenceExecutionConfig"] = {"mode": "Serial"}
    admission = _admit(docs)
    assert (admission.problem, admission.not_acted_on) == (None, ())

    docs = load_documents(EXAMPLES / "realtime-sklearn")
    kind(docs, "Model")["spec"]["primaryContainer"]["mode"] = "MultiModel"
    assert _admit(docs).problem is None  # multi-model endpoints are served


def test_one_container_in_the_list_and_single_model_mode_are_admitted() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    model = kind(docs, "Model")["spec"]
    model["containers"] = [{**model.pop("primaryContainer"), "mode": "SingleModel"}]
    assert _admit(docs).problem is None


def test_fields_not_acted_on_are_listed_and_fields_without_effect_are_not() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    config = kind(docs, "EndpointConfig")["spec"]
    config["dataCaptureConfig"] = {
        "initialSamplingPercentage": 10,
        "destinationS3URI": "s3://capture/",
        "captureOptions": [{"captureMode": "Input"}],
    }
    config["tags"] = [{"key": "team", "value": "ml"}]
    config["productionVariants"][0]["managedInstanceScaling"] = {"status": "ENABLED", "maxInstanceCount": 3}
    kind(docs, "Endpoint")["spec"]["deploymentConfig"] = {
        "rollingUpdatePolicy": {
            "maximumBatchSize": {"type_": "CAPACITY_PERCENT", "value": 10},
            "waitIntervalInSeconds": 0,
        }
    }
    kind(docs, "Model")["spec"]["executionRoleARN"] = "arn:aws:iam::1:role/x"
    admission = _admit(docs)
    assert admission.problem is None
    assert admission.not_acted_on == ("EndpointConfig.productionVariants[AllTraffic].managedInstanceScaling",)


def test_ack_samples_are_admitted_with_their_data_capture_acted_on() -> None:
    admission = _admit(load_documents(ACK_SAMPLES))
    assert admission.problem is None
    assert "EndpointConfig.dataCaptureConfig" not in admission.not_acted_on


def test_data_capture_to_an_https_destination_is_refused_naming_the_field() -> None:
    docs = load_documents(EXAMPLES / "data-capture")
    assert _admit(docs).problem is None
    kind(docs, "EndpointConfig")["spec"]["dataCaptureConfig"]["destinationS3URI"] = (
        "https://b.s3.amazonaws.com/p"
    )
    message = _refusal(docs).message
    assert "EndpointConfig.dataCaptureConfig is not supported yet" in message
    assert "s3://bucket/prefix" in message


def test_a_shadow_variant_is_acted_on_and_its_own_fields_are_judged() -> None:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    config = kind(docs, "EndpointConfig")["spec"]
    config["shadowProductionVariants"] = [
        {
            **config["productionVariants"][0],
            "variantName": "Shadow",
            "coreDumpConfig": {"destinationS3URI": "s3://dumps/"},
        }
    ]
    admission = _admit(docs)
    assert admission.problem is None
    assert admission.not_acted_on == ("EndpointConfig.shadowProductionVariants[Shadow].coreDumpConfig",)


def test_shadow_variants_need_exactly_one_production_variant_and_unique_names() -> None:
    spec = kind(load_documents(EXAMPLES / "ab-test-two-variants"), "EndpointConfig")["spec"]
    with pytest.raises(ValidationError, match="exactly one variant"):
        EndpointConfigSpec.model_validate(
            {**spec, "shadowProductionVariants": [spec["productionVariants"][0] | {"variantName": "S"}]}
        )
    one = {**spec, "productionVariants": spec["productionVariants"][:1]}
    with pytest.raises(ValidationError, match="unique across production and shadow"):
        EndpointConfigSpec.model_validate({**one, "shadowProductionVariants": one["productionVariants"]})


def test_a_partial_rollback_batch_is_reported_as_not_acted_on() -> None:
    docs = load_documents(EXAMPLES / "rolling-update")
    rolling = kind(docs, "Endpoint")["spec"]["deploymentConfig"]["rollingUpdatePolicy"]
    assert _admit(docs).not_acted_on == ()
    rolling["rollbackMaximumBatchSize"] = {"type_": "CAPACITY_PERCENT", "value": 100}
    assert _admit(docs).not_acted_on == ()
    rolling["rollbackMaximumBatchSize"] = {"type_": "INSTANCE_COUNT", "value": 1}
    assert _admit(docs).not_acted_on == (
        "Endpoint.deploymentConfig.rollingUpdatePolicy.rollbackMaximumBatchSize",
    )


def test_a_direct_multi_container_model_is_admitted() -> None:
    admission = _admit(load_documents(EXAMPLES / "multi-container-direct"))
    assert admission == Admission(None, ())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["containers"][0].update(containerHostname="-bad-"), "containers.0.containerHostname"),
        (lambda m: m["containers"].extend([dict(m["containers"][0])] * 14), "containers"),
        (lambda m: [c.pop("containerHostname") for c in m["containers"]], "Direct needs containerHostname"),
        (
            lambda m: m["containers"][1].update(containerHostname="sklearn"),
            "containerHostname values must be unique",
        ),
    ],
    ids=["hostname-pattern", "16-containers", "direct-without-hostnames", "duplicate-hostnames"],
)
def test_bad_direct_models_are_refused_naming_the_field(change: Any, named: str) -> None:
    docs = load_documents(EXAMPLES / "multi-container-direct")
    change(kind(docs, "Model")["spec"])
    problem = resolve_documents(docs)
    assert isinstance(problem, Problem), problem
    assert (problem.reason, problem.terminal) == ("InvalidModel", True)
    assert named in problem.message
