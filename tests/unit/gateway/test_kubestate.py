from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sageport import contract
from sageport.contract import RoutingStrategy
from sageport.gateway import kubestate
from sageport.gateway.kubestate import (
    EndpointObject,
    build_routes,
    merge_keys,
    parse_access_key_secret,
    parse_endpoint,
    parse_endpoint_slice,
)
from sageport.gateway.routing import Serverless


def endpoint(
    namespace: str, name: str, created: str = "2026-01-01T00:00:00Z", **status: object
) -> dict[str, object]:
    return {
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": created},
        "spec": {"endpointConfigName": "cfg"},
        "status": status,
    }


def endpoint_slice(
    namespace: str,
    endpoint_name: str,
    variant: str,
    *members: tuple[str, bool | None],
    config: str | None = None,
) -> dict[str, object]:
    labels = {contract.LABEL_ENDPOINT_OBJECT: endpoint_name, contract.LABEL_VARIANT: variant}
    if config is not None:
        labels[contract.LABEL_CONFIG] = contract.config_label(config)
    return {
        "metadata": {"namespace": namespace, "name": f"{endpoint_name}-{variant}-x", "labels": labels},
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": [address], "conditions": {} if ready is None else {"ready": ready}}
            for address, ready in members
        ],
    }


def test_endpoint_status_to_variants() -> None:
    parsed = parse_endpoint(
        endpoint(
            "team-a",
            "ep",
            endpointStatus="InService",
            productionVariants=[
                {"variantName": "A", "currentWeight": 0.25, "desiredWeight": 1},
                {"variantName": "B", "desiredWeight": 0.75, "routingConfig": {"routingStrategy": "RANDOM"}},
                {"variantName": "C"},
                {"bad": "entry"},
            ],
        )
    )
    assert parsed.status == "InService"
    assert [(row.name, row.weight) for row in parsed.variants] == [
        ("A", 0.25),
        ("B", 0.75),
        ("C", 1.0),
    ]
    assert parsed.variants[1].strategy is RoutingStrategy.RANDOM
    assert [row.multi_model for row in parsed.variants] == [False, False, False]
    multi = parse_endpoint(endpoint("n", "e", productionVariants=[{"variantName": "A", "multiModel": True}]))
    assert multi.variants[0].multi_model is True
    assert parse_endpoint({"metadata": {"name": "x"}}).status == "Creating"


def test_serverless_limits_come_from_the_variant_status() -> None:
    parsed = parse_endpoint(
        endpoint(
            "n",
            "e",
            endpointStatus="InService",
            productionVariants=[
                {
                    "variantName": "S",
                    "desiredServerlessConfig": {"memorySizeInMB": 1024, "maxConcurrency": 7},
                    "modelSetupTimeoutInSeconds": 90,
                },
                {
                    "variantName": "Old",
                    "desiredServerlessConfig": {
                        "memorySizeInMB": 1024,
                        "maxConcurrency": 3,
                        "provisionedConcurrency": 2,
                    },
                },
                {"variantName": "R", "currentInstanceCount": 1},
                {"variantName": "Bad", "desiredServerlessConfig": {"maxConcurrency": "many"}},
            ],
        )
    )
    assert [row.serverless for row in parsed.variants] == [
        Serverless(7, 90.0),
        Serverless(3, 240.0, 2),  # no setup timeout in the status: SageMaker's default
        None,
        None,
    ]
    specs, _ = build_routes([parsed], [])
    assert specs[0].variants[0].serverless == Serverless(7, 90.0)


def test_spec_endpoint_name_is_the_invoke_name() -> None:
    obj = endpoint("ns", "k8s-name", endpointStatus="InService", productionVariants=[{"variantName": "A"}])
    obj["spec"] = {"endpointConfigName": "cfg", "endpointName": "SageMakerName"}
    parsed = parse_endpoint(obj)
    assert (parsed.name, parsed.object_name) == ("SageMakerName", "k8s-name")
    (spec,), _ = build_routes(
        [parsed], [parse_endpoint_slice(endpoint_slice("ns", "k8s-name", "A", ("10.0.0.1", True)))]
    )  # type: ignore[list-item]
    assert spec.name == "SageMakerName"
    assert spec.variants[0].backends == ("http://10.0.0.1:8080",)


