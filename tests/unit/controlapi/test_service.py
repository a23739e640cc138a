"""The operations against an in-memory writer (what the API server would do) and the cache."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from typing import Any

import pytest

from sageport.controlapi import shapes
from sageport.controlapi.names import ENDPOINT, Account, Kind, object_name
from sageport.controlapi.service import Caller, ControlApi, KubeRefusalError, Store, region_of
from sageport.net.awserrors import ApiError

CALLER = Caller("team", Account("us-east-1", "123456789012"))
_versions = itertools.count(1)


class FakeWriter:
    def __init__(self, store: Store, forbid: set[str] | None = None) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.forbid = forbid or set()
        self.store = store
        self.users: list[str | None] = []

    async def create(
        self, kind: Kind, namespace: str, body: Mapping[str, Any], *, user: str | None
    ) -> Mapping[str, Any]:
        self.users.append(user)
        if kind.kind in self.forbid:
            raise KubeRefusalError(403, "forbidden")
        key = (kind.plural, body["metadata"]["name"])
        if key in self.objects:
            raise KubeRefusalError(409, "already exists")
        obj = copy.deepcopy(dict(body))
        obj["metadata"].update(resourceVersion=str(next(_versions)), creationTimestamp="2026-01-01T00:00:00Z")
        self.objects[key] = obj
        return obj

    async def delete(self, kind: Kind, namespace: str, name: str, *, user: str | None) -> Mapping[str, Any]:
        if (kind.plural, name) not in self.objects:
            raise KubeRefusalError(404, "not found")
        return self.objects.pop((kind.plural, name))

    async def patch(
        self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any], *, user: str | None
    ) -> Mapping[str, Any]:
        obj = self.objects[(kind.plural, name)]
        expected = patch.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != obj["metadata"]["resourceVersion"]:
            raise KubeRefusalError(409, "the object has been modified")
        for key, value in patch["spec"].items():
            if value is None:
                obj["spec"].pop(key, None)
            else:
                obj["spec"][key] = value
        obj["metadata"]["resourceVersion"] = str(next(_versions))
        return copy.deepcopy(obj)

    async def get(self, kind: Kind, namespace: str, name: str, *, user: str | None) -> Mapping[str, Any]:
        return copy.deepcopy(self.objects[(kind.plural, name)])


@pytest.fixture(scope="module")
def table() -> shapes.ShapeTable:
    return shapes.load()


@pytest.fixture
def api(table: shapes.ShapeTable) -> ControlApi:
    store = Store()
    return ControlApi(table, store, FakeWriter(store))


async def call(api: ControlApi, operation: str, **request: Any) -> dict[str, Any]:
    return await api.call(f"SageMaker.{operation}", json.dumps(request).encode(), CALLER)


async def _make_endpoint(api: ControlApi, name: str = "Ep") -> None:
    await call(api, "CreateModel", ModelName="M", PrimaryContainer={"Image": "img"})
    await call(api, "CreateEndpointConfig", EndpointConfigName="C",
               ProductionVariants=[{"VariantName": "v", "ModelName": "M", "InstanceType": "local", "InitialInstanceCount": 1}])  # fmt: skip
    await call(api, "CreateEndpoint", EndpointName=name, EndpointConfigName="C")


async def test_create_then_describe_at_once_from_the_cache(api: ControlApi) -> None:
    await _make_endpoint(api)
    described = await call(api, "DescribeEndpoint", EndpointName="Ep")
    assert described["EndpointStatus"] == "Creating"
    assert described["EndpointArn"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"
    model = await call(api, "DescribeModel", ModelName="M")
    assert model["PrimaryContainer"] == {"Image": "img"}


async def test_duplicates_and_missing_names_answer_as_sagemaker(api: ControlApi) -> None:
    await _make_endpoint(api)
    with pytest.raises(
        ApiError,
        match='Cannot create already existing endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"',
    ):
        await call(api, "CreateEndpoint", EndpointName="Ep", EndpointConfigName="C")
    with pytest.raises(
        ApiError, match='Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/nope"'
    ):
        await call(api, "DescribeEndpoint", EndpointName="nope")
    with pytest.raises(ApiError, match=r'Could not find endpoint configuration ".*:endpoint-config/nope"'):
        await call(api, "CreateEndpoint", EndpointName="Other", EndpointConfigName="nope")
    with pytest.raises(ApiError, match=r'Could not find model ".*:model/ghost"'):
        await call(api, "CreateEndpointConfig", EndpointConfigName="C2",
                   ProductionVariants=[{"VariantName": "v", "ModelName": "ghost"}])  # fmt: skip
    with pytest.raises(ApiError, match="Cannot create already existing model"):
        await call(api, "CreateModel", ModelName="M")


async def test_update_waits_for_in_service_and_needs_the_config(api: ControlApi) -> None:
    await _make_endpoint(api)
    with pytest.raises(ApiError, match="Cannot update in-progress endpoint"):
        await call(api, "UpdateEndpoint", EndpointName="Ep", EndpointConfigName="C")
    endpoint = api.store.find(ENDPOINT, "team", "Ep")
    assert endpoint is not None
    api.store.event(ENDPOINT, "MODIFIED", {**endpoint, "status": {"endpointStatus": "InService"},
                                          "metadata": {**endpoint["metadata"], "resourceVersion": "99999"}})  # fmt: skip
    with pytest.raises(ApiError, match="Could not find endpoint configuration"):
        await call(api, "UpdateEndpoint", EndpointName="Ep", EndpointConfigName="C2")
    with pytest.raises(ApiError, match="RetainAllVariantProperties"):
        await call(
            api, "UpdateEndpoint", EndpointName="Ep", EndpointConfigName="C", RetainAllVariantProperties=True
        )
    response = await call(api, "UpdateEndpoint", EndpointName="Ep", EndpointConfigName="C")
    assert response["EndpointArn"].endswith(":endpoint/ep")


async def test_delete_then_gone_even_if_a_late_watch_event_comes(api: ControlApi) -> None:
    await _make_endpoint(api)
    before = api.store.find(ENDPOINT, "team", "Ep")
    assert before is not None
    assert await call(api, "DeleteEndpoint", EndpointName="Ep") == {}
    api.store.event(ENDPOINT, "MODIFIED", before)  # the watch lags behind our delete
    with pytest.raises(ApiError, match="Could not find endpoint"):
        await call(api, "DescribeEndpoint", EndpointName="Ep")
    with pytest.raises(ApiError, match="Could not find endpoint"):
        await call(api, "DeleteEndpoint", EndpointName="Ep")


async def test_list_pages_through_everything(api: ControlApi) -> None:
    await _make_endpoint(api, "Ep0")
    for index in range(1, 12):
        await call(api, "CreateEndpoint", EndpointName=f"Ep{index}", EndpointConfigName="C")
    names: list[str] = []
    token: str | None = None
    while True:
        extra = {"NextToken": token} if token else {}
        response = await call(api, "ListEndpoints", MaxResults=5, SortBy="Name", **extra)
        names += [entry["EndpointName"] for entry in response["Endpoints"]]
        token = response.get("NextToken")
        if token is None:
            break
    assert sorted(names) == sorted(f"Ep{i}" for i in range(12))
    assert set(response["Endpoints"][0]) == {
        "EndpointName",
        "EndpointArn",
        "CreationTime",
        "LastModifiedTime",
        "EndpointStatus",
    }


async def test_rbac_refusal_is_access_denied(table: shapes.ShapeTable) -> None:
    store = Store()
    writer = FakeWriter(store, forbid={"Model"})
    api = ControlApi(table, store, writer)
    caller = Caller("team", CALLER.account, "system:serviceaccount:team:reader")
    with pytest.raises(ApiError) as raised:
        await api.call("SageMaker.CreateModel", json.dumps({"ModelName": "M"}).encode(), caller)
    assert raised.value.code == "AccessDeniedException"
    assert raised.value.message.startswith(
        "User: system:serviceaccount:team:reader is not authorized to perform: sagemaker:CreateModel "
        "on resource: arn:aws:sagemaker:us-east-1:123456789012:model/m because Kubernetes RBAC refused it"
    )
    assert writer.users == ["system:serviceaccount:team:reader"]  # the write was made as the caller


class Rbac:
    """An authorizer allowing what ``grants`` lists: (user, verb, plural)."""

    def __init__(self, *grants: tuple[str, str, str]) -> None:
        self.grants = set(grants)
        self.asked: list[tuple[str, str, str, str]] = []

    async def allowed(self, user: str, verb: str, kind: Kind, namespace: str) -> bool:
        self.asked.append((user, verb, kind.plural, namespace))
        return (user, verb, kind.plural) in self.grants


async def test_reads_from_the_cache_are_checked_against_rbac(table: shapes.ShapeTable) -> None:
    store = Store()
    user = "system:serviceaccount:team:viewer"
    rbac = Rbac((user, "get", "endpoints"))
    api = ControlApi(table, store, FakeWriter(store), authorizer=rbac)
    await _make_endpoint(api)  # as the gateway itself (no user): not checked
    caller = Caller("team", CALLER.account, user)
    described = await api.call("SageMaker.DescribeEndpoint", b'{"EndpointName": "Ep"}', caller)
    assert described["EndpointName"] == "Ep"
    with pytest.raises(ApiError) as raised:
        await api.call("SageMaker.ListEndpoints", b"{}", caller)
    assert raised.value.code == "AccessDeniedException"
    assert "does not allow list on endpoints.sageport.io in namespace team" in raised.value.message
    assert rbac.asked == [(user, "get", "endpoints", "team"), (user, "list", "endpoints", "team")]


async def test_unknown_operations_and_bodies(api: ControlApi) -> None:
    with pytest.raises(ApiError) as raised:
        await api.call("SageMaker.CreateTrainingJob", b"{}", CALLER)
    assert raised.value.code == "UnknownOperationException"
    with pytest.raises(ApiError) as raised:
        await api.call("SageMaker.DescribeEndpoint", b"[", CALLER)
    assert raised.value.code == "SerializationException"


def test_the_region_comes_from_the_signature() -> None:
    header = "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-central-1/sagemaker/aws4_request, SignedHeaders=host, Signature=x"
    assert region_of(header, "us-east-1") == "eu-central-1"
    assert region_of(None, "us-east-1") == "us-east-1"


async def test_tags_round_trip_and_a_stale_cache_loses_no_tag(api: ControlApi) -> None:
    await call(api, "CreateModel", ModelName="Tagged", PrimaryContainer={"Image": "img"},
               Tags=[{"Key": "team", "Value": "a"}])  # fmt: skip
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model/tagged"
    assert (await call(api, "ListTags", ResourceArn=arn))["Tags"] == [{"Key": "team", "Value": "a"}]
    # Someone else changes the object after our cache saw it: the guarded patch conflicts, the
    # object is read again and the change applied on top.
    writer = api.writer
    assert isinstance(writer, FakeWriter)
    stored = writer.objects[("models", object_name("Tagged"))]
    stored["spec"]["tags"] = [*stored["spec"]["tags"], {"key": "owner", "value": "kubectl"}]
    stored["metadata"]["resourceVersion"] = str(next(_versions))
    added = await call(
        api, "AddTags", ResourceArn=arn, Tags=[{"Key": "team", "Value": "b"}, {"Key": "x", "Value": ""}]
    )
    assert added["Tags"] == [
        {"Key": "owner", "Value": "kubectl"},
        {"Key": "team", "Value": "b"},
        {"Key": "x", "Value": ""},
    ]
    await call(api, "DeleteTags", ResourceArn=arn, TagKeys=["owner", "absent"])
    assert (await call(api, "ListTags", ResourceArn=arn))["Tags"] == [
        {"Key": "team", "Value": "b"},
        {"Key": "x", "Value": ""},
    ]
    with pytest.raises(ApiError, match=r'Could not find model ".*:model/ghost"'):
        await call(
            api, "AddTags", ResourceArn=arn.replace("tagged", "ghost"), Tags=[{"Key": "k", "Value": "v"}]
        )
    with pytest.raises(ApiError, match="only these resource types"):
        await call(
            api, "ListTags", ResourceArn="arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/n"
        )
    with pytest.raises(ApiError, match="at most 50"):
        await call(api, "AddTags", ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": ""} for i in range(49)])
