"""boto3's ``sagemaker`` client against the gateway's control-plane API, on the real API server
with the real operator (kwok nodes): create model -> config -> endpoint, the waiters, Describe,
List with pagination, UpdateEndpoint, Delete, and SageMaker's errors.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import WaiterError  # type: ignore[import-untyped]

from sageport.controlapi.names import object_name
from sageport_dev.handle import KubeCluster
from tests.integration.controlapi.support import REGION, key_client
from tests.integration.gateway.support import Process
from tests.support.kube import apply, get

pytestmark = pytest.mark.usefixtures("sageport_operator")
WAIT = {"Delay": 1, "MaxAttempts": 90}


def _variant(model: str, count: int = 1) -> dict[str, Any]:
    return {"VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": count}  # fmt: skip


def test_create_wait_describe_list_update_delete(
    sagemaker: Any, kube_cluster: KubeCluster, namespace: str
) -> None:
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    created = sagemaker.create_model(
        ModelName="Churn-A",
        PrimaryContainer={
            "ModelDataUrl": "s3://sageport-models/churn/a/model.tar.gz",
            "Environment": {"K": "v"},
        },
    )
    assert created["ModelArn"] == f"{arn}:model/churn-a"
    sagemaker.create_model(
        ModelName="Churn-B", PrimaryContainer={"ModelDataUrl": "s3://sageport-models/b.tar.gz"}
    )
    sagemaker.create_endpoint_config(EndpointConfigName="churn-v1", ProductionVariants=[_variant("Churn-A")])
    sagemaker.create_endpoint_config(
        EndpointConfigName="churn-v2", ProductionVariants=[_variant("Churn-B", 2)]
    )
    response = sagemaker.create_endpoint(EndpointName="Churn", EndpointConfigName="churn-v1")
    assert response["EndpointArn"] == f"{arn}:endpoint/churn"

    # Objects in the key's namespace, SageMaker names in the spec, metadata.name by the documented rule.
    endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, object_name("Churn"))
    assert endpoint["spec"] == {"endpointName": "Churn", "endpointConfigName": "churn-v1"}
    model = get(kube_cluster, "models.sageport.io", namespace, object_name("Churn-A"))
    assert model["spec"]["primaryContainer"]["modelDataURL"] == "s3://sageport-models/churn/a/model.tar.gz"

    # Straight after the create, Describe already knows it (read-your-writes from the cache).
    assert sagemaker.describe_endpoint(EndpointName="Churn")["EndpointStatus"] in ("Creating", "InService")

    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Churn", WaiterConfig=WAIT)
    described = sagemaker.describe_endpoint(EndpointName="Churn")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "churn-v1"
    assert described["EndpointArn"] == f"{arn}:endpoint/churn"
    variant = described["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == 1
    assert described["CreationTime"] <= described["LastModifiedTime"]
    assert described["CreationTime"].tzinfo is not None  # botocore parsed our epoch seconds

    model_description = sagemaker.describe_model(ModelName="Churn-A")
    assert model_description["PrimaryContainer"]["Environment"] == {"K": "v"}
    config = sagemaker.describe_endpoint_config(EndpointConfigName="churn-v2")
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 2

    listed = sagemaker.list_endpoints()["Endpoints"]
    assert [entry["EndpointName"] for entry in listed] == ["Churn"]
    assert listed[0]["EndpointStatus"] == "InService"
    pages = sagemaker.get_paginator("list_models").paginate(PaginationConfig={"PageSize": 1})
    assert sorted(m["ModelName"] for page in pages for m in page["Models"]) == ["Churn-A", "Churn-B"]

    # Update to the new config: Updating, then InService on churn-v2 with two instances.
    sagemaker.update_endpoint(EndpointName="Churn", EndpointConfigName="churn-v2")
    assert sagemaker.describe_endpoint(EndpointName="Churn")["EndpointStatus"] in ("InService", "Updating")
    deadline = time.monotonic() + 90
    while True:
        described = sagemaker.describe_endpoint(EndpointName="Churn")
        if described["EndpointStatus"] == "InService" and described.get("EndpointConfigName") == "churn-v2":
            break
        assert time.monotonic() < deadline, f"update did not finish: {described}"
        time.sleep(0.5)
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2

    sagemaker.delete_endpoint(EndpointName="Churn")
    sagemaker.get_waiter("endpoint_deleted").wait(EndpointName="Churn", WaiterConfig=WAIT)
    assert get(kube_cluster, "endpoints.sageport.io", namespace, object_name("Churn")) is None
    for config_name in ("churn-v1", "churn-v2"):
        sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
    for model_name in ("Churn-A", "Churn-B"):
        sagemaker.delete_model(ModelName=model_name)
    assert sagemaker.list_models()["Models"] == []


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        call(**kwargs)
    except Exception as error:
        response = getattr(error, "response", {})
        return response["Error"]["Code"], response["Error"]["Message"]
    raise AssertionError("no error")


def test_duplicate_missing_and_unsupported_requests(
    sagemaker: Any, kube_cluster: KubeCluster, namespace: str
) -> None:
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    sagemaker.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"})
    assert _error(sagemaker.create_model, ModelName="m") == (
        "ValidationException", f'Cannot create already existing model "{arn}:model/m".')  # fmt: skip
    assert _error(sagemaker.describe_endpoint, EndpointName="Nope") == (
        "ValidationException", f'Could not find endpoint "{arn}:endpoint/nope".')  # fmt: skip
    assert _error(sagemaker.delete_endpoint, EndpointName="nope")[0] == "ValidationException"
    assert (
        _error(sagemaker.describe_model, ModelName="ghost")[1] == f'Could not find model "{arn}:model/ghost".'
    )
    assert _error(sagemaker.create_endpoint, EndpointName="e", EndpointConfigName="ghost") == (
        "ValidationException", f'Could not find endpoint configuration "{arn}:endpoint-config/ghost".')  # fmt: skip
    assert _error(sagemaker.create_endpoint_config, EndpointConfigName="c", ProductionVariants=[_variant("ghost")]) == (
        "ValidationException", f'Could not find model "{arn}:model/ghost".')  # fmt: skip

    sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[_variant("m")])
    assert _error(sagemaker.create_endpoint_config, EndpointConfigName="c", ProductionVariants=[_variant("m")]) == (
        "ValidationException", f'Cannot create already existing endpoint configuration "{arn}:endpoint-config/c".')  # fmt: skip
    sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="c")
    assert _error(sagemaker.create_endpoint, EndpointName="e", EndpointConfigName="c") == (
        "ValidationException", f'Cannot create already existing endpoint "{arn}:endpoint/e".')  # fmt: skip

    # What the CRDs cannot hold is refused naming the member, and nothing is created.
    code, message = _error(
        sagemaker.create_endpoint_config,
        EndpointConfigName="c-metrics",
        ProductionVariants=[_variant("m")],
        MetricsConfig={"EnableEnhancedMetrics": True},
    )
    assert code == "ValidationException"
    assert "MetricsConfig" in message
    assert (
        _error(sagemaker.describe_endpoint_config, EndpointConfigName="c-metrics")[0] == "ValidationException"
    )
    # A bad value is refused in SageMaker's words before anything reaches Kubernetes.
    code, message = _error(sagemaker.create_model, ModelName="bad_name")
    assert code == "ValidationException"
    assert "at 'modelName' failed to satisfy constraint" in message


def test_objects_made_with_kubectl_are_described(
    sagemaker: Any, kube_cluster: KubeCluster, namespace: str
) -> None:
    apply(
        kube_cluster,
        [{"apiVersion": "sageport.io/v1alpha1", "kind": "Model", "metadata": {"name": "by-hand"},
          "spec": {"primaryContainer": {"modelDataURL": "s3://b/m.tar.gz"}}}],
        namespace,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:  # the watch brings it
        try:
            described = sagemaker.describe_model(ModelName="by-hand")
            break
        except sagemaker.exceptions.ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert described["ModelName"] == "by-hand"
    assert described["PrimaryContainer"] == {"ModelDataUrl": "s3://b/m.tar.gz"}


def _endpoint_status(kube_cluster: KubeCluster, namespace: str, name: str, status: str) -> None:
    """Write an Endpoint's status as the operator would (the test plays it)."""
    kube_cluster.kubectl("-n", namespace, "patch", "endpoints.sageport.io", object_name(name),
                         "--subresource=status", "--type=merge", "-p", json.dumps({"status": {"endpointStatus": status}}))  # fmt: skip


