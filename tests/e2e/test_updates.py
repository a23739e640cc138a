"""An update under traffic on real pods: v1 -> v2 with a renamed variant while boto3 calls run
the whole time. No call fails, the status is only ever InService or Updating, v2 answers after."""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import local_stack, stack
from tests.e2e.conftest import Deployed
from tests.e2e.test_endpoints import _probe_endpoint, _wait_ready

pytestmark = pytest.mark.timeout(600)

IRIS_ROW = b"5.1,3.5,1.4,0.2\n"


class Traffic:
    """boto3 calls to one endpoint at about 20 a second, in a thread, with no retry: every
    failure counts. Which variant answered each call, and every failure's code and message."""

    def __init__(self, runtime: Any, endpoint: str, csv_row: bytes | None = None) -> None:
        self.runtime, self.endpoint, self.csv_row = runtime, endpoint, csv_row
        self.answered: Counter[str] = Counter()
        self.failures: list[str] = []
        self.failed_at: list[float] = []  # time.time() of each failure
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
                if self.csv_row is not None:
                    body, content_type = self.csv_row, "text/csv"
                else:
                    body, content_type = json.dumps({"id": call}).encode(), "application/json"
                response = self.runtime.invoke_endpoint(
                    EndpointName=self.endpoint, ContentType=content_type, Body=body
                )
                self.answered[response["InvokedProductionVariant"]] += 1
            except ClientError as error:
                self.failures.append(
                    f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
                )
                self.failed_at.append(time.time())
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


def test_the_update_example_under_traffic_drops_no_call(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """examples/update-to-new-config: v1 (variant Blue) -> v2 (variant Green) as its comment says."""
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "update-to-new-config")
    )
    _wait_ready(deployed, ns, "iris-bg", key, body=IRIS_ROW)
    statuses: list[str] = []
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    with Traffic(runtime, "iris-bg", csv_row=IRIS_ROW) as traffic:
        time.sleep(2)
        _point_at(deployed, ns, "iris-bg", "iris-bg-v2")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            current = _status(deployed, ns, "iris-bg")
            statuses.append(str(current.get("endpointStatus")))
            if (current.get("endpointConfigName"), current.get("endpointStatus")) == (
                "iris-bg-v2",
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
    assert _variants_with_deployments(deployed, ns, "iris-bg") == ["Green"]


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


def test_the_canary_example_under_traffic_shares_then_moves_the_traffic_and_drops_no_call(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """examples/canary-update: Blue -> Green with CANARY 50 % and 20 s bakes, at about 20 calls/s.
    During the canary bake both fleets answer, about half each; after it only Green; no call fails."""
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "canary-update")
    )
    _wait_ready(deployed, ns, "iris-canary", key, body=IRIS_ROW)
    statuses: list[str] = []
    by_step: dict[int, Counter[str]] = {}
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    with Traffic(runtime, "iris-canary", csv_row=IRIS_ROW) as traffic:
        _point_at(deployed, ns, "iris-canary", "iris-canary-v2")
        deadline, step, mark = time.monotonic() + 300, 0, Counter(traffic.answered)
        while time.monotonic() < deadline:
            current = _status(deployed, ns, "iris-canary")
            statuses.append(str(current.get("endpointStatus")))
            shift = (current.get("pendingDeploymentSummary") or {}).get("trafficShift") or {}
            now_step = int(shift.get("step", 0))
            if (current.get("endpointConfigName"), current.get("endpointStatus")) == (
                "iris-canary-v2",
                "InService",
            ):
                now_step = 3
            if now_step != step:  # answers between two status changes belong to the step before
                by_step[step] = Counter(traffic.answered) - mark
                step, mark = now_step, Counter(traffic.answered)
            if step == 3:
                break
            time.sleep(0.2)
        time.sleep(5)
        by_step[3] = Counter(traffic.answered) - mark
    print(f"canary update, answers by step (0 starting, 1 canary, 2 all, 3 done): {by_step}")
    traffic.assert_none_failed()
    assert set(statuses) <= {"InService", "Updating"}, statuses
    canary = by_step.get(1, Counter())
    share = canary["Green"] / max(sum(canary.values()), 1)
    assert sum(canary.values()) >= 100, by_step
    assert 0.3 <= share <= 0.7, f"canary answers {canary} (share {share:.2f})"
    # All of it on Green in step 2; a call or two routed just before the gateway saw the step may land on Blue.
    assert by_step[2]["Green"] > 50, by_step
    assert by_step[2]["Blue"] <= 2, by_step
    assert set(by_step[3]) == {"Green"}, by_step
    assert _variants_with_deployments(deployed, ns, "iris-canary") == ["Green"]


