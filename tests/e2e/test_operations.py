"""Production operations on the local stack: the operator leads on its Lease in-cluster, the
gateway answers SageMaker's 413, a gateway pod deleted under traffic costs at most the calls in
flight on it, once, and the dashboard's and alarms' gateway metrics have data in the
stack's real Prometheus for a real endpoint."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import local_stack, stack
from sageport_dev.build import ensure_binaries
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.e2e.test_endpoints import _wait_ready
from tests.support.traffic import Traffic

pytestmark = pytest.mark.timeout(600)

DASHBOARD = stack.REPO / "charts" / "sageport" / "files" / "grafana" / "sageport-endpoints.json"
RULES = stack.REPO / "examples" / "monitoring" / "prometheusrule.yml"
ROW = b"5.1,3.5,1.4,0.2\n"
# Metrics of the router (Direct variants), of multi-model servers (not scraped by the stack) and
# the gateway's own errors (no endpoint label): not expected per endpoint here.
_NOT_PER_ENDPOINT = (
    "sageport_container_",
    "sageport_model_cache",
    "sageport_loaded_models",
    "sageport_models_on_disk",
    "sageport_model_loading",
    "sageport_model_downloading",
    "sageport_gateway_errors",
)


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=10
    ) as r:
        answer = json.loads(r.read())
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_the_operator_leads_on_its_lease_in_the_cluster(deployed: Deployed) -> None:
    lease = deployed.get("leases.coordination.k8s.io", "sageport-operator", stack.SYSTEM_NAMESPACE)
    assert lease is not None, "the chart's operator runs with --leader-election"
    pods = json.loads(
        deployed.kubectl(
            "get",
            "pods",
            "-n",
            stack.SYSTEM_NAMESPACE,
            "-l",
            "app.kubernetes.io/component=operator",
            "-o",
            "json",
        )
    )["items"]
    running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
    assert lease["spec"]["holderIdentity"] in running


def test_gateway_limits_and_the_observability_pack_on_a_real_endpoint(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], tmp_path: Path
) -> None:
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "realtime-sklearn")
    )
    _wait_ready(deployed, ns, "iris", key, body=ROW)
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)

    with pytest.raises(ClientError) as too_large:
        runtime.invoke_endpoint(
            EndpointName="iris", ContentType="text/csv", Body=ROW * (7 * 1024 * 1024 // len(ROW))
        )
    assert too_large.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert too_large.value.response["Error"] == {
        "Code": "413",
        "Message": "HTTP content length exceeded 6291456 bytes.",
    }

    for _ in range(20):
        runtime.invoke_endpoint(EndpointName="iris", ContentType="text/csv", Body=ROW)

    # The example alarms load into the stack's Prometheus (promtool-checked) ...
    rules_file = tmp_path / "sageport-monitoring-example.yml"
    rules_file.write_text(yaml.safe_dump({"groups": yaml.safe_load(RULES.read_text())["spec"]["groups"]}))
    local_stack.install_alarm_rules([rules_file])
    try:
        url = deployed.env.prometheus_url
        assert url, "the e2e stack runs Prometheus"
        # ... and every gateway metric the dashboard and the alarms name has a series for iris.
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        exprs += [r["expr"] for g in yaml.safe_load(RULES.read_text())["spec"]["groups"] for r in g["rules"]]
        per_endpoint = {
            name
            for expr in exprs
            for name in re.findall(r"\bsageport_[a-z0-9_]+", expr)
            if not name.startswith(_NOT_PER_ENDPOINT)
        }
        assert "sageport_variant_instances" in per_endpoint
        for name in sorted(per_endpoint):
            series = eventually(
                lambda name=name: _query(url, f'{name}{{endpoint="iris"}}') or None,
                timeout=60,
                what=f"{name} for iris",
            )
            assert series[0]["metric"]["variant"] == "AllTraffic"
        # Other tests' iris endpoints (other namespaces, since deleted) may have left series at 0.
        assert eventually(
            lambda: (
                any(
                    float(s["value"][1]) == 1.0
                    for s in _query(url, 'sageport_variant_instances{endpoint="iris"}')
                )
                or None
            ),
            timeout=60,
            what="sageport_variant_instances 1 for iris",
        )
        assert eventually(
            lambda: _query(url, 'sageport_gateway_errors_total{code="413"}') or None, timeout=60
        )

        def rule_health() -> dict[str, str] | None:
            with urllib.request.urlopen(f"{url}/api/v1/rules", timeout=10) as answer:
                groups = json.loads(answer.read())["data"]["groups"]
            health = {rule["name"]: rule["health"] for g in groups for rule in g["rules"]}
            wanted = ("iris-alarm-red-errors", "iris-5xx-rate", "iris-model-latency-p99", "iris-no-instances")
            return health if all(health.get(name) == "ok" for name in wanted) else None

        eventually(rule_health, timeout=30, what="the example alarms evaluated without error")
    finally:
        local_stack.install_alarm_rules(remove=[rules_file.name])


def _gateway_pods(deployed: Deployed) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in stack.GATEWAY_POD_SELECTOR.items())
    pods = json.loads(
        deployed.kubectl("get", "pods", "-n", stack.SYSTEM_NAMESPACE, "-l", selector, "-o", "json")
    )
    return list(pods["items"])


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions") or []
    deleting = pod["metadata"].get("deletionTimestamp") is not None
    return not deleting and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_deleting_a_gateway_pod_under_traffic_fails_only_calls_in_flight_on_it_and_only_once(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], tmp_path: Path
) -> None:
    """The chart runs two gateways; the local stack one (a shared node), so this test scales the
    chart's Deployment to two for itself. One pod is deleted (as a drain or a rollout does) while
    20 calls/s flow through the gateway Service; boto3 does not retry, the test retries each
    failed call once."""
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "realtime-sklearn")
    )
    _wait_ready(deployed, ns, "iris", key, body=ROW)
    gateway = f"deployment/{stack.GATEWAY_SERVICE}"
    deployed.kubectl("scale", "-n", stack.SYSTEM_NAMESPACE, gateway, "--replicas=2")
    victim_log = tmp_path / "victim.log"
    try:
        eventually(
            lambda: sum(map(_ready, _gateway_pods(deployed))) == 2, timeout=120, what="two ready gateways"
        )
        victim = next(p for p in _gateway_pods(deployed) if _ready(p))["metadata"]["name"]
        with victim_log.open("wb") as sink:
            follow = subprocess.Popen(
                [
                    str(ensure_binaries()["kubectl"]),
                    f"--kubeconfig={deployed.kubeconfig}",
                    "logs",
                    "-f",
                    "-n",
                    stack.SYSTEM_NAMESPACE,
                    victim,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        traffic = Traffic(
            lambda: stack.runtime_client(deployed.gateway_url, key, retries=1),
            "iris",
            ROW,
            "text/csv",
            rate=20,
        )
        with traffic:
            time.sleep(5)
            deleted_at = time.monotonic()
            deployed.kubectl("delete", "pod", "-n", stack.SYSTEM_NAMESPACE, victim, "--wait=false")
            eventually(
                lambda: victim not in {p["metadata"]["name"] for p in _gateway_pods(deployed)},
                timeout=90,
                what=f"{victim} gone",
            )
            gone_after = time.monotonic() - deleted_at
            eventually(
                lambda: sum(map(_ready, _gateway_pods(deployed))) == 2, timeout=120, what="a replacement"
            )
            replaced_after = time.monotonic() - deleted_at
            time.sleep(3)
        follow.wait(timeout=30)
    finally:
        deployed.kubectl("scale", "-n", stack.SYSTEM_NAMESPACE, gateway, "--replicas=1")
    in_flight = traffic.in_flight_at(deleted_at)
    failed = [call for call in traffic.calls if call.error]
    print(
        f"\ngateway pod deleted under 20 calls/s: {len(traffic.calls)} calls sent, {in_flight} in flight "
        f"at the delete, {len(failed)} failed (each retried once: {sum(1 for c in failed if c.retry_error)} "
        f"failed again); the pod was gone after {gone_after:.1f} s, two gateways ready again after "
        f"{replaced_after:.1f} s"
    )
    for call in failed:
        print(
            f"  +{call.started - deleted_at:.2f} s .. +{call.ended - deleted_at:.2f} s: {call.error}; retry: {call.retry_error}"
        )
    if failed:
        print(f"the deleted gateway's log:\n{victim_log.read_text()[-4000:]}")
    assert len(traffic.calls) >= 20 * 10, "traffic did not flow"
    assert len(failed) <= in_flight, f"calls not in flight failed: {[c.error for c in failed][:3]}"
    assert not [c for c in failed if c.retry_error], "a failed call failed again on its retry"