@pytest.mark.fake_operator
def test_pagination_over_120_endpoints_with_filters_and_sort(
    sagemaker: Any, kube_cluster: KubeCluster, namespace: str
) -> None:
    """120 endpoints: every paging of ListEndpoints returns each exactly once, in SageMaker's
    orders (Name, CreationTime, Status; both directions), with NameContains, StatusEquals and
    the time filters; DescribeEndpoint stays a cache read (p50 printed; target < 5 ms)."""
    sagemaker.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[_variant("m")])
    names = [f"Ep-{index:03d}" for index in range(120)]
    for name in names[:60]:
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="c")
    time.sleep(1.1)  # creationTimestamp has whole seconds: a boundary between the two halves
    boundary = datetime.now(UTC)
    time.sleep(1.1)
    for name in names[60:]:
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="c")
    for name in names[::3]:
        _endpoint_status(kube_cluster, namespace, name, "InService")
    in_service = sorted(names[::3])

    def listed(page_size: int, **filters: Any) -> list[dict[str, Any]]:
        pages = sagemaker.get_paginator("list_endpoints").paginate(
            **filters, PaginationConfig={"PageSize": page_size}
        )
        return [entry for page in pages for entry in page["Endpoints"]]

    by_name = listed(7, SortBy="Name", SortOrder="Ascending")
    assert [e["EndpointName"] for e in by_name] == names
    assert [e["EndpointName"] for e in listed(50, SortBy="Name", SortOrder="Descending")] == names[::-1]
    newest_first = listed(25)  # SageMaker's default: CreationTime, Descending
    assert sorted(e["EndpointName"] for e in newest_first) == names
    times = [e["CreationTime"] for e in newest_first]
    assert times == sorted(times, reverse=True)
    assert {e["EndpointName"] for e in newest_first[:60]} == set(names[60:])
    by_status = listed(11, SortBy="Status", SortOrder="Ascending")
    assert [e["EndpointStatus"] for e in by_status] == ["Creating"] * 80 + ["InService"] * 40

    def eventually_listed(expected: list[str], **filters: Any) -> None:
        deadline = time.monotonic() + 10  # status writes reach the cache through the watch
        while sorted(e["EndpointName"] for e in listed(9, **filters)) != expected:
            assert time.monotonic() < deadline, filters
            time.sleep(0.2)

    eventually_listed(in_service, StatusEquals="InService")
    assert [e["EndpointName"] for e in listed(4, NameContains="EP-11")] == [
        f"Ep-11{i}" for i in range(9, -1, -1)
    ]
    assert sorted(e["EndpointName"] for e in listed(13, CreationTimeAfter=boundary)) == names[60:]
    assert sorted(e["EndpointName"] for e in listed(13, CreationTimeBefore=boundary)) == names[:60]
    combined = listed(
        5, CreationTimeAfter=boundary, StatusEquals="InService", SortBy="Name", SortOrder="Ascending"
    )
    assert [e["EndpointName"] for e in combined] == [n for n in in_service if n >= "Ep-060"]
    assert _error(sagemaker.list_endpoints, NextToken="not-a-token")[0] == "ValidationException"

    timings = []
    for index in range(300):
        started = time.perf_counter()
        sagemaker.describe_endpoint(EndpointName=names[index % 120])
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p50, p99 = statistics.median(timings), timings[int(len(timings) * 0.99)]
    print(f"\nDescribeEndpoint at 120 endpoints (boto3 round trip): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert p50 < 25  # generous on a loaded machine; bench/control_plane.py measures it


def test_rbac_decides_what_a_key_may_do(
    sagemaker: Any, gateway: Process, kube_cluster: KubeCluster, namespace: str
) -> None:
    """Every call acts as the key's ServiceAccount: one that may only read is refused
    CreateEndpoint with AWS's AccessDeniedException; the same call with the full key works; a
    key naming no identity may not use the control plane at all."""
    sagemaker.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[_variant("m")])
    viewer = key_client(gateway, kube_cluster, namespace, service_account="viewer",
                         verbs=("get", "list", "watch"), name="viewer-key")  # fmt: skip
    assert viewer.describe_endpoint_config(EndpointConfigName="c")["EndpointConfigName"] == "c"
    code, message = _error(viewer.create_endpoint, EndpointName="e", EndpointConfigName="c")
    assert code == "AccessDeniedException"
    assert message.startswith(
        f"User: system:serviceaccount:{namespace}:viewer is not authorized to perform: "
        f"sagemaker:CreateEndpoint on resource: arn:aws:sagemaker:{REGION}:123456789012:endpoint/e because "
    )
    assert 'cannot create resource "endpoints"' in message
    assert get(kube_cluster, "endpoints.sageport.io", namespace, "e") is None  # nothing half-made
    with pytest.raises(viewer.exceptions.ClientError):
        viewer.delete_model(ModelName="m")
    assert sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="c")["EndpointArn"].endswith(
        ":endpoint/e"
    )
    assert viewer.describe_endpoint(EndpointName="e")["EndpointName"] == "e"

    # An identity without even read rights: Describe and List are refused too (RBAC is asked).
    stranger = key_client(gateway, kube_cluster, namespace, service_account="stranger", verbs=("create",),
                           name="stranger-key")  # fmt: skip
    code, message = _error(stranger.describe_endpoint, EndpointName="e")
    assert code == "AccessDeniedException"
    assert "does not allow get on endpoints.sageport.io" in message
    assert _error(stranger.list_models)[0] == "AccessDeniedException"

    invoke_only = key_client(gateway, kube_cluster, namespace, service_account=None, name="invoke-key")
    code, message = _error(invoke_only.list_endpoints)
    assert code == "AccessDeniedException"
    assert "names no Kubernetes identity" in message


