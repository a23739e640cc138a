"""Endpoints served by real pods, invoked with the real boto3 client through the gateway."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed

pytestmark = pytest.mark.timeout(600)


def _probe_endpoint(
    name: str, variants: list[tuple[str, float, int]], model_url: str = "s3://models/probe/model.tar.gz"
) -> list[dict[str, Any]]:
    """Model, EndpointConfig and Endpoint for the probe model: variants as (name, weight, count)."""
    model = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": f"{name}-model"},
        "spec": {"modelName": f"{name}-model", "primaryContainer": {"modelDataURL": model_url}},
    }
    config = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "EndpointConfig",
        "metadata": {"name": f"{name}-config"},
        "spec": {
            "endpointConfigName": f"{name}-config",
            "productionVariants": [
                {
                    "variantName": variant,
                    "modelName": f"{name}-model",
                    "instanceType": "local",
                    "initialInstanceCount": count,
                    "initialVariantWeight": weight,
                }
                for variant, weight, count in variants
            ],
        },
    }
    endpoint = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": name},
        "spec": {"endpointName": name, "endpointConfigName": f"{name}-config"},
    }
    return [model, config, endpoint]


def _wait_ready(
    deployed: Deployed, namespace: str, endpoint: str, key: stack.AccessKey, body: bytes = b'{"id": "ready"}'
) -> None:
    """Ready as the Endpoint says, and served by the gateway (which follows that status)."""
    deployed.wait_ready(namespace, endpoint)
    client = stack.runtime_client(deployed.gateway_url, key, retries=1)
    content_type = "text/csv" if body[:1].isdigit() else "application/json"
    client.invoke_endpoint(EndpointName=endpoint, ContentType=content_type, Body=body)


def _invoke(client: Any, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = client.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps(payload)
    )
    body = json.loads(response["Body"].read())
    return {"variant": response["InvokedProductionVariant"], **body}


def _outcome(call: Callable[[], Any]) -> str:
    """'ok' or the AWS error code boto3 raised (retries are off in these clients)."""
    try:
        call()
    except ClientError as error:
        _messages.append(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}")
        return str(error.response["Error"]["Code"])
    return "ok"


_messages: list[str] = []  # every error's message, for assertion output


def _pods(deployed: Deployed, namespace: str, endpoint: str) -> list[dict[str, Any]]:
    out = deployed.kubectl(
        "get", "pods", "-n", namespace, "-l", f"sageport.io/endpoint={endpoint}", "-o", "json"
    )
    return list(json.loads(out)["items"])


def _kill_model_server(deployed: Deployed, pod: dict[str, Any]) -> None:
    """SIGKILL the pod's model server process on the node, as a crash would."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    tasks = dict(line.split()[:2] for line in deployed.ctr("tasks", "list").splitlines()[1:])
    assert container_id in tasks, f"no running task for container {container_id}"
    pid = int(tasks[container_id])
    os.kill(pid, signal.SIGKILL)
    # Requests sent before it is really gone may be in flight when it dies, and fail.
    eventually(lambda: _dead(pid), 10, what=f"process {pid} to die", interval=0.01)


def _dead(pid: int) -> bool:
    """Reaped. A zombie leader is not enough: its other threads (and the sockets they share)
    may still be exiting; the shim reaps it only once the whole thread group is gone."""
    return not Path(f"/proc/{pid}").exists()


def _seen_by(deployed: Deployed, namespace: str, pod: dict[str, Any]) -> list[str]:
    out = deployed.kubectl(
        "exec", "-n", namespace, pod["metadata"]["name"], "--", "cat", "/tmp/seen", check=False
    )
    return out.split()


