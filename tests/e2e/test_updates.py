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


class Traffic:
    """boto3 calls to one endpoint at about 20 a second, in a thread, with no retry: every
    failure counts. Which variant answered each call, and every failure's code and message."""

    def __init__(self, runtime: Any, endpoint: str) -> None:
        self.runtime, self.endpoint = runtime, endpoint
        self.answered: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        call = 0
        while not self._stop.is_set():
            call += 1
            try:
                response = self.runtime.invoke_endpoint(
                    EndpointName=self.endpoint, ContentType="application/json", Body=json.dumps({"id": call})
                )
                self.answered[response["InvokedProductionVariant"]] += 1
            except ClientError as error:
                self.failures.append(
                    f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
                )
            time.sleep(0.05)

    def assert_none_failed(self) -> None:
        total = sum(self.answered.values()) + len(self.failures)
        assert self.failures == [], f"{len(self.failures)} of {total} calls failed: {self.failures[:5]}"


def _status(deployed: Deployed, ns: str, name: str) -> dict[str, Any]:
    return dict((deployed.get("endpoints.sageport.io", name, ns) or {}).get("status") or {})


def _point_at(deployed: Deployed, ns: str, name: str, config: str) -> None:
    patch = json.dumps({"spec": {"endpointConfigName": config}})
    deployed.kubectl("patch", "-n", ns, f"endpoints.sageport.io/{name}", "--type=merge", "-p", patch)


def _variants_with_deployments(deployed: Deployed, ns: str, name: str) -> list[str]:
    out = deployed.kubectl("get", "deployments", "-n", ns, "-l", f"sageport.io/endpoint-object={name}",
                           "-o", "jsonpath={.items[*].metadata.labels.sageport\\.io/variant}")  # fmt: skip
    return out.split()


def test_an_update_to_a_renamed_variant_under_traffic_drops_no_call(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, _probe_endpoint("upd", [("Blue", 1.0, 1)]))
    _wait_ready(deployed, ns, "upd", key)
    statuses: list[str] = []
    with Traffic(stack.runtime_client(deployed.gateway_url, key, retries=1), "upd") as traffic:
        time.sleep(2)
        v2 = _probe_endpoint("upd", [("Green", 1.0, 1)])[1]
        v2["metadata"]["name"] = v2["spec"]["endpointConfigName"] = "upd-config-v2"
        stack.apply_objects(deployed.kubeconfig, ns, [v2])
        _point_at(deployed, ns, "upd", "upd-config-v2")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            current = _status(deployed, ns, "upd")
            statuses.append(str(current.get("endpointStatus")))
            if (current.get("endpointConfigName"), current.get("endpointStatus")) == (
                "upd-config-v2",
                "InService",
            ):
                break
            time.sleep(0.2)
        before = traffic.answered["Green"]
        time.sleep(5)  # v2 alone now; the old fleet is gone after the handover
        assert traffic.answered["Green"] > before
    traffic.assert_none_failed()
    assert set(statuses) <= {"InService", "Updating"}, statuses
    assert "Updating" in statuses
    assert traffic.answered["Blue"] > 0, traffic.answered
    assert traffic.answered["Green"] > 0, traffic.answered
    assert _variants_with_deployments(deployed, ns, "upd") == ["Green"]


def test_an_update_whose_model_cannot_load_rolls_back_under_traffic(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, _probe_endpoint("rb", [("Blue", 1.0, 1)]))
    _wait_ready(deployed, ns, "rb", key)
    statuses: list[str] = []
    final: dict[str, Any] = {}
    with Traffic(stack.runtime_client(deployed.gateway_url, key, retries=1), "rb") as traffic:
        model, config, _ = _probe_endpoint(
            "rb", [("Red", 1.0, 1)], model_url="s3://models/no-such/model.tar.gz"
        )
        model["metadata"]["name"] = model["spec"]["modelName"] = "rb-model-broken"
        config["metadata"]["name"] = config["spec"]["endpointConfigName"] = "rb-config-v3"
        config["spec"]["productionVariants"][0]["modelName"] = "rb-model-broken"
        stack.apply_objects(deployed.kubeconfig, ns, [model, config])
        _point_at(deployed, ns, "rb", "rb-config-v3")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            final = _status(deployed, ns, "rb")
            statuses.append(str(final.get("endpointStatus")))
            if "rolled back" in (final.get("failureReason") or ""):
                break
            time.sleep(0.2)
        time.sleep(5)  # the new fleet's children go; calls keep landing on Blue
    assert "rolled back" in (final.get("failureReason") or ""), final
    assert (final["endpointStatus"], final["endpointConfigName"]) == ("InService", "rb-config"), final
    assert "CrashLoopBackOff" in final["failureReason"], final["failureReason"]
    traffic.assert_none_failed()
    assert set(statuses) <= {"InService", "Updating"}, statuses
    assert set(traffic.answered) == {"Blue"}, traffic.answered
    assert _variants_with_deployments(deployed, ns, "rb") == ["Blue"]
