"""Target tracking on the real node with real KEDA (its operator and its metrics API server,
behind the aggregation layer) and the kube-controller-manager's HPA: examples/target-tracking
scales 1 -> N under boto3 load on SageMakerVariantInvocationsPerInstance, and back to 1 once
the load stops."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.support.manifests import EXAMPLES

pytestmark = pytest.mark.timeout(900)

TARGET = 60  # calls per instance per minute: the load below wants far more than the maximum
SCALE_IN_SECONDS = 15  # the example's scaleInCooldown (300), shortened to fit the test
MAX_INSTANCES = 3  # the example's maxInstanceCount
IRIS_ROW = b"5.1,3.5,1.4,0.2"
SELECTOR = "sageport.io/endpoint=iris-tracked"


def _deployment(deployed: Deployed, namespace: str) -> dict[str, Any]:
    out = deployed.kubectl("get", "deployments", "-n", namespace, "-l", SELECTOR, "-o", "json")
    (deployment,) = json.loads(out)["items"]
    return dict(deployment)


def _instances(deployed: Deployed, namespace: str) -> tuple[int, int]:
    """(Deployment replicas, the Endpoint status' currentInstanceCount)."""
    replicas = int(_deployment(deployed, namespace)["spec"].get("replicas", 0))
    endpoint = deployed.get("endpoints.sageport.io", "iris-tracked", namespace) or {}
    variants = endpoint.get("status", {}).get("productionVariants") or [{}]
    return replicas, int(variants[0].get("currentInstanceCount", 0))


def test_a_target_tracked_variant_scales_out_under_load_and_back_in(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    name, key = namespace
    objects = stack.example_objects(EXAMPLES / "target-tracking")
    for obj in objects:
        if obj["kind"] == "Endpoint":
            (scaling,) = obj["spec"]["autoScaling"]
            assert scaling["maxInstanceCount"] == MAX_INSTANCES
            policy = scaling["targetTrackingScalingPolicyConfiguration"]
            policy.update(targetValue=TARGET, scaleInCooldown=SCALE_IN_SECONDS)
    stack.apply_objects(deployed.kubeconfig, name, objects)
    deployed.wait_ready(name, "iris-tracked")
    assert _instances(deployed, name) == (1, 1)
    deployment = _deployment(deployed, name)["metadata"]["name"]
    # KEDA made the HPA and it reads the gateway's count through the external metrics API.
    hpa_name = f"keda-hpa-{deployment}"

    def hpa_reads_the_metric() -> bool:
        hpa = deployed.get("horizontalpodautoscalers.autoscaling", hpa_name, name)
        metrics = (hpa or {}).get("status", {}).get("currentMetrics") or []
        return any(m.get("type") == "External" for m in metrics)

    eventually(hpa_reads_the_metric, 120, interval=1, what=f"HPA {hpa_name} reading the external metric")

    client = stack.runtime_client(deployed.gateway_url, key)
    stop = threading.Event()
    answered: list[str] = []
    failed: list[str] = []

    def load() -> None:
        while not stop.is_set():
            try:
                answer = client.invoke_endpoint(
                    EndpointName="iris-tracked", ContentType="text/csv", Body=IRIS_ROW
                )
                answered.append(answer["Body"].read().decode())
            except Exception as error:
                failed.append(repr(error))
            time.sleep(0.2)

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            pool.submit(load)
        try:
            eventually(
                lambda: _instances(deployed, name) == (MAX_INSTANCES, MAX_INSTANCES),
                300,
                interval=1,
                what=f"{MAX_INSTANCES} ready instances under load",
            )
            scaled_out = time.monotonic() - started
        finally:
            stop.set()
    assert not failed, failed[:5]
    assert len(answered) > 50
    rate = len(answered) / (time.monotonic() - started) * 60

    stopped = time.monotonic()
    eventually(lambda: _instances(deployed, name) == (1, 1), 400, interval=1, what="back to 1 instance")
    scaled_in = time.monotonic() - stopped
    print(
        f"\ntarget tracking: {rate:.0f} calls/min against a target of {TARGET} per instance; "
        f"1 -> {MAX_INSTANCES} ready instances in {scaled_out:.0f} s of load, back to 1 in "
        f"{scaled_in:.0f} s after it stopped (60 s window + {SCALE_IN_SECONDS} s scaleInCooldown)"
    )