def test_the_example_endpoint_answers_boto3_from_a_real_pod(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "realtime-sklearn")
    )
    _wait_ready(deployed, ns, "iris", key, body=b"5.1,3.5,1.4,0.2\n")

    runtime = stack.runtime_client(deployed.gateway_url, key)
    response = runtime.invoke_endpoint(
        EndpointName="iris",
        ContentType="text/csv",
        Accept="application/json",
        Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    )
    assert json.loads(response["Body"].read()) == [0, 2]
    assert response["InvokedProductionVariant"] == "AllTraffic"
    [pod] = _pods(deployed, ns, "iris")
    assert pod["spec"]["nodeName"] == "sageport-local"
    assert pod["status"]["phase"] == "Running"

    endpoint = deployed.get("endpoints.sageport.io", "iris", ns)
    assert endpoint is not None
    assert endpoint["status"]["endpointStatus"] == "InService"

    wrong = stack.runtime_client(
        deployed.gateway_url, stack.AccessKey(key.access_key_id, "not-the-secret"), retries=1
    )
    with pytest.raises(ClientError) as refused:
        wrong.invoke_endpoint(EndpointName="iris", ContentType="text/csv", Body=b"5.1,3.5,1.4,0.2\n")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_two_weighted_variants_receive_traffic_in_proportion(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, _probe_endpoint("ab", [("Heavy", 3.0, 1), ("Light", 1.0, 1)])
    )
    _wait_ready(deployed, ns, "ab", key)
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)

    calls = 400
    counts = Counter(_invoke(runtime, "ab", {"id": i})["variant"] for i in range(calls))
    # Binomial(400, 0.75): mean 300, sd 8.7; 5 sd either side fails by chance once in 3 million.
    sd = math.sqrt(calls * 0.75 * 0.25)
    assert abs(counts["Heavy"] - 300) < 5 * sd, counts
    assert counts["Heavy"] + counts["Light"] == calls

    pinned = Counter(
        runtime.invoke_endpoint(
            EndpointName="ab", ContentType="application/json", Body=b"{}", TargetVariant="Light"
        )["InvokedProductionVariant"]
        for _ in range(20)
    )
    assert pinned == {"Light": 20}


def test_a_pod_killed_under_traffic(deployed: Deployed, namespace: tuple[str, stack.AccessKey]) -> None:
    """Two instances: killing the one that holds a request fails that request (it is not sent
    again: InvokeEndpoint is not idempotent) and nothing else. One instance: 503 while none is
    ready, then it recovers by itself."""
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig,
        ns,
        [
            *_probe_endpoint("pair", [("AllTraffic", 1.0, 2)]),
            *_probe_endpoint("solo", [("AllTraffic", 1.0, 1)]),
        ],
    )
    _wait_ready(deployed, ns, "pair", key)
    _wait_ready(deployed, ns, "solo", key)
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)

    # -- two instances: a slow request in flight on the pod we kill
    victim_result: dict[str, str] = {}
    slow = threading.Thread(
        target=lambda: victim_result.update(
            outcome=_outcome(lambda: _invoke(runtime, "pair", {"id": "victim", "sleep": 6}))
        )
    )
    slow.start()
    pods = _pods(deployed, ns, "pair")
    holder = eventually(
        lambda: next((p for p in pods if "victim" in _seen_by(deployed, ns, p)), None),
        5,
        what="the slow request to arrive",
    )
    _kill_model_server(deployed, holder)
    others = [_outcome(lambda i=i: _invoke(runtime, "pair", {"id": f"during-{i}"})) for i in range(30)]
    slow.join(30)
    assert victim_result["outcome"] not in ("ok",), "the killed request cannot have succeeded"
    survivor = next(p for p in pods if p["metadata"]["name"] != holder["metadata"]["name"])
    assert "victim" not in _seen_by(deployed, ns, survivor), "the gateway sent a non-idempotent request twice"
    assert Counter(others) == {"ok": 30}, "the other instance should have served everything meanwhile"

    # -- one instance: 503 while it is down, then back without anyone doing anything
    [pod] = _pods(deployed, ns, "solo")
    assert _outcome(lambda: _invoke(runtime, "solo", {"id": "before"})) == "ok"
    killed_at = time.monotonic()
    _kill_model_server(deployed, pod)
    outcomes: list[tuple[float, str]] = []
    while time.monotonic() - killed_at < 120:
        outcomes.append(
            (time.monotonic() - killed_at, _outcome(lambda: _invoke(runtime, "solo", {"id": "after"})))
        )
        if len(outcomes) >= 10 and all(o == "ok" for _, o in outcomes[-10:]):
            break
        time.sleep(0.1)
    kinds = Counter(o for _, o in outcomes)
    assert set(kinds) <= {"ok", "ServiceUnavailable", "ModelNotReadyException"}, (
        outcomes[:3],
        _messages[-30:],
    )
    assert kinds["ServiceUnavailable"] > 0, "a dead only instance must be answered 503 at some point"
    assert all(o == "ok" for _, o in outcomes[-10:]), f"did not recover within 120 s: {kinds}"
    recovered = next(t for t, o in outcomes if o == "ok")
    assert all(o == "ok" for t, o in outcomes if t > recovered), "errors after recovery"
    restarted = _pods(deployed, ns, "solo")[0]
    assert restarted["status"]["containerStatuses"][0]["restartCount"] >= 1


