"""A Direct multi-container endpoint on the real node: examples/multi-container-direct (an sklearn
container and an inference.py container in one pod behind the router), each reached by
TargetContainerHostname with boto3 through the gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import stack
from tests.e2e.conftest import Deployed, probe_model_tarball

pytestmark = pytest.mark.timeout(600)

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


def _refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def test_a_direct_endpoint_reaches_each_container_by_hostname(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    # The example's inference.py container: the probe model (its code/inference.py echoes the id).
    deployed.s3.put("sageport-models", "echo/model.tar.gz", probe_model_tarball())
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "multi-container-direct")
    )
    deployed.wait_ready(ns, "iris-direct", 300)
    endpoint = deployed.get("endpoints.sageport.io", "iris-direct", ns)
    assert endpoint is not None
    assert endpoint["status"]["productionVariants"][0]["containerHostnames"] == ["sklearn", "custom"]

    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    sklearn = runtime.invoke_endpoint(
        EndpointName="iris-direct",
        TargetContainerHostname="sklearn",
        ContentType="text/csv",
        Accept="application/json",
        Body=ROWS,
    )
    assert json.loads(sklearn["Body"].read()) == [0, 2]
    custom = runtime.invoke_endpoint(
        EndpointName="iris-direct",
        TargetContainerHostname="custom",
        ContentType="application/json",
        Body=json.dumps({"id": "direct-1"}),
    )
    answer = json.loads(custom["Body"].read())
    assert answer["id"] == "direct-1"
    assert answer["pod"].startswith("iris-direct")  # one pod holds both containers

    code, message = _refusal(lambda: runtime.invoke_endpoint(EndpointName="iris-direct", Body=ROWS))
    assert code == "ValidationError"
    assert "TargetContainerHostname is required" in message
    code, message = _refusal(
        lambda: runtime.invoke_endpoint(EndpointName="iris-direct", Body=ROWS, TargetContainerHostname="xgb")
    )
    assert code == "ValidationError"
    assert "valid hostnames: custom, sklearn" in message

    out = deployed.kubectl("get", "pods", "-n", ns, "-l", "sageport.io/endpoint=iris-direct", "-o", "json")
    (pod,) = json.loads(out)["items"]
    statuses = {s["name"]: s["ready"] for s in pod["status"]["containerStatuses"]}
    assert statuses == {"sklearn": True, "custom": True, "sageport-router": True}
