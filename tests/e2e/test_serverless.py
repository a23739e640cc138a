"""Serverless variants on the real node with real KEDA: examples/serverless scales to zero after
its idle period, a boto3 call wakes it (held by the gateway, never a 5xx), and 20 calls during
a wake-up all succeed."""

from __future__ import annotations

import datetime
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.support.manifests import EXAMPLES

pytestmark = pytest.mark.timeout(900)

IDLE_SECONDS = 15  # the example's idle period, shortened by its annotation
IRIS_ROW = b"5.1,3.5,1.4,0.2"


def _pods(deployed: Deployed, namespace: str) -> list[dict[str, Any]]:
    out = deployed.kubectl(
        "get", "pods", "-n", namespace, "-l", "sageport.io/endpoint=iris-serverless", "-o", "json"
    )
    return list(json.loads(out)["items"])


def _scaled_to_zero(deployed: Deployed, namespace: str) -> bool:
    deployment = json.loads(
        deployed.kubectl(
            "get", "deployments", "-n", namespace, "-l", "sageport.io/endpoint=iris-serverless", "-o", "json"
        )
    )["items"]
    return bool(deployment) and deployment[0]["spec"].get("replicas") == 0 and not _pods(deployed, namespace)


def _ready_time(pod: dict[str, Any]) -> datetime.datetime:
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return datetime.datetime.fromisoformat(ready["lastTransitionTime"].replace("Z", "+00:00"))


def test_scales_to_zero_and_a_call_wakes_it(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    name, key = namespace
    objects = stack.example_objects(EXAMPLES / "serverless")
    for obj in objects:
        if obj["kind"] == "Endpoint":
            obj["metadata"]["annotations"]["sageport.io/serverless-idle-seconds"] = str(IDLE_SECONDS)
    stack.apply_objects(deployed.kubeconfig, name, objects)
    deployed.wait_ready(name, "iris-serverless")
    scaled = deployed.get("scaledobjects.keda.sh", _deployment_name(deployed, name), name)
    assert scaled is not None
    assert scaled["spec"]["cooldownPeriod"] == IDLE_SECONDS

    # Idle: KEDA takes the variant to zero; the Endpoint stays InService.
    eventually(lambda: _scaled_to_zero(deployed, name), 240, interval=1, what="scale to zero")
    endpoint = deployed.get("endpoints.sageport.io", "iris-serverless", name)
    assert endpoint is not None
    assert endpoint["status"]["endpointStatus"] == "InService"
    (variant,) = endpoint["status"]["productionVariants"]
    assert variant["currentInstanceCount"] == 0
    assert variant["currentServerlessConfig"] == {"memorySizeInMB": 1024, "maxConcurrency": 20}

    # One call wakes it: held by the gateway while KEDA starts a pod, then answered.
    client = stack.runtime_client(deployed.gateway_url, key, retries=1)
    started = time.monotonic()
    answer = client.invoke_endpoint(EndpointName="iris-serverless", ContentType="text/csv", Body=IRIS_ROW)
    cold = time.monotonic() - started
    answered = datetime.datetime.now(datetime.UTC)
    assert answer["Body"].read().strip()
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    (pod,) = _pods(deployed, name)
    after_ready = (answered - _ready_time(pod)).total_seconds()
    print(
        f"\ncold call: {cold:.1f} s in all, answered {after_ready:.2f} s after the pod turned Ready (1 s clock)"
    )

    # Idle again, then 20 calls at once during the wake-up: every one succeeds.
    eventually(lambda: _scaled_to_zero(deployed, name), 240, interval=1, what="scale to zero again")
    with ThreadPoolExecutor(20) as pool:
        started = time.monotonic()
        calls = [
            pool.submit(
                lambda: client.invoke_endpoint(
                    EndpointName="iris-serverless", ContentType="text/csv", Body=IRIS_ROW
                )
            )
            for _ in range(20)
        ]
        answers = [call.result(timeout=300) for call in calls]
    print(f"20 calls during a wake-up: all answered within {time.monotonic() - started:.1f} s")
    assert [a["ResponseMetadata"]["HTTPStatusCode"] for a in answers] == [200] * 20


def _deployment_name(deployed: Deployed, namespace: str) -> str:
    out = deployed.kubectl(
        "get", "deployments", "-n", namespace, "-l", "sageport.io/endpoint=iris-serverless", "-o", "json"
    )
    return str(json.loads(out)["items"][0]["metadata"]["name"])


def test_calls_beyond_max_concurrency_are_throttled(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """maxConcurrency 2, a model taking 2 s: of 3 calls at once, the third gets ThrottlingException."""
    name, key = namespace
    model = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "tight-model"},
        "spec": {
            "modelName": "tight-model",
            "primaryContainer": {"modelDataURL": "s3://models/probe/model.tar.gz"},
        },
    }
    config = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "EndpointConfig",
        "metadata": {"name": "tight-config"},
        "spec": {
            "endpointConfigName": "tight-config",
            "productionVariants": [
                {
                    "variantName": "AllTraffic",
                    "modelName": "tight-model",
                    "serverlessConfig": {"memorySizeInMB": 1024, "maxConcurrency": 2},
                }
            ],
        },
    }
    endpoint = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "tight"},
        "spec": {"endpointName": "tight", "endpointConfigName": "tight-config"},
    }
    stack.apply_objects(deployed.kubeconfig, name, [model, config, endpoint])
    deployed.wait_ready(name, "tight")
    client = stack.runtime_client(deployed.gateway_url, key, retries=1)

    def call(sleep: float) -> str:
        try:
            client.invoke_endpoint(
                EndpointName="tight", ContentType="application/json", Body=json.dumps({"sleep": sleep})
            )
        except ClientError as error:
            status = error.response["ResponseMetadata"]["HTTPStatusCode"]
            return f"{error.response['Error']['Code']} {status}"
        return "ok"

    assert call(0) == "ok"  # awake (held while a pod starts, if it had none)
    with ThreadPoolExecutor(3) as pool:
        first = [pool.submit(call, 2) for _ in range(2)]
        time.sleep(0.5)  # both in flight at the model
        third = pool.submit(call, 0)
        outcomes = sorted([third.result(timeout=120), *(f.result(timeout=120) for f in first)])
    assert outcomes == ["ThrottlingException 400", "ok", "ok"], outcomes
