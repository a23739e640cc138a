"""The API contract: ACK manifests validate, SageMaker's limits are enforced with clear messages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from sageport.api.v1alpha1 import Endpoint, EndpointConfig, Model, TransformJob
from sageport.api.v1alpha1.common import ack_alias
from sageport.api.v1alpha1.endpoint import DeploymentConfig
from tests.support.manifests import ACK_SAMPLES, example_dirs, load_documents

KINDS: dict[str, Any] = {
    "Model": Model,
    "EndpointConfig": EndpointConfig,
    "Endpoint": Endpoint,
    "TransformJob": TransformJob,
}


@pytest.mark.parametrize(
    ("python", "wire"),
    [
        ("model_data_url", "modelDataURL"),
        ("execution_role_arn", "executionRoleARN"),
        ("security_group_ids", "securityGroupIDs"),
        ("kms_key_id", "kmsKeyID"),
        ("destination_s3_uri", "destinationS3URI"),
        ("memory_size_in_mb", "memorySizeInMB"),
        ("volume_size_in_gb", "volumeSizeInGB"),
        ("enable_ssm_access", "enableSSMAccess"),
        ("volume_kms_key_id", "volumeKMSKeyID"),
        ("transform_ami_version", "transformAMIVersion"),
        ("type_", "type_"),
        ("s3_uri", "s3URI"),
    ],
)
def test_wire_names_are_acks(python: str, wire: str) -> None:
    assert ack_alias(python) == wire


def test_ack_samples_validate_and_round_trip() -> None:
    for doc in load_documents(ACK_SAMPLES):
        obj = KINDS[doc["kind"]].model_validate(doc)
        assert obj.spec.to_wire() == doc["spec"]  # nothing renamed, nothing dropped


@pytest.mark.parametrize("directory", list(example_dirs()), ids=lambda p: p.name)
def test_examples_validate(directory: Any) -> None:
    for doc in load_documents(directory):
        KINDS[doc["kind"]].model_validate(doc)


def _model(**container: Any) -> dict[str, Any]:
    return {"kind": "Model", "metadata": {"name": "m"}, "spec": {"primaryContainer": container}}


def _config(*variants: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "EndpointConfig",
        "metadata": {"name": "c"},
        "spec": {"productionVariants": list(variants)},
    }


def _variant(name: str = "AllTraffic", **extra: Any) -> dict[str, Any]:
    return {
        "variantName": name,
        "modelName": "m",
        "instanceType": "ml.m5.large",
        "initialInstanceCount": 1,
        **extra,
    }


def _error(kind: Any, body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        kind.model_validate(body)
    return str(info.value)


def test_names_follow_sagemaker_pattern_and_length() -> None:
    body = _model(image="x")
    body["spec"]["modelName"] = "bad_name"
    assert "modelName" in _error(Model, body)
    body["spec"]["modelName"] = "a" * 64
    assert "at most 63" in _error(Model, body)


def test_variants_between_one_and_ten_with_unique_names() -> None:
    assert "at least 1" in _error(EndpointConfig, _config())
    eleven = [_variant(f"v{i}") for i in range(11)]
    assert "at most 10" in _error(EndpointConfig, _config(*eleven))
    assert "repeated: v" in _error(EndpointConfig, _config(_variant("v"), _variant("v")))


def test_weights_are_not_negative() -> None:
    assert "greater than or equal to 0" in _error(EndpointConfig, _config(_variant(initialVariantWeight=-1)))


def test_serverless_limits() -> None:
    def serverless(**config: Any) -> dict[str, Any]:
        return _config({"variantName": "s", "modelName": "m", "serverlessConfig": config})

    EndpointConfig.model_validate(serverless(memorySizeInMB=2048, maxConcurrency=5))
    assert "multiple of 1024" in _error(EndpointConfig, serverless(memorySizeInMB=1500, maxConcurrency=5))
    assert "less than or equal to 6144" in _error(
        EndpointConfig, serverless(memorySizeInMB=7168, maxConcurrency=5)
    )
    assert "less than or equal to 200" in _error(
        EndpointConfig, serverless(memorySizeInMB=1024, maxConcurrency=201)
    )
    too_warm = serverless(memorySizeInMB=1024, maxConcurrency=2, provisionedConcurrency=3)
    assert "must not exceed maxConcurrency" in _error(EndpointConfig, too_warm)


def test_variant_needs_instances_or_serverless_not_both() -> None:
    incomplete = _config({"variantName": "v", "modelName": "m", "instanceType": "ml.m5.large"})
    assert "set instanceType and initialInstanceCount" in _error(EndpointConfig, incomplete)
    both = _variant(serverlessConfig={"memorySizeInMB": 1024, "maxConcurrency": 1})
    assert "replaces instanceType" in _error(EndpointConfig, _config(both))


def test_serverless_variants_have_no_gpu() -> None:
    gpu = {
        "variantName": "s",
        "modelName": "m",
        "acceleratorType": "ml.eia2.medium",
        "serverlessConfig": {"memorySizeInMB": 1024, "maxConcurrency": 1},
    }
    message = _error(EndpointConfig, _config(gpu))
    assert "serverless variants have no GPU" in message
    assert "acceleratorType" in message


def test_containers_at_most_fifteen_and_direct_needs_hostnames() -> None:
    containers = [{"image": "x"}] * 16
    body = {"kind": "Model", "metadata": {"name": "m"}, "spec": {"containers": containers}}
    assert "at most 15" in _error(Model, body)
    direct = {
        "kind": "Model",
        "metadata": {"name": "m"},
        "spec": {
            "containers": [{"image": "a"}, {"image": "b"}],
            "inferenceExecutionConfig": {"mode": "Direct"},
        },
    }
    assert "Direct needs containerHostname" in _error(Model, direct)


def test_exactly_one_of_primary_container_and_containers() -> None:
    neither = {"kind": "Model", "metadata": {"name": "m"}, "spec": {}}
    assert "exactly one of primaryContainer and containers" in _error(Model, neither)


def test_unknown_fields_are_rejected() -> None:
    assert "Extra inputs are not permitted" in _error(Model, _model(image="x", imageURL="typo"))


def test_model_data_url_schemes() -> None:
    for url in ("s3://b/k.tar.gz", "https://h/m.tar.gz", "file:///models/m", "pvc://claim/path"):
        Model.model_validate(_model(modelDataURL=url))
    assert "modelDataURL" in _error(Model, _model(modelDataURL="ftp://h/m"))


def test_transform_job_payload_budget() -> None:
    body = {
        "kind": "TransformJob",
        "metadata": {"name": "t"},
        "spec": {
            "modelName": "m",
            "transformInput": {
                "dataSource": {"s3DataSource": {"s3DataType": "S3Prefix", "s3URI": "s3://b/in/"}}
            },
            "transformOutput": {"s3OutputPath": "s3://b/out/"},
            "transformResources": {"instanceType": "ml.m5.large", "instanceCount": 1},
            "maxConcurrentTransforms": 20,
            "maxPayloadInMB": 6,
        },
    }
    assert "must not exceed 100" in _error(TransformJob, body)


@pytest.mark.parametrize(
    ("deployment_config", "message"),
    [
        (
            {
                "blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type_": "ALL_AT_ONCE", "waitIntervalInSeconds": 0}},
                "rollingUpdatePolicy": {"maximumBatchSize": {"type_": "CAPACITY_PERCENT", "value": 10}, "waitIntervalInSeconds": 0},
            },
            "not both",
        ),
        (
            {"blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type_": "CANARY", "waitIntervalInSeconds": 0,
                                                                       "canarySize": {"type_": "CAPACITY_PERCENT", "value": 60}}}},
            "canarySize is at most 50 %",
        ),
        (
            {"blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type_": "CANARY", "waitIntervalInSeconds": 0}}},
            "CANARY needs canarySize",
        ),
        (
            {"blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type_": "LINEAR", "waitIntervalInSeconds": 0,
                                                                       "linearStepSize": {"type_": "CAPACITY_PERCENT", "value": 5}}}},
            "linearStepSize is 10 to 50 %",
        ),
        (
            {"blueGreenUpdatePolicy": {
                "trafficRoutingConfiguration": {"type_": "CANARY", "waitIntervalInSeconds": 600,
                                                "canarySize": {"type_": "INSTANCE_COUNT", "value": 1}},
                "terminationWaitInSeconds": 100, "maximumExecutionTimeoutInSeconds": 1200}},
            "maximumExecutionTimeoutInSeconds (1200) must exceed the sum of the waits (1300 s",
        ),
        (
            {"rollingUpdatePolicy": {"maximumBatchSize": {"type_": "CAPACITY_PERCENT", "value": 60}, "waitIntervalInSeconds": 0}},
            "maximumBatchSize is 5 to 50 %",
        ),
        (
            {"autoRollbackConfiguration": {"alarms": [{"alarmName": f"alarm-{n}"} for n in range(11)]}},
            "List should have at most 10 items",
        ),
    ],
)  # fmt: skip
def test_deployment_config_refusals_name_the_field(deployment_config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        DeploymentConfig.model_validate(deployment_config)


def test_a_linear_deployment_config_within_the_limits_is_accepted() -> None:
    policy = {"trafficRoutingConfiguration": {"type_": "LINEAR", "waitIntervalInSeconds": 60,
              "linearStepSize": {"type_": "CAPACITY_PERCENT", "value": 25}}, "maximumExecutionTimeoutInSeconds": 600}  # fmt: skip
    assert (
        DeploymentConfig.model_validate({"blueGreenUpdatePolicy": policy}).blue_green_update_policy
        is not None
    )
