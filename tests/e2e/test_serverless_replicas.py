"""Serverless variants behind two gateway replicas, on the real node with real KEDA.

KEDA's one gRPC connection reaches one replica; a call held by the other still wakes the variant
(the replicas share their demand). A replica killed (-9) while it holds calls: its callers get a
connection error, never a wrong answer; the calls held by the other replica are answered, so the
variant still woke. Provisioned concurrency (examples/serverless-provisioned) is measured with
SageMaker's metric names on the replicas' live /metrics.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped]
import pytest

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.support.manifests import EXAMPLES

pytestmark = pytest.mark.timeout(900)

IDLE_SECONDS = 10
IRIS_ROW = b"5.1,3.5,1.4,0.2"
GATEWAY = "deployment/" + stack.GATEWAY_SERVICE  # the Deployment and its Service share the name
GATEWAY_PORT, METRICS_PORT = 8080, 9090  # the chart's gateway.port and gateway.metrics.port


def _gateway_pods(deployed: Deployed) -> list[dict[str, Any]]:
    """Every gateway pod, terminating ones included."""
    out = deployed.kubectl(
        "get", "pods", "-n", stack.SYSTEM_NAMESPACE, "-l", "app.kubernetes.io/component=gateway", "-o", "json"
    )
    return sorted(json.loads(out)["items"], key=lambda p: p["metadata"]["name"])


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


@pytest.fixture
def two_gateways(deployed: Deployed) -> Iterator[list[dict[str, Any]]]:
    """The stack's gateway at 2 replicas for this test (the stack runs 1), both ready, and no
    third one still terminating (the pods a test calls directly must be the ones that stay)."""
    deployed.kubectl("scale", "-n", stack.SYSTEM_NAMESPACE, GATEWAY, "--replicas=2")
    try:
        pods = eventually(
            lambda: p if len(p := _gateway_pods(deployed)) == 2 and all(map(_ready, p)) else None,
            120,
            interval=1,
            what="two ready gateway replicas, none terminating",
        )
        yield pods
    finally:
        deployed.kubectl("scale", "-n", stack.SYSTEM_NAMESPACE, GATEWAY, "--replicas=1")
        eventually(lambda: len(_gateway_pods(deployed)) == 1, 120, interval=1, what="back to one gateway")


def _deploy_serverless(deployed: Deployed, namespace: str, endpoint: str) -> None:
    """examples/serverless as ``endpoint``: SageMaker names are one per account, and the previous
    test's namespace (with its Endpoint) may still be terminating."""
    objects = stack.example_objects(EXAMPLES / "serverless")
    for obj in objects:
        if obj["kind"] == "Endpoint":
            obj["metadata"]["annotations"]["sageport.io/serverless-idle-seconds"] = str(IDLE_SECONDS)
            obj["metadata"]["name"] = obj["spec"]["endpointName"] = endpoint
    stack.apply_objects(deployed.kubeconfig, namespace, objects)
    deployed.wait_ready(namespace, endpoint)


def _scaled_to_zero(deployed: Deployed, namespace: str, endpoint: str) -> bool:
    selector = f"sageport.io/endpoint={endpoint}"
    deployments = json.loads(
        deployed.kubectl("get", "deployments", "-n", namespace, "-l", selector, "-o", "json")
    )
    pods = json.loads(deployed.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))
    return (
        bool(deployments["items"])
        and deployments["items"][0]["spec"].get("replicas") == 0
        and not pods["items"]
    )


def _keda_replica(
    deployed: Deployed, pods: list[dict[str, Any]], namespace: str, endpoint: str
) -> str | None:
    """The gateway pod KEDA's stream for ``endpoint`` reached (from its log)."""
    for pod in pods:
        log = deployed.kubectl("logs", "-n", stack.SYSTEM_NAMESPACE, pod["metadata"]["name"], check=False)
        if f"KEDA is listening for {namespace}/{endpoint}" in log:
            return str(pod["metadata"]["name"])
    return None


def _url(pod: dict[str, Any], port: int = GATEWAY_PORT) -> str:
    return f"http://{pod['status']['podIP']}:{port}"


def _call(client: Any, endpoint: str) -> str:
    """What one caller sees: the answer, a clean error code, or a broken connection."""
    try:
        answer = client.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=IRIS_ROW)
    except botocore.exceptions.ClientError as error:
        return f"error {error.response['Error']['Code']}"
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        return f"connection {type(error).__name__}"
    body = answer["Body"].read().decode().strip()
    return f"ok {body}"