def _flaky_model_tarball() -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(stack.REPO / "examples" / "alarm-rollback" / "flaky" / "code", arcname="code")
    return archive.getvalue()


def test_an_alarm_firing_during_the_bake_rolls_the_update_back(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """examples/alarm-rollback, with the stack's real Prometheus scraping the gateway: v2's
    model fails every third call, the rule on its errors fires during the 60 s bake, and the
    Endpoint is back InService on v1 within an evaluation interval (5 s) + 10 s of the alert."""
    ns, key = namespace
    example = stack.REPO / "examples" / "alarm-rollback"
    local_stack.install_alarm_rules([example / "alarm-rules.yml"])
    deployed.s3.put("sageport-models", "flaky/model.tar.gz", _flaky_model_tarball())
    stack.apply_objects(deployed.kubeconfig, ns, stack.example_objects(example))
    _wait_ready(deployed, ns, "iris-alarm", key, body=IRIS_ROW)
    statuses: list[str] = []
    final: dict[str, Any] = {}
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    with Traffic(runtime, "iris-alarm", csv_row=IRIS_ROW) as traffic:
        _point_at(deployed, ns, "iris-alarm", "iris-alarm-v2")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            final = _status(deployed, ns, "iris-alarm")
            statuses.append(str(final.get("endpointStatus")))
            if "rolled back" in (final.get("failureReason") or ""):
                break
            time.sleep(0.2)
        rolled_back_at = time.time()
        time.sleep(3)  # the gateway has the old weights back
        after = Counter(traffic.answered)
        time.sleep(5)
        since_rollback = Counter(traffic.answered) - after
    reason = final.get("failureReason") or ""
    assert "rolled back" in reason, final
    assert (final["endpointStatus"], final["endpointConfigName"]) == ("InService", "iris-alarm-v1"), final
    assert set(statuses) <= {"InService", "Updating"}, statuses
    found = re.search(r"alarm iris-alarm-red-errors is firing \(since ([^)]+)\)", reason)
    assert found, reason
    fired = datetime.fromisoformat(found.group(1)).timestamp()
    first_error = min(traffic.failed_at)
    print(
        f"alarm rollback: first model error to alert {fired - first_error:.1f} s, "
        f"alert to rolled back {rolled_back_at - fired:.1f} s"
    )
    assert rolled_back_at - fired <= 5 + 10, f"rolled back {rolled_back_at - fired:.1f} s after the alert"
    assert traffic.answered["Red"] > 0, traffic.answered
    assert all(failure.startswith("ModelError") for failure in traffic.failures), traffic.failures[:5]
    assert set(since_rollback) == {"Blue"}, since_rollback
    eventually_gone = time.monotonic() + 30
    while (
        _variants_with_deployments(deployed, ns, "iris-alarm") != ["Blue"]
        and time.monotonic() < eventually_gone
    ):
        time.sleep(0.5)
    assert _variants_with_deployments(deployed, ns, "iris-alarm") == ["Blue"]


def test_the_rolling_example_under_traffic_moves_batch_by_batch_and_drops_no_call(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """examples/rolling-update on real pods, at about 20 calls/s: Blue (3 instances) -> Green in
    batches of one with 10 s bakes. No call fails; both answer while it rolls; Green alone after."""
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "rolling-update")
    )
    _wait_ready(deployed, ns, "iris-rolling", key, body=IRIS_ROW)
    statuses: list[str] = []
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    with Traffic(runtime, "iris-rolling", csv_row=IRIS_ROW) as traffic:
        _point_at(deployed, ns, "iris-rolling", "iris-rolling-v2")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            current = _status(deployed, ns, "iris-rolling")
            statuses.append(str(current.get("endpointStatus")))
            if (current.get("endpointConfigName"), current.get("endpointStatus")) == (
                "iris-rolling-v2",
                "InService",
            ):
                break
            time.sleep(0.2)
        mark = Counter(traffic.answered)
        time.sleep(5)
        after = Counter(traffic.answered) - mark
    print(f"rolling update, answers: {dict(traffic.answered)}")
    traffic.assert_none_failed()
    assert set(statuses) <= {"InService", "Updating"}, statuses
    assert statuses[-1] == "InService", statuses[-5:]
    assert traffic.answered["Blue"] > 0, traffic.answered
    assert traffic.answered["Green"] > 0, traffic.answered
    assert set(after) == {"Green"}, after
