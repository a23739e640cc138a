"""A Direct multi-container instance as the pod runs it: the real sageport-router process in front
of two model containers (the test backend), behind the real gateway in standalone mode, called
with boto3's TargetContainerHostname."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml

from tests.integration.gateway.support import (
    Process,
    runtime_client,
    start_backend,
    start_gateway,
    start_router,
)


@pytest.fixture(scope="module")
def router(backends: dict[str, Process]) -> Iterator[Process]:
    process = start_router(
        {"first": backends["b1"].url, "second": backends["b2"].url},
        "--endpoint=direct",
        "--variant=AllTraffic",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def direct_gateway(tmp_path_factory: pytest.TempPathFactory, router: Process) -> Iterator[Process]:
    directory = tmp_path_factory.mktemp("direct")
    routes: dict[str, Any] = {
        "endpoints": {
            "direct": {
                "variants": [
                    {
                        "name": "AllTraffic",
                        "backends": [router.url],
                        "containerHostnames": ["first", "second"],
                    }
                ]
            }
        }
    }
    (directory / "routes.yaml").write_text(yaml.safe_dump(routes))
    process = start_gateway(
        ["--routes", str(directory / "routes.yaml"), "--no-auth"], log_path=directory / "log"
    )
    yield process
    process.stop()


@pytest.fixture
def client(direct_gateway: Process) -> Any:
    return runtime_client(direct_gateway.url)


def _error(client: Any, **kwargs: Any) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke_endpoint(EndpointName="direct", Body=b"x", **kwargs)
    return raised.value


def test_each_hostname_reaches_its_own_container(client: Any) -> None:
    for hostname, backend in (("first", "b1"), ("second", "b2")) * 3:
        response = client.invoke_endpoint(
            EndpointName="direct",
            Body=b"\x00\x01payload\xff",
            ContentType="application/x-npy",
            TargetContainerHostname=hostname,
        )
        assert response["Body"].read() == b"\x00\x01payload\xff"  # raw bytes, both ways
        assert response["CustomAttributes"] == f"backend={backend}"
        assert response["ContentType"] == "application/x-npy"


def test_the_container_sees_the_contract_headers(client: Any) -> None:
    response = client.invoke_endpoint(
        EndpointName="direct",
        Body=b"1,2",
        ContentType="text/csv",
        Accept="application/json",
        CustomAttributes="mode=headers",
        TargetContainerHostname="second",
    )
    document = json.loads(response["Body"].read())
    received = {k.lower(): v for k, v in document["headers"].items()}
    assert document["backend"] == "b2"
    assert received["x-amzn-sagemaker-target-container-hostname"] == "second"
    assert (received["content-type"], received["accept"]) == ("text/csv", "application/json")
    assert received["x-amzn-requestid"] == response["ResponseMetadata"]["RequestId"]


def test_missing_and_unknown_hostnames_are_validation_errors_listing_the_valid_ones(client: Any) -> None:
    missing = _error(client)
    assert missing.response["Error"]["Code"] == "ValidationError"
    assert "TargetContainerHostname is required" in missing.response["Error"]["Message"]
    unknown = _error(client, TargetContainerHostname="third")
    assert unknown.response["Error"]["Code"] == "ValidationError"
    assert "valid hostnames: first, second" in unknown.response["Error"]["Message"]


def test_a_failing_container_is_a_model_error(client: Any) -> None:
    error = _error(client, TargetContainerHostname="first", CustomAttributes="mode=status:500")
    assert error.response["Error"]["Code"] == "ModelError"
    assert error.response["OriginalStatusCode"] == 500
    assert "b1 failed with 500" in error.response["OriginalMessage"]
    assert "(500) from first with" in error.response["Error"]["Message"]  # names the container


def test_a_streaming_container_streams_through_the_router(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="direct", Body=b"x", CustomAttributes="mode=stream:3", TargetContainerHostname="second"
    )
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event]
    assert b"".join(parts) == b"b2-chunk-0;b2-chunk-1;b2-chunk-2;"


def test_router_metrics_are_per_container(client: Any, router: Process) -> None:
    for _ in range(3):
        client.invoke_endpoint(EndpointName="direct", Body=b"x", TargetContainerHostname="first")
    with urllib.request.urlopen(router.url + "/metrics", timeout=5) as page:
        text = page.read().decode()
    labels = 'container="first",endpoint="direct",variant="AllTraffic"'
    counted = [
        line
        for line in text.splitlines()
        if line.startswith(f"sageport_container_invocations_total{{{labels}}}")
    ]
    assert counted, text
    assert float(counted[0].split()[-1]) >= 3
    assert f"sageport_container_latency_seconds_count{{{labels}}}" in text


def test_the_router_is_ready_only_when_every_container_is(
    backends: dict[str, Process], tmp_path: Path
) -> None:
    loading = start_backend("still-loading", "--loading")
    router = start_router({"ok": backends["b1"].url, "slow": loading.url}, ready=False)
    try:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(router.url + "/ping", timeout=5)
        assert answer.value.code == 503
        assert answer.value.read() == b"not ready: slow\n"
    finally:
        router.stop()
        loading.stop()