def test_a_call_held_by_the_replica_keda_does_not_reach_wakes_the_variant(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], two_gateways: list[dict[str, Any]]
) -> None:
    name, key = namespace
    endpoint = "iris-serverless-other"
    _deploy_serverless(deployed, name, endpoint)
    eventually(lambda: _scaled_to_zero(deployed, name, endpoint), 240, interval=1, what="scale to zero")
    keda_side = eventually(
        lambda: _keda_replica(deployed, two_gateways, name, endpoint), 60, what="KEDA's stream"
    )
    (other,) = [p for p in two_gateways if p["metadata"]["name"] != keda_side]
    client = stack.runtime_client(_url(other), key, retries=1)
    started = time.monotonic()
    assert _call(client, endpoint).startswith("ok "), "the call held by the replica KEDA does not reach"
    print(f"\ncold call through the replica without KEDA's stream: {time.monotonic() - started:.1f} s")


def test_a_replica_killed_while_holding_calls_fails_them_cleanly_and_the_variant_still_wakes(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], two_gateways: list[dict[str, Any]]
) -> None:
    name, key = namespace
    endpoint = "iris-serverless-kill"
    _deploy_serverless(deployed, name, endpoint)
    eventually(lambda: _scaled_to_zero(deployed, name, endpoint), 240, interval=1, what="scale to zero")
    keda_side = eventually(
        lambda: _keda_replica(deployed, two_gateways, name, endpoint), 60, what="KEDA's stream"
    )
    # Kill the replica holding KEDA's stream: the harder case (KEDA must reconnect to the other).
    (victim,) = [p for p in two_gateways if p["metadata"]["name"] == keda_side]
    (survivor,) = [p for p in two_gateways if p["metadata"]["name"] != keda_side]
    doomed = [stack.runtime_client(_url(victim), key, retries=1) for _ in range(3)]
    kept = [stack.runtime_client(_url(survivor), key, retries=1) for _ in range(3)]
    with ThreadPoolExecutor(6) as pool:
        on_victim = [pool.submit(_call, c, endpoint) for c in doomed]
        on_survivor = [pool.submit(_call, c, endpoint) for c in kept]
        time.sleep(0.5)  # all six held: the variant is at zero and a pod takes seconds
        early = [f.result() for f in [*on_victim, *on_survivor] if f.done()]
        assert not early, f"answered while the variant should be at zero: {early}"
        container = victim["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        deployed.ctr("tasks", "kill", "--signal", "SIGKILL", container)
        killed = time.monotonic()
        victim_outcomes = [f.result(timeout=300) for f in on_victim]
        survivor_outcomes = [f.result(timeout=300) for f in on_survivor]
        answered = time.monotonic() - killed
    print(
        f"\nkilled replica's callers: {victim_outcomes}; the other's: answered {answered:.1f} s after the kill"
    )
    assert all(o.startswith("connection ") for o in victim_outcomes), victim_outcomes
    expected = survivor_outcomes[0]
    assert expected.startswith("ok "), survivor_outcomes
    assert survivor_outcomes == [expected] * 3


def _scrape(pod: dict[str, Any]) -> str:
    with urllib.request.urlopen(_url(pod, METRICS_PORT) + "/metrics", timeout=10) as response:
        return str(response.read().decode())


def _sample(text: str, metric: str, endpoint: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric + "{") and f'endpoint="{endpoint}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_provisioned_concurrency_is_measured_with_sagemakers_metrics(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], two_gateways: list[dict[str, Any]]
) -> None:
    name, key = namespace
    stack.apply_objects(deployed.kubeconfig, name, stack.example_objects(EXAMPLES / "serverless-provisioned"))
    deployed.wait_ready(name, "iris-warm")
    endpoint = deployed.get("endpoints.sageport.io", "iris-warm", name)
    assert endpoint is not None
    (variant,) = endpoint["status"]["productionVariants"]
    assert variant["desiredServerlessConfig"]["provisionedConcurrency"] == 2
    client = stack.runtime_client(deployed.gateway_url, key, retries=1)
    for _ in range(6):  # one at a time: each within the provisioned 2
        client.invoke_endpoint(EndpointName="iris-warm", ContentType="text/csv", Body=IRIS_ROW)
    scraped = [_scrape(pod) for pod in two_gateways]
    provisioned = sum(
        _sample(t, "sageport_serverless_provisioned_concurrency_invocations_total", "iris-warm")
        for t in scraped
    )
    spilled = sum(
        _sample(t, "sageport_serverless_provisioned_concurrency_spillover_invocations_total", "iris-warm")
        for t in scraped
    )
    assert (provisioned, spilled) == (6, 0)
    assert all("sageport_serverless_concurrent_executions_utilization{" in text for text in scraped)

    # Idle now: nothing in flight in either replica's endpoint-wide view, once the last call's
    # end has reached the peer (a report, sent as the call ends; the answer may arrive first).
    def idle_everywhere() -> bool:
        return all(
            _sample(_scrape(pod), "sageport_serverless_provisioned_concurrency_utilization", "iris-warm") == 0
            for pod in two_gateways
        )

    eventually(idle_everywhere, 5, interval=0.1, what="provisioned utilization back to 0 on both replicas")