def test_update_endpoint_weights_and_capacities_in_place(sagemaker: Any, kube_cluster: KubeCluster,
                                                         namespace: str) -> None:  # fmt: skip
    """SageMaker's semantics: Updating at once, then InService with the new weight and count on
    the same config; an unknown variant is refused naming it; no call while Updating."""
    sagemaker.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"})
    sagemaker.create_endpoint_config(
        EndpointConfigName="ab",
        ProductionVariants=[{**_variant("m"), "VariantName": "A"}, {**_variant("m"), "VariantName": "B"}],
    )
    sagemaker.create_endpoint(EndpointName="Ab", EndpointConfigName="ab")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Ab", WaiterConfig=WAIT)

    code, message = _error(sagemaker.update_endpoint_weights_and_capacities, EndpointName="Ab",
                           DesiredWeightsAndCapacities=[{"VariantName": "C", "DesiredWeight": 1.0}])  # fmt: skip
    assert code == "ValidationException"
    assert message.startswith("The variant(s) C are not present in endpoint")
    assert _error(sagemaker.update_endpoint_weights_and_capacities, EndpointName="nope",
                  DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 1.0}])[0] == "ValidationException"  # fmt: skip

    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="Ab",
        DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 3.0, "DesiredInstanceCount": 2}],
    )
    assert sagemaker.describe_endpoint(EndpointName="Ab")["EndpointStatus"] == "Updating"  # at once
    code, message = _error(sagemaker.update_endpoint_weights_and_capacities, EndpointName="Ab",
                           DesiredWeightsAndCapacities=[{"VariantName": "B", "DesiredWeight": 1.0}])  # fmt: skip
    assert (code, message.split(" endpoint")[0]) == ("ValidationException", "Cannot update in-progress")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Ab", WaiterConfig=WAIT)
    variants = {
        v["VariantName"]: v for v in sagemaker.describe_endpoint(EndpointName="Ab")["ProductionVariants"]
    }
    assert (variants["A"]["DesiredWeight"], variants["A"]["CurrentInstanceCount"]) == (3.0, 2)
    assert variants["B"]["CurrentInstanceCount"] == 1
    assert sagemaker.describe_endpoint(EndpointName="Ab")["EndpointConfigName"] == "ab"  # same config

    # A later call keeps what an earlier one set for the same variant.
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="Ab", DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 1.0}]
    )
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Ab", WaiterConfig=WAIT)
    endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, object_name("Ab"))
    assert endpoint["spec"]["desiredWeightsAndCapacities"] == [
        {"variantName": "A", "desiredWeight": 1.0, "desiredInstanceCount": 2}
    ]

    # UpdateEndpoint to a config with other variants: the old variants' properties are not
    # retained (SageMaker's default), so the new config serves as it says.
    sagemaker.create_endpoint_config(
        EndpointConfigName="z", ProductionVariants=[{**_variant("m"), "VariantName": "Z"}]
    )
    sagemaker.update_endpoint(EndpointName="Ab", EndpointConfigName="z")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Ab", WaiterConfig=WAIT)
    described = sagemaker.describe_endpoint(EndpointName="Ab")
    assert described["EndpointConfigName"] == "z"
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["Z"]
    endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, object_name("Ab"))
    assert "desiredWeightsAndCapacities" not in endpoint["spec"]