def test_deleting_the_endpoint_removes_everything(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, _probe_endpoint("gone", [("AllTraffic", 1.0, 1)]))
    _wait_ready(deployed, ns, "gone", key)
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    assert _invoke(runtime, "gone", {"id": 1})["variant"] == "AllTraffic"

    deployed.kubectl("delete", "-n", ns, "endpoints.sageport.io/gone", "--wait=true")
    selector = "sageport.io/endpoint=gone"
    kinds = "deployments,replicasets,services,poddisruptionbudgets,horizontalpodautoscalers,pods"

    def leftovers() -> str:
        return deployed.kubectl("get", kinds, "-n", ns, "-l", selector, "-o", "name").strip()

    eventually(lambda: leftovers() == "", 90, what="every child of the Endpoint to be deleted")
    with pytest.raises(ClientError) as missing:
        _invoke(runtime, "gone", {"id": 2})
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert "gone" in missing.value.response["Error"]["Message"]


def test_the_chart_pods_run_under_restricted_pod_security(deployed: Deployed) -> None:
    system = json.loads(deployed.kubectl("get", "namespace", stack.SYSTEM_NAMESPACE, "-o", "json"))
    assert system["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = json.loads(deployed.kubectl("get", "pods", "-n", stack.SYSTEM_NAMESPACE, "-o", "json"))["items"]
    running = sorted(
        p["metadata"]["labels"]["app.kubernetes.io/component"]
        for p in pods
        if p["status"]["phase"] == "Running"
    )
    assert running == ["gateway", "operator"]


def test_cluster_status_reports_the_real_node(deployed: Deployed) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sageport_dev", "cluster", "--dir", str(deployed.layout.root), "status"],
        capture_output=True,
        text=True,
        cwd=stack.REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    healthy = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok")}
    assert {"containerd", "kubelet", "kube-proxy", "real"} <= healthy, result.stdout


def test_the_shadow_example_copies_every_call_and_answers_from_production(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """examples/shadow-variant on real pods: 40 boto3 calls all answered by Production, and the
    stack's Prometheus, scraping the gateway, counts 40 copies answered by Shadow."""
    ns, key = namespace
    stack.apply_objects(
        deployed.kubeconfig, ns, stack.example_objects(stack.REPO / "examples" / "shadow-variant")
    )
    row = b"5.1,3.5,1.4,0.2\n"
    _wait_ready(deployed, ns, "iris-shadow", key, body=row)
    status = (deployed.get("endpoints.sageport.io", "iris-shadow", ns) or {})["status"]
    assert [v["variantName"] for v in status["productionVariants"]] == ["Production"]
    assert [v["variantName"] for v in status["shadowProductionVariants"]] == ["Shadow"]
    assert deployed.env.prometheus_url, "the e2e stack runs Prometheus"
    query = 'sum(sageport_model_latency_seconds_count{endpoint="iris-shadow",variant="%s"})'

    def counted(variant: str) -> float:
        url = f"{deployed.env.prometheus_url}/api/v1/query?query={urllib.parse.quote(query % variant)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            result = json.loads(answer.read())["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    before = counted("Shadow")
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    for _ in range(40):
        response = runtime.invoke_endpoint(EndpointName="iris-shadow", ContentType="text/csv", Body=row)
        assert response["InvokedProductionVariant"] == "Production"
        assert response["Body"].read().decode().strip() == "[0]"
    eventually(
        lambda: counted("Shadow") - before >= 40, 30, what="40 copies answered by Shadow in Prometheus"
    )
