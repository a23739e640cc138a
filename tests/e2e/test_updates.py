"""An update under traffic on real pods: v1 -> v2 with a renamed variant while boto3 calls run
the whole time. No call fails, the status is only ever InService or Updating, v2 answers after."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import stack
from tests.e2e.conftest import Deployed
from tests.e2e.test_endpoints import _probe_endpoint, _wait_ready

pytestmark = pytest.mark.timeout(600)


def test_an_update_to_a_renamed_variant_under_traffic_drops_no_call(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, _probe_endpoint("upd", [("Blue", 1.0, 1)]))
    _wait_ready(deployed, ns, "upd", key)
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)  # no retry: every failure counts
    answered: Counter[str] = Counter()
    failures: list[str] = []
    statuses: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        call = 0
        while not stop.is_set():
            call += 1
            try:
                response = runtime.invoke_endpoint(
                    EndpointName="upd", ContentType="application/json", Body=json.dumps({"id": call})
                )
                answered[response["InvokedProductionVariant"]] += 1
            except ClientError as error:
                failures.append(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}")
            time.sleep(0.05)  # about 20 calls a second

    def status() -> dict[str, Any]:
        return dict((deployed.get("endpoints.sageport.io", "upd", ns) or {}).get("status") or {})

    caller = threading.Thread(target=traffic, daemon=True)
    caller.start()
    try:
        time.sleep(2)
        v2 = _probe_endpoint("upd", [("Green", 1.0, 1)])[1]
        v2["metadata"]["name"] = v2["spec"]["endpointConfigName"] = "upd-config-v2"
        stack.apply_objects(deployed.kubeconfig, ns, [v2])
        patch = json.dumps({"spec": {"endpointConfigName": "upd-config-v2"}})
        deployed.kubectl("patch", "-n", ns, "endpoints.sageport.io/upd", "--type=merge", "-p", patch)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            current = status()
            statuses.append(str(current.get("endpointStatus")))
            if (
                current.get("endpointConfigName") == "upd-config-v2"
                and current.get("endpointStatus") == "InService"
            ):
                break
            time.sleep(0.2)
        before = answered["Green"]
        time.sleep(5)  # v2 alone now; the old fleet is gone after the handover
        assert answered["Green"] > before
    finally:
        stop.set()
        caller.join(30)
    assert failures == [], (
        f"{len(failures)} of {sum(answered.values()) + len(failures)} calls failed: {failures[:5]}"
    )
    assert set(statuses) <= {"InService", "Updating"}, statuses
    assert "Updating" in statuses
    assert answered["Blue"] > 0, answered
    assert answered["Green"] > 0, answered
    variants = deployed.kubectl("get", "deployments", "-n", ns, "-l", "sageport.io/endpoint-object=upd",
                                "-o", "jsonpath={.items[*].metadata.labels.sageport\\.io/variant}")  # fmt: skip
    assert variants.split() == ["Green"]


def test_an_update_whose_model_cannot_load_rolls_back_under_traffic(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, _probe_endpoint("rb", [("Blue", 1.0, 1)]))
    _wait_ready(deployed, ns, "rb", key)
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    answered: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                response = runtime.invoke_endpoint(
                    EndpointName="rb", ContentType="application/json", Body=b"{}"
                )
                answered[response["InvokedProductionVariant"]] += 1
            except ClientError as error:
                failures.append(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}")
            time.sleep(0.05)

    caller = threading.Thread(target=traffic, daemon=True)
    caller.start()
    statuses: list[str] = []
    try:
        broken = _probe_endpoint("rb", [("Red", 1.0, 1)], model_url="s3://models/no-such/model.tar.gz")
        model, config = broken[0], broken[1]
        model["metadata"]["name"] = model["spec"]["modelName"] = "rb-model-broken"
        config["metadata"]["name"] = config["spec"]["endpointConfigName"] = "rb-config-v3"
        config["spec"]["productionVariants"][0]["modelName"] = "rb-model-broken"
        stack.apply_objects(deployed.kubeconfig, ns, [model, config])
        patch = json.dumps({"spec": {"endpointConfigName": "rb-config-v3"}})
        deployed.kubectl("patch", "-n", ns, "endpoints.sageport.io/rb", "--type=merge", "-p", patch)
        deadline, final = time.monotonic() + 240, {}
        while time.monotonic() < deadline:
            final = dict((deployed.get("endpoints.sageport.io", "rb", ns) or {}).get("status") or {})
            statuses.append(str(final.get("endpointStatus")))
            if "rolled back" in (final.get("failureReason") or ""):
                break
            time.sleep(0.2)
        time.sleep(5)  # the new fleet's children go; calls keep landing on Blue
    finally:
        stop.set()
        caller.join(30)
    assert "rolled back" in (final.get("failureReason") or ""), final
    assert (final["endpointStatus"], final["endpointConfigName"]) == ("InService", "rb-config"), final
    assert "fetch" in final["failureReason"] or "CrashLoopBackOff" in final["failureReason"], final[
        "failureReason"
    ]
    assert failures == [], (
        f"{len(failures)} of {sum(answered.values()) + len(failures)} calls failed: {failures[:5]}"
    )
    assert set(statuses) <= {"InService", "Updating"}, statuses
    assert set(answered) == {"Blue"}, answered
    variants = deployed.kubectl("get", "deployments", "-n", ns, "-l", "sageport.io/endpoint-object=rb",
                                "-o", "jsonpath={.items[*].metadata.labels.sageport\\.io/variant}")  # fmt: skip
    assert variants.split() == ["Blue"]