def test_tags_round_trip_on_every_kind(sagemaker: Any, kube_cluster: KubeCluster, namespace: str) -> None:
    """Tags given at Create* are kept; AddTags adds or overwrites by key, DeleteTags removes,
    ListTags reads; they live in spec.tags (ACK's field), so kubectl sees them, and a tag change
    leaves an endpoint InService. Models and EndpointConfigs stay immutable except their tags."""
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    team = [{"Key": "team", "Value": "fraud"}]
    sagemaker.create_model(ModelName="Tm", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"}, Tags=team)
    sagemaker.create_endpoint_config(EndpointConfigName="tc", ProductionVariants=[_variant("Tm")], Tags=team)
    sagemaker.create_endpoint(EndpointName="Te", EndpointConfigName="tc", Tags=team)
    for resource in (f"{arn}:model/tm", f"{arn}:endpoint-config/tc", f"{arn}:endpoint/te"):
        assert sagemaker.list_tags(ResourceArn=resource)["Tags"] == team
        added = sagemaker.add_tags(ResourceArn=resource, Tags=[{"Key": "team", "Value": "risk"},
                                                               {"Key": "cost-center", "Value": "42"}])  # fmt: skip
        expected = [{"Key": "team", "Value": "risk"}, {"Key": "cost-center", "Value": "42"}]
        assert added["Tags"] == expected
        assert sagemaker.list_tags(ResourceArn=resource)["Tags"] == expected
        sagemaker.delete_tags(ResourceArn=resource, TagKeys=["team"])
        assert sagemaker.list_tags(ResourceArn=resource)["Tags"] == [{"Key": "cost-center", "Value": "42"}]
    model = get(kube_cluster, "models.sageport.io", namespace, object_name("Tm"))
    assert model["spec"]["tags"] == [{"key": "cost-center", "value": "42"}]

    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Te", WaiterConfig=WAIT)
    sagemaker.add_tags(ResourceArn=f"{arn}:endpoint/te", Tags=[{"Key": "stage", "Value": "prod"}])
    assert sagemaker.describe_endpoint(EndpointName="Te")["EndpointStatus"] == "InService"

    # Fifty tags, paged by ListTags (MaxResults is at least 50 in SageMaker's model).
    many = [{"Key": f"k{index:02d}", "Value": str(index)} for index in range(48)]
    sagemaker.add_tags(ResourceArn=f"{arn}:model/tm", Tags=many)
    pages = list(sagemaker.get_paginator("list_tags").paginate(ResourceArn=f"{arn}:model/tm",
                                                               PaginationConfig={"PageSize": 50}))  # fmt: skip
    assert len([t for page in pages for t in page["Tags"]]) == 49
    code, message = _error(sagemaker.add_tags, ResourceArn=f"{arn}:model/tm",
                           Tags=[{"Key": "one-more", "Value": ""}, {"Key": "and-one", "Value": ""}])  # fmt: skip
    assert (code, "at most 50" in message) == ("ValidationException", True)
    assert _error(sagemaker.list_tags, ResourceArn=f"{arn}:model/ghost") == (
        "ValidationException", f'Could not find model "{arn}:model/ghost".')  # fmt: skip

    # Still immutable but for tags: kubectl cannot change what the model serves.
    changed = kube_cluster.kubectl("-n", namespace, "patch", "models.sageport.io", object_name("Tm"), "--type=merge",
                                   "-p", '{"spec": {"executionRoleARN": "arn:aws:iam::1:role/x"}}', check=False)  # fmt: skip
    assert "Model spec is immutable except tags" in changed.stderr


def _job(name: str, model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"TransformJobName": name, "ModelName": model,
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
                               "ContentType": "text/csv", "SplitType": "Line"},
            "TransformOutput": {"S3OutputPath": "s3://b/out/", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}, **extra}  # fmt: skip