def test_slices_keep_ready_addresses_on_the_http_port() -> None:
    parsed = parse_endpoint_slice(
        endpoint_slice("ns", "ep", "A", ("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None))
    )
    assert parsed is not None
    assert parsed.backends == ("http://10.0.0.1:8080", "http://10.0.0.3:8080")
    ipv6 = endpoint_slice("ns", "ep", "A", ("fd00::1", True))
    ipv6["addressType"] = "IPv6"
    assert parse_endpoint_slice(ipv6).backends == ("http://[fd00::1]:8080",)  # type: ignore[union-attr]
    assert parse_endpoint_slice({"metadata": {"labels": {}}}) is None


def test_routes_join_endpoints_and_slices_per_namespace() -> None:
    endpoints = [
        parse_endpoint(
            endpoint("a", "ep", endpointStatus="InService", productionVariants=[{"variantName": "V"}])
        )
    ]
    slices = [
        parse_endpoint_slice(endpoint_slice("a", "ep", "V", ("10.0.0.1", True))),
        parse_endpoint_slice(endpoint_slice("a", "ep", "V", ("10.0.0.2", True))),
        parse_endpoint_slice(endpoint_slice("b", "ep", "V", ("10.9.9.9", True))),  # other namespace
        parse_endpoint_slice(endpoint_slice("a", "ep", "Other", ("10.0.0.3", True))),  # unknown variant
    ]
    (spec,), clashes = build_routes(endpoints, [s for s in slices if s is not None])
    assert clashes == []
    assert spec.namespace == "a"
    assert spec.variants[0].backends == ("http://10.0.0.1:8080", "http://10.0.0.2:8080")


def test_oldest_endpoint_keeps_a_clashing_name() -> None:
    older = parse_endpoint(endpoint("old", "ep", "2025-01-01T00:00:00Z", endpointStatus="InService"))
    newer = parse_endpoint(endpoint("new", "ep", "2026-01-01T00:00:00Z", endpointStatus="InService"))
    specs, clashes = build_routes([newer, older], [])
    assert [spec.namespace for spec in specs] == ["old"]
    assert clashes == ["ep"]


def secret(namespace: str, **data: str) -> dict[str, object]:
    return {
        "metadata": {"namespace": namespace, "name": "k", "labels": {"sageport.io/access-key": "true"}},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def test_access_keys_are_scoped_to_their_namespace() -> None:
    key = parse_access_key_secret(
        secret("team-a", accessKeyId="AK", secretAccessKey="s", namespaces="*", endpoints="one, two"),
        "sageport-system",
    )
    assert key is not None
    assert key.namespaces == frozenset({"team-a"})  # tenants cannot widen their scope
    assert key.endpoints == frozenset({"one", "two"})
    assert key.allows("one", "team-a")
    assert not key.allows("one", "team-b")
    assert not key.allows("three", "team-a")


def test_system_namespace_keys_may_span_namespaces() -> None:
    everywhere = parse_access_key_secret(
        secret("sageport-system", accessKeyId="AK", secretAccessKey="s", namespaces="*"), "sageport-system"
    )
    assert everywhere is not None
    assert everywhere.namespaces is None
    assert everywhere.allows("any", "team-z")
    two = parse_access_key_secret(
        secret("sageport-system", accessKeyId="AK", secretAccessKey="s", namespaces="a,b"), "sageport-system"
    )
    assert two is not None
    assert two.namespaces == frozenset({"a", "b"})


def test_a_key_names_the_service_account_its_control_plane_calls_act_as() -> None:
    key = parse_access_key_secret(
        secret("team-a", accessKeyId="AK", secretAccessKey="s", serviceAccount=" sagemaker-api "), "sys"
    )
    assert key is not None
    assert key.kubernetes_user == "system:serviceaccount:team-a:sagemaker-api"
    # A system-namespace key reaching exactly one namespace acts there, as an account of it.
    system = parse_access_key_secret(
        secret("sys", accessKeyId="AK", secretAccessKey="s", namespaces="team-b", serviceAccount="ops"), "sys"
    )
    assert system is not None
    assert system.kubernetes_user == "system:serviceaccount:team-b:ops"
    for missing in ({}, {"serviceAccount": "Not/A:Name"}):
        plain = parse_access_key_secret(
            secret("team-a", accessKeyId="AK", secretAccessKey="s", **missing), "sys"
        )
        assert plain is not None
        assert plain.kubernetes_user is None  # invoke only


def test_incomplete_secrets_and_duplicate_ids_are_refused() -> None:
    assert parse_access_key_secret(secret("a", accessKeyId="AK"), "sys") is None
    assert (
        parse_access_key_secret({"metadata": {"namespace": "a"}, "data": {"accessKeyId": "!!"}}, "sys")
        is None
    )
    one = parse_access_key_secret(secret("a", accessKeyId="AK", secretAccessKey="s1"), "sys")
    two = parse_access_key_secret(secret("b", accessKeyId="AK", secretAccessKey="s2"), "sys")
    other = parse_access_key_secret(secret("b", accessKeyId="BK", secretAccessKey="s3"), "sys")
    assert one is not None
    assert two is not None
    assert other is not None
    keys, duplicated = merge_keys([(("a", "k"), one), (("b", "k"), two), (("b", "k2"), other)])
    assert [key.access_key_id for key in keys] == ["BK"]
    assert duplicated == ["AK"]


def test_endpoint_resource_versions_order_events() -> None:
    def endpoint(resource_version: str | None) -> EndpointObject:
        metadata = {"name": "e", "namespace": "ns"}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return parse_endpoint({"metadata": metadata, "status": {"endpointStatus": "InService"}})

    assert endpoint("41").is_older_than(endpoint("42"))
    assert not endpoint("42").is_older_than(endpoint("41"))
    assert not endpoint(None).is_older_than(endpoint("42")), "unknown versions never count as older"
    assert endpoint("not-a-number").resource_version == 0


_FIELDS = st.sampled_from(
    ["metadata", "name", "namespace", "labels", "status", "spec", "endpointStatus", "productionVariants",
     "variantName", "currentWeight", "routingConfig", "routingStrategy", "containerHostnames", "endpointName",
     "resourceVersion", "ports", "port", "endpoints", "addresses", "conditions", "ready", "addressType",
     "data", "accessKeyId", "secretAccessKey", "namespaces", contract.LABEL_ENDPOINT_OBJECT, contract.LABEL_VARIANT]
)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_FIELDS, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(obj=st.dictionaries(_FIELDS, _JSON, max_size=5))
def test_malformed_objects_are_skipped_not_raised(obj: dict[str, Any]) -> None:
    """Whatever JSON a watch delivers, parsing never raises: one bad object must not stop the
    watch (it would relist forever and routes would stop following the cluster)."""
    kubestate.parse_endpoint(obj)
    kubestate.parse_endpoint_slice(obj)
    kubestate.parse_access_key_secret(obj, "sageport-system")


def test_routes_follow_the_object_identity_not_the_invoke_name() -> None:
    """A (object x, invoked as y) and C (object z, invoked as x): each name reaches only its own
    object's pods, though C's Service carries the invoke-name label ``x`` that is A's object name."""
    a = endpoint("ns", "x", endpointStatus="InService", productionVariants=[{"variantName": "AllTraffic"}])
    a["spec"] = {"endpointConfigName": "cfg-a", "endpointName": "y"}
    c = endpoint("ns", "z", endpointStatus="InService", productionVariants=[{"variantName": "AllTraffic"}])
    c["spec"] = {"endpointConfigName": "cfg-c", "endpointName": "x"}

    def slice_of(object_name: str, invoke_name: str, address: str) -> dict[str, Any]:
        obj: dict[str, Any] = endpoint_slice("ns", object_name, "AllTraffic", (address, True))
        obj["metadata"]["labels"] = {
            "sageport.io/endpoint-object": object_name,
            "sageport.io/endpoint": invoke_name,
            "sageport.io/variant": "AllTraffic",
        }
        return obj

    slices = [
        parse_endpoint_slice(slice_of("x", "y", "10.0.0.1")),
        parse_endpoint_slice(slice_of("z", "x", "10.0.0.2")),
    ]
    specs, clashes = build_routes([parse_endpoint(a), parse_endpoint(c)], [s for s in slices if s])
    backends = {spec.name: spec.variants[0].backends for spec in specs}
    assert clashes == []
    assert backends == {"y": ("http://10.0.0.1:8080",), "x": ("http://10.0.0.2:8080",)}


def test_an_update_shares_the_traffic_by_the_shift_weights_between_two_fleets() -> None:
    """During a blue/green shift both fleets of variant A serve: the serving config's by its
    productionVariants, the new config's by pendingDeploymentSummary, each by currentWeight."""
    obj = endpoint(
        "ns",
        "ep",
        endpointStatus="Updating",
        endpointConfigName="v1",
        productionVariants=[{"variantName": "A", "currentWeight": 0.75, "desiredWeight": 1}],
        pendingDeploymentSummary={
            "endpointConfigName": "v2",
            "productionVariants": [{"variantName": "A", "currentWeight": 0.25, "desiredWeight": 1}],
        },
    )
    slices = [
        parse_endpoint_slice(endpoint_slice("ns", "ep", "A", ("10.0.0.1", True), config="v1")),
        parse_endpoint_slice(endpoint_slice("ns", "ep", "A", ("10.0.0.2", True), config="v2")),
    ]
    (spec,), _ = build_routes([parse_endpoint(obj)], [s for s in slices if s is not None])
    assert [(v.name, v.weight, v.backends, v.config) for v in spec.variants] == [
        ("A", 0.75, ("http://10.0.0.1:8080",), "v1"),
        ("A", 0.25, ("http://10.0.0.2:8080",), "v2"),
    ]  # the config labels the fleet's metrics (endpoint_config), for an alarm on the new fleet alone


def test_an_update_without_traffic_yet_is_not_routed() -> None:
    pending: dict[str, object] = {
        "endpointConfigName": "v2",
        "productionVariants": [
            {"variantName": "A", "desiredWeight": 1},
            {"variantName": "B", "currentWeight": 0},
        ],
    }
    obj = endpoint(
        "ns", "ep", endpointStatus="Updating", endpointConfigName="v1",
        productionVariants=[{"variantName": "A", "currentWeight": 1}], pendingDeploymentSummary=pending,
    )  # fmt: skip
    assert [(row.config, row.name) for row in parse_endpoint(obj).variants] == [("v1", "A")]


def test_shadow_variants_get_the_fraction_of_requests_their_weight_says() -> None:
    obj = endpoint(
        "ns", "ep", endpointStatus="InService", endpointConfigName="v1",
        productionVariants=[{"variantName": "Prod", "currentWeight": 1, "desiredWeight": 2}],
        shadowProductionVariants=[{"variantName": "Shadow", "currentWeight": 1, "desiredWeight": 1}],
    )  # fmt: skip
    parsed = parse_endpoint(obj)
    assert [(row.config, row.name, row.weight) for row in parsed.shadows] == [("v1", "Shadow", 0.5)]
    slices = [parse_endpoint_slice(endpoint_slice("ns", "ep", "Shadow", ("10.0.0.9", True), config="v1"))]
    (spec,), _ = build_routes([parsed], [s for s in slices if s is not None])
    assert [(v.name, v.weight, v.backends) for v in spec.shadows] == [
        ("Shadow", 0.5, ("http://10.0.0.9:8080",))
    ]
    assert [v.name for v in spec.variants] == ["Prod"]


def test_an_async_endpoints_paths_come_from_its_status() -> None:
    output = {"s3OutputPath": "s3://b/out", "s3FailurePath": "s3://b/fail/"}
    obj = endpoint(
        "ns", "ep", endpointStatus="InService", productionVariants=[{"variantName": "A"}],
        asyncInferenceConfig={"outputConfig": output},
    )  # fmt: skip
    parsed = parse_endpoint(obj)
    assert parsed.async_paths == ("s3://b/out", "s3://b/fail/")
    (spec,), _ = build_routes([parsed], [])
    assert spec.async_paths == ("s3://b/out", "s3://b/fail/")
    del output["s3FailurePath"]
    assert parse_endpoint(obj).async_paths == ("s3://b/out", None)
    assert parse_endpoint(endpoint("ns", "ep", endpointStatus="InService")).async_paths is None
