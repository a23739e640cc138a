"""Pure translation: names, ARNs, ACK field names against the CRDs, requests to specs and
objects to botocore's response shapes (checked by botocore's own parser)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sageport.controlapi import names, shapes, translate
from sageport.controlapi.names import ENDPOINT, ENDPOINT_CONFIG, MODEL, Account, ack_name, object_name
from sageport.net.awserrors import ApiError

REPO = Path(__file__).resolve().parents[3]
ACCOUNT = Account("eu-west-1", "123456789012")


@pytest.fixture(scope="module")
def table() -> shapes.ShapeTable:
    return shapes.load()


# ---- names ----
def test_lower_case_names_are_kept_and_others_are_derived_stably() -> None:
    assert object_name("churn-ab") == "churn-ab"
    derived = object_name("Churn-AB")
    assert derived == object_name("Churn-AB")
    assert derived.startswith("churn-ab-h")
    assert len(derived) == len("churn-ab-h") + 10
    assert object_name("churn-AB") != derived  # same letters, other case: another object


def test_derived_and_kept_names_never_meet() -> None:
    derived = object_name("Churn")
    # A lower-case name that looks derived is itself derived, so it cannot take that slot.
    assert object_name(derived) != derived
    assert object_name(derived).endswith(derived[-12:]) is False


def test_long_names_fit_a_dns_label() -> None:
    for name in ("A" * 63, "a" * 62 + "B", "x-" * 31 + "Y"):
        derived = object_name(name)
        assert len(derived) <= 63
        assert derived == derived.lower()


def test_arns_lower_case_the_name() -> None:
    assert (
        ACCOUNT.arn(ENDPOINT, "My-Endpoint")
        == "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/my-endpoint"
    )
    assert ACCOUNT.arn(ENDPOINT_CONFIG, "C").endswith(":endpoint-config/c")
    assert ACCOUNT.arn(MODEL, "M").endswith(":model/m")


@pytest.mark.parametrize(
    ("member", "field"),
    [
        ("ModelDataUrl", "modelDataURL"),
        ("ExecutionRoleArn", "executionRoleARN"),
        ("S3Uri", "s3URI"),
        ("KmsKeyId", "kmsKeyID"),
        ("DestinationS3Uri", "destinationS3URI"),
        ("SecurityGroupIds", "securityGroupIDs"),
        ("EnableSSMAccess", "enableSSMAccess"),
        ("VolumeSizeInGB", "volumeSizeInGB"),
        ("MemorySizeInMB", "memorySizeInMB"),
        ("Type", "type_"),
        ("MlReservationArn", "mlReservationARN"),
        ("S3OutputPath", "s3OutputPath"),
    ],
)
def test_ack_names(member: str, field: str) -> None:
    assert ack_name(member) == field


def _crd_fields(plural: str) -> set[str]:
    doc = yaml.safe_load((REPO / "crds" / f"sageport.io_{plural}.yaml").read_text())
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        for field, child in (node.get("properties") or {}).items():
            found.add(field)
            walk(child.get("items", child))

    walk(schema)
    return found


def _member_fields(table: shapes.ShapeTable, shape_name: str, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if shape_name in seen:
        return set()
    seen.add(shape_name)
    shape = table[shape_name]
    found: set[str] = set()
    if shape["type"] == "structure":
        for member, ref in shape["members"].items():
            found.add(ack_name(member))
            found |= _member_fields(table, ref["shape"], seen)
    elif shape["type"] == "list":
        found |= _member_fields(table, shape["member"]["shape"], seen)
    return found


# Fields sageport adds that SageMaker does not have (clearly named extras, per the architecture).
SAGEPORT_EXTRAS = {"autoScaling", "minInstanceCount", "maxInstanceCount", "targetCPUUtilizationPercentage",
                   "desiredWeightsAndCapacities", "desiredWeight", "desiredInstanceCount", "variantName"}  # fmt: skip
# spec.autoScaling's target tracking: Application Auto Scaling's names, not CreateEndpoint's.
SAGEPORT_EXTRAS |= {"targetTrackingScalingPolicyConfiguration", "targetValue", "predefinedMetricSpecification",
                    "predefinedMetricType", "customizedMetricSpecification", "metricName", "namespace",
                    "statistic", "scaleInCooldown", "scaleOutCooldown", "disableScaleIn"}  # fmt: skip


@pytest.mark.parametrize(
    ("plural", "input_shape"),
    [("models", "CreateModelInput"), ("endpointconfigs", "CreateEndpointConfigInput"),
     ("endpoints", "CreateEndpointInput"), ("transformjobs", "CreateTransformJobRequest")],
)  # fmt: skip
def test_every_crd_field_is_a_botocore_member_renamed(
    table: shapes.ShapeTable, plural: str, input_shape: str
) -> None:
    """The rename rule reaches every SageMaker field of the CRDs (so nothing is lost on the way)."""
    missing = _crd_fields(plural) - _member_fields(table, input_shape) - SAGEPORT_EXTRAS
    assert not missing


# ---- requests ----
def test_a_create_endpoint_config_request_becomes_the_ack_spec(table: shapes.ShapeTable) -> None:
    request = {
        "EndpointConfigName": "Cfg",
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}
        ],
        "DataCaptureConfig": {"InitialSamplingPercentage": 50, "DestinationS3Uri": "s3://b/p",
                              "CaptureOptions": [{"CaptureMode": "Input"}]},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }  # fmt: skip
    spec = translate.to_spec(table, "CreateEndpointConfigInput", request)
    assert spec == {
        "endpointConfigName": "Cfg",
        "productionVariants": [
            {"variantName": "AllTraffic", "modelName": "m", "instanceType": "ml.m5.large",
             "initialInstanceCount": 2, "initialVariantWeight": 1.0}
        ],
        "dataCaptureConfig": {"initialSamplingPercentage": 50, "destinationS3URI": "s3://b/p",
                              "captureOptions": [{"captureMode": "Input"}]},
        "tags": [{"key": "team", "value": "ml"}],
    }  # fmt: skip


def test_environment_keys_are_user_data_not_renamed(table: shapes.ShapeTable) -> None:
    spec = translate.to_spec(
        table,
        "CreateModelInput",
        {
            "ModelName": "m",
            "PrimaryContainer": {"Image": "img", "Environment": {"SAGEMAKER_PROGRAM": "x.py"}},
        },
    )
    assert spec["primaryContainer"]["environment"] == {"SAGEMAKER_PROGRAM": "x.py"}


def test_deployment_config_types_become_type_underscore(table: shapes.ShapeTable) -> None:
    spec = translate.to_spec(
        table,
        "CreateEndpointInput",
        {"EndpointName": "e", "EndpointConfigName": "c",
         "DeploymentConfig": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
             "Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}}}},
    )  # fmt: skip
    routing = spec["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing == {
        "type_": "CANARY",
        "waitIntervalInSeconds": 60,
        "canarySize": {"type_": "INSTANCE_COUNT", "value": 1},
    }


def test_invalid_requests_name_every_member_in_sagemakers_words(table: shapes.ShapeTable) -> None:
    with pytest.raises(ApiError) as raised:
        translate.to_spec(
            table,
            "CreateEndpointConfigInput",
            {"EndpointConfigName": "bad_name", "ProductionVariants": [{"InitialInstanceCount": 0}]},
        )
    error = raised.value
    assert error.code == "ValidationException"
    assert error.message.startswith("3 validation errors detected: ")
    assert "Value 'bad_name' at 'endpointConfigName' failed to satisfy constraint" in error.message
    assert (
        "'productionVariants.1.member.variantName' failed to satisfy constraint: Member must not be null"
        in error.message
    )
    assert "Value '0' at 'productionVariants.1.member.initialInstanceCount'" in error.message


def test_unknown_members_are_refused_not_dropped(table: shapes.ShapeTable) -> None:
    with pytest.raises(ApiError, match="'modelNme' is not a member"):
        translate.to_spec(table, "CreateModelInput", {"ModelName": "m", "ModelNme": "x"})


def test_unknown_crd_fields_are_named_back_as_members(table: shapes.ShapeTable) -> None:
    message = (
        'EndpointConfig in version "v1alpha1" cannot be handled as a EndpointConfig: strict decoding error: '
        'unknown field "spec.productionVariants[0].inferenceAMIVersion", unknown field "spec.metricsConfig"'
    )
    error = translate.kube_error(
        table, "CreateEndpointConfigInput", 400, message, "CreateEndpointConfig", "arn"
    )
    assert error.code == "ValidationException"
    assert "ProductionVariants[0].InferenceAmiVersion" in error.message
    assert "MetricsConfig" in error.message


def test_rbac_refusals_are_access_denied(table: shapes.ShapeTable) -> None:
    error = translate.kube_error(table, None, 403, "forbidden", "CreateEndpoint", "arn:x")
    assert error.code == "AccessDeniedException"
    assert "sagemaker:CreateEndpoint" in error.message


def test_a_resource_quota_refusal_is_resource_limit_exceeded(table: shapes.ShapeTable) -> None:
    # The API server's words when a ResourceQuota on count/endpoints.sageport.io is full.
    message = (
        'endpoints.sageport.io "second" is forbidden: exceeded quota: endpoints, '
        "requested: count/endpoints.sageport.io=1, used: count/endpoints.sageport.io=1, "
        "limited: count/endpoints.sageport.io=1"
    )
    error = translate.kube_error(table, None, 403, message, "CreateEndpoint", "arn:x")
    assert (error.code, error.status) == ("ResourceLimitExceeded", 400)
    assert "exceeded quota: endpoints" in error.message


# ---- responses ----
ENDPOINT_OBJECT = {
    "metadata": {"name": "my-ep-h0123456789", "namespace": "team", "creationTimestamp": "2026-01-02T03:04:05Z"},
    "spec": {"endpointName": "My-Ep", "endpointConfigName": "cfg-2",
             "deploymentConfig": {"blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type_": "ALL_AT_ONCE", "waitIntervalInSeconds": 0}}}},
    "status": {
        "endpointStatus": "Updating",
        "endpointConfigName": "cfg-1",
        "creationTime": "2026-01-02T03:04:06Z",
        "lastModifiedTime": "2026-01-02T03:10:00.5Z",
        "productionVariants": [{"variantName": "AllTraffic", "currentWeight": 1, "desiredWeight": 1,
                                "currentInstanceCount": 2, "desiredInstanceCount": 2, "containerHostnames": ["a"],
                                "deployedImages": [{"specifiedImage": "i:1", "resolvedImage": "i@sha256:x",
                                                    "resolutionTime": "2026-01-02T03:05:00Z"}]}],
        "pendingDeploymentSummary": {"endpointConfigName": "cfg-2", "startTime": "2026-01-02T03:09:00Z",
                                     "productionVariants": [{"variantName": "AllTraffic", "desiredInstanceCount": 2,
                                                             "variantStatus": [{"status": "Creating"}]}],
                                     "trafficShift": {"step": 1}},
        "conditions": [{"type": "Ready", "status": "Unknown"}],
    },
}  # fmt: skip


def _parsed(table: shapes.ShapeTable, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """What boto3 would hand the user for this response body."""
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("sagemaker")
    parser = create_parser("json")
    raw = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()}
    return dict(parser.parse(raw, model.operation_model(operation).output_shape))


def test_describe_endpoint_in_botocores_shape(table: shapes.ShapeTable) -> None:
    described = translate.describe_endpoint(table, ENDPOINT_OBJECT, ACCOUNT)
    assert described["EndpointName"] == "My-Ep"
    assert described["EndpointArn"] == "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/my-ep"
    assert described["EndpointStatus"] == "Updating"
    assert described["EndpointConfigName"] == "cfg-1"  # the config serving, not the one coming
    assert described["CreationTime"] == 1767323046.0
    assert described["LastModifiedTime"] == 1767323400.5
    variant = described["ProductionVariants"][0]
    assert variant["CurrentWeight"] == 1.0
    assert variant["CurrentInstanceCount"] == 2
    assert "ContainerHostnames" not in variant
    assert "containerHostnames" not in variant
    assert variant["DeployedImages"][0]["ResolutionTime"] == 1767323100.0
    pending = described["PendingDeploymentSummary"]
    assert pending == {
        "EndpointConfigName": "cfg-2",
        "StartTime": 1767323340.0,
        "ProductionVariants": [{"VariantName": "AllTraffic", "DesiredInstanceCount": 2, "VariantStatus": [{"Status": "Creating"}]}],
    }  # fmt: skip
    routing = described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    parsed = _parsed(table, "DescribeEndpoint", described)
    assert parsed["CreationTime"].timestamp() == 1767323046.0
    assert parsed["PendingDeploymentSummary"]["StartTime"].timestamp() == 1767323340.0


def test_an_endpoint_without_status_is_creating_and_a_deleted_one_deleting(table: shapes.ShapeTable) -> None:
    fresh = {
        "metadata": {"name": "e", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": {"endpointConfigName": "c"},
    }
    described = translate.describe_endpoint(table, fresh, ACCOUNT)
    assert described["EndpointStatus"] == "Creating"
    assert described["EndpointName"] == "e"  # made with kubectl: metadata.name is the SageMaker name
    assert described["LastModifiedTime"] == described["CreationTime"]
    assert "ProductionVariants" not in described
    going = {**fresh, "metadata": {**fresh["metadata"], "deletionTimestamp": "2026-01-02T04:00:00Z"}}
    assert translate.describe_endpoint(table, going, ACCOUNT)["EndpointStatus"] == "Deleting"


def test_describe_model_round_trips_a_create_request(table: shapes.ShapeTable) -> None:
    request = {
        "ModelName": "Churn",
        "PrimaryContainer": {"Image": "img:1", "ModelDataUrl": "s3://b/m.tar.gz", "Environment": {"A_B": "1"},
                             "ModelDataSource": {"S3DataSource": {"S3Uri": "s3://b/p/", "S3DataType": "S3Prefix",
                                                                  "CompressionType": "None"}}},
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
        "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["s-1"]},
    }  # fmt: skip
    obj = translate.new_object(MODEL, "team", "Churn", translate.to_spec(table, "CreateModelInput", request))
    obj["metadata"]["creationTimestamp"] = "2026-01-02T03:04:05Z"
    described = translate.describe_model(table, obj, ACCOUNT)
    assert {k: v for k, v in described.items() if k in request} == request
    assert obj["metadata"]["name"] == object_name("Churn")


# ---- lists ----
def _entries(count: int) -> list[dict[str, Any]]:
    return [{"EndpointName": f"ep-{i:03d}", "CreationTime": 1000.0 + i % 7, "EndpointStatus": "InService"}
            for i in range(count)]  # fmt: skip


@pytest.mark.parametrize("sort_by", ["Name", "CreationTime", "Status"])
@pytest.mark.parametrize("order", ["Ascending", "Descending"])
def test_pages_cover_every_entry_once_in_order(sort_by: str, order: str) -> None:
    entries = _entries(23)
    seen: list[str] = []
    token = None
    while True:
        request = {"SortBy": sort_by, "SortOrder": order, "MaxResults": 5}
        if token:
            request["NextToken"] = token
        selected, token = translate.page(entries, translate.parse_list_query(request), "EndpointName")
        seen += [entry["EndpointName"] for entry in selected]
        if token is None:
            break
    assert sorted(seen) == sorted(e["EndpointName"] for e in entries)
    assert len(seen) == len(set(seen))


def test_list_filters() -> None:
    entries = _entries(10)
    query = translate.parse_list_query(
        {"NameContains": "EP-00", "CreationTimeAfter": 1002.5, "MaxResults": 100}
    )
    selected, token = translate.page(entries, query, "EndpointName")
    assert token is None
    assert {e["EndpointName"] for e in selected} == {"ep-003", "ep-004", "ep-005", "ep-006"}


def test_a_bad_token_is_a_validation_error() -> None:
    with pytest.raises(ApiError, match="Invalid pagination token"):
        translate.parse_list_query({"NextToken": "not-a-token"})


def test_names_module_kinds() -> None:
    assert [kind.kind for kind in names.KINDS] == ["Model", "EndpointConfig", "Endpoint", "TransformJob"]


def test_an_update_the_operator_has_not_seen_yet_is_updating() -> None:
    status = {"endpointStatus": "InService", "endpointConfigName": "v1", "observedGeneration": 1,
              "productionVariants": [{"variantName": "A", "desiredWeight": 1.0, "desiredInstanceCount": 1}]}  # fmt: skip

    def endpoint(generation: int, **spec: Any) -> dict[str, Any]:
        return {"metadata": {"generation": generation}, "spec": {"endpointConfigName": "v1", **spec},
                "status": status}  # fmt: skip

    assert translate.endpoint_status(endpoint(1)) == "InService"
    assert translate.endpoint_status(endpoint(2, endpointConfigName="v2")) == "Updating"
    weights = [{"variantName": "A", "desiredWeight": 2.0}]
    assert translate.endpoint_status(endpoint(2, desiredWeightsAndCapacities=weights)) == "Updating"
    # Tags only, or weights the status already shows: nothing for the operator to do.
    assert translate.endpoint_status(endpoint(2, tags=[{"key": "k", "value": "v"}])) == "InService"
    same = [{"variantName": "A", "desiredWeight": 1.0}]
    assert translate.endpoint_status(endpoint(2, desiredWeightsAndCapacities=same)) == "InService"
    # Once observed, the operator's own status speaks (it refused, or it is done).
    assert translate.endpoint_status(endpoint(1, endpointConfigName="v2")) == "InService"