def _job_status(kube_cluster: KubeCluster, namespace: str, name: str, **status: Any) -> None:
    """Write the status as the batch operator does (this test plays it)."""
    kube_cluster.kubectl("-n", namespace, "patch", "transformjobs.sageport.io", object_name(name),
                         "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))  # fmt: skip


@pytest.mark.fake_operator
def test_transform_jobs_create_describe_list_stop_and_wait(
    sagemaker: Any, kube_cluster: KubeCluster, namespace: str
) -> None:
    arn = f"arn:aws:sagemaker:{REGION}:123456789012"
    sagemaker.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"})
    created = sagemaker.create_transform_job(**_job("Nightly", MaxPayloadInMB=2, BatchStrategy="MultiRecord",
                                                    Environment={"A": "1"}, Tags=[{"Key": "k", "Value": "v"}]))  # fmt: skip
    assert created["TransformJobArn"] == f"{arn}:transform-job/nightly"
    job = get(kube_cluster, "transformjobs.sageport.io", namespace, object_name("Nightly"))
    assert job["spec"]["transformJobName"] == "Nightly"
    assert job["spec"]["transformInput"]["dataSource"]["s3DataSource"]["s3URI"] == "s3://b/in/"

    described = sagemaker.describe_transform_job(TransformJobName="Nightly")
    assert described["TransformJobStatus"] == "InProgress"  # until the operator writes one
    assert (described["ModelName"], described["MaxPayloadInMB"], described["Environment"]) == (
        "m",
        2,
        {"A": "1"},
    )
    assert described["TransformInput"] == _job("x")["TransformInput"]
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    assert sagemaker.list_tags(ResourceArn=f"{arn}:transform-job/nightly")["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]

    # SageMaker's errors: a duplicate name is ResourceInUse, a missing model or job ValidationException,
    # a member the CRD cannot hold is named, a missing job to stop ResourceNotFound.
    code, message = _error(sagemaker.create_transform_job, **_job("Nightly"))
    assert (code, message) == ("ResourceInUse", "Transform job names must be unique within an AWS account and "
                               f"region, and a transform job with this name already exists ({arn}:transform-job/nightly)")  # fmt: skip
    assert _error(sagemaker.create_transform_job, **_job("Other", model="ghost")) == (
        "ValidationException", f'Could not find model "{arn}:model/ghost".')  # fmt: skip
    code, message = _error(
        sagemaker.create_transform_job, **_job("Exp", ExperimentConfig={"ExperimentName": "e"})
    )
    assert code == "ValidationException"
    assert "ExperimentConfig" in message
    assert _error(sagemaker.describe_transform_job, TransformJobName="Ghost") == (
        "ValidationException", "Could not find requested job with name Ghost")  # fmt: skip
    assert _error(sagemaker.stop_transform_job, TransformJobName="Ghost")[0] == "ResourceNotFound"

    # Stop: the annotation the operator acts on, Stopping at once, Stopped when it says so.
    sagemaker.stop_transform_job(TransformJobName="Nightly")
    job = get(kube_cluster, "transformjobs.sageport.io", namespace, object_name("Nightly"))
    assert "sageport.io/stop-requested" in job["metadata"]["annotations"]
    assert sagemaker.describe_transform_job(TransformJobName="Nightly")["TransformJobStatus"] == "Stopping"
    sagemaker.stop_transform_job(TransformJobName="Nightly")  # again: no-op while stopping
    _job_status(kube_cluster, namespace, "Nightly", transformJobStatus="Stopped",
                transformStartTime="2026-12-07T10:00:00Z", transformEndTime="2026-12-07T10:01:00Z")  # fmt: skip
    waiter = sagemaker.get_waiter("transform_job_completed_or_stopped")
    waiter.wait(TransformJobName="Nightly", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    described = sagemaker.describe_transform_job(TransformJobName="Nightly")
    assert described["TransformJobStatus"] == "Stopped"
    assert (described["TransformEndTime"] - described["TransformStartTime"]).total_seconds() == 60
    assert _error(sagemaker.stop_transform_job, TransformJobName="Nightly") == (
        "ValidationException", "The request was rejected because the transform job is in status Stopped.")  # fmt: skip

    # Completed and Failed, as the waiter reads them; List filters by status and sorts by name.
    sagemaker.create_transform_job(**_job("Done"))
    sagemaker.create_transform_job(**_job("Broken"))
    later = datetime.now(UTC) + timedelta(minutes=5)  # after the creation time, as a real job ends
    _job_status(kube_cluster, namespace, "Done", transformJobStatus="Completed",
                transformStartTime=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                transformEndTime=later.strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
    _job_status(kube_cluster, namespace, "Broken", transformJobStatus="Failed",
                failureReason="ClientError: s3://b/in/x.csv: the model answered 400")  # fmt: skip
    waiter.wait(TransformJobName="Done", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    with pytest.raises(WaiterError) as failed:
        waiter.wait(TransformJobName="Broken", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert (
        failed.value.last_response["FailureReason"] == "ClientError: s3://b/in/x.csv: the model answered 400"
    )
    listed = sagemaker.list_transform_jobs(SortBy="Name", SortOrder="Ascending")["TransformJobSummaries"]
    assert [(j["TransformJobName"], j["TransformJobStatus"]) for j in listed] == [
        ("Broken", "Failed"), ("Done", "Completed"), ("Nightly", "Stopped")]  # fmt: skip
    completed = sagemaker.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert [j["TransformJobName"] for j in completed] == ["Done"]
    assert completed[0]["LastModifiedTime"] == completed[0]["TransformEndTime"]


def test_update_endpoint_refuses_to_make_a_real_time_variant_serverless(
    sagemaker: Any, namespace: str
) -> None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    sagemaker.create_model(
        ModelName="Conv", PrimaryContainer={"ModelDataUrl": "s3://sageport-models/c.tar.gz"}
    )
    sagemaker.create_endpoint_config(EndpointConfigName="conv-rt", ProductionVariants=[_variant("Conv")])
    serverless = {
        "VariantName": "AllTraffic",
        "ModelName": "Conv",
        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
    }
    sagemaker.create_endpoint_config(EndpointConfigName="conv-sl", ProductionVariants=[serverless])
    sagemaker.create_endpoint(EndpointName="Conv", EndpointConfigName="conv-rt")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="Conv", WaiterConfig=WAIT)
    with pytest.raises(ClientError) as refused:
        sagemaker.update_endpoint(EndpointName="Conv", EndpointConfigName="conv-sl")
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "real-time variant(s) AllTraffic" in error["Message"]
    assert sagemaker.describe_endpoint(EndpointName="Conv")["EndpointConfigName"] == "conv-rt"
    sagemaker.delete_endpoint(EndpointName="Conv")
