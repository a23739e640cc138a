"""Pointing an InService Endpoint at another EndpointConfig is an update: the serving config keeps
the traffic until the new fleet is ready; the status is only ever InService or Updating (the
SageMaker SDK's waiters take anything else for the end); a config that is missing keeps the old
one serving and the update proceeds when it appears. Real API server, kwok nodes."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sageport_dev.handle import KubeCluster
from sageport_dev.processes import eventually
from tests.support.kube import apply, get
from tests.support.manifests import EXAMPLES, load_documents

pytestmark = pytest.mark.usefixtures("sageport_operator")


class StatusWatch:
    """Every status the API server hands out for one Endpoint, by a `kubectl get --watch`."""

    def __init__(self, cluster: KubeCluster, namespace: str, name: str) -> None:
        argv = [str(cluster.kubectl_binary), f"--kubeconfig={cluster.kubeconfig}", "get", "-n", namespace,
                f"endpoints.sageport.io/{name}", "--watch", "-o", "json"]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.seen: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            buffer += line
            try:
                obj, end = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            buffer = buffer.strip()[end:]
            self.seen.append(obj.get("status") or {})

    def stop(self) -> list[dict[str, Any]]:
        self.process.terminate()
        self.process.wait(10)
        self.thread.join(10)
        return self.seen


@pytest.fixture
def iris(kube_cluster: KubeCluster, namespace: str) -> Iterator[list[dict[str, Any]]]:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    apply(kube_cluster, docs, namespace)
    eventually(
        lambda: _status(kube_cluster, namespace).get("endpointStatus") == "InService", 60, what="InService"
    )
    return docs


def _status(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    return dict((get(cluster, "endpoints.sageport.io", namespace, "iris") or {}).get("status") or {})


def _config_v2(docs: list[dict[str, Any]], name: str, variant: str) -> dict[str, Any]:
    config = json.loads(json.dumps(next(d for d in docs if d["kind"] == "EndpointConfig")))
    config["metadata"]["name"] = config["spec"]["endpointConfigName"] = name
    config["spec"]["productionVariants"][0]["variantName"] = variant
    return config


def _point_at(cluster: KubeCluster, namespace: str, config: str) -> None:
    patch = json.dumps({"spec": {"endpointConfigName": config}})
    cluster.kubectl("patch", "-n", namespace, "endpoints.sageport.io/iris", "--type=merge", "-p", patch)


def _deployments(cluster: KubeCluster, namespace: str) -> set[str]:
    """The variants that have a Deployment."""
    return {
        d["metadata"]["labels"]["sageport.io/variant"]
        for d in get(cluster, "deployments", namespace, selector="sageport.io/endpoint-object=iris")
    }


def test_an_update_to_a_renamed_variant_keeps_the_old_fleet_until_the_new_one_serves(
    kube_cluster: KubeCluster, namespace: str, iris: list[dict[str, Any]]
) -> None:
    watch = StatusWatch(kube_cluster, namespace, "iris")
    apply(kube_cluster, [_config_v2(iris, "iris-config-v2", "Green")], namespace)
    _point_at(kube_cluster, namespace, "iris-config-v2")

    last: dict[str, Any] = {}

    def done() -> dict[str, Any] | None:
        status = last["status"] = _status(kube_cluster, namespace)
        last["deployments"] = _deployments(kube_cluster, namespace)
        finished = (
            status.get("endpointConfigName") == "iris-config-v2"
            and status.get("endpointStatus") == "InService"
        )
        return status if finished and last["deployments"] == {"Green"} else None

    try:
        final = eventually(done, 60, what="v2 InService and the old Deployment gone")
    except AssertionError as error:
        raise AssertionError(f"{error}\nlast: {last}") from None
    seen = watch.stop()
    assert [v["variantName"] for v in final["productionVariants"]] == ["Green"]
    assert "pendingDeploymentSummary" not in final
    assert {s.get("endpointStatus") for s in seen} <= {"InService", "Updating"}, [
        s.get("endpointStatus") for s in seen
    ]
    updating = [s for s in seen if s.get("endpointStatus") == "Updating"]
    assert updating, "the update was never reported as Updating"
    for status in updating:  # the old config serves while the new one comes up
        assert status["endpointConfigName"] == "iris-config-v1"
        assert [v["variantName"] for v in status["productionVariants"]] == ["AllTraffic"]
        assert status["pendingDeploymentSummary"]["endpointConfigName"] == "iris-config-v2"


def test_an_update_to_a_missing_config_keeps_serving_and_proceeds_when_it_appears(
    kube_cluster: KubeCluster, namespace: str, iris: list[dict[str, Any]]
) -> None:
    _point_at(kube_cluster, namespace, "iris-config-v3")

    def waiting() -> dict[str, Any] | None:
        status = _status(kube_cluster, namespace)
        return status if "iris-config-v3" in (status.get("failureReason") or "") else None

    status = eventually(waiting, 30, what="the failure reason naming the missing config")
    assert status["endpointStatus"] == "Updating"
    assert status["endpointConfigName"] == "iris-config-v1"
    assert "keeps serving" in status["failureReason"]
    assert _deployments(kube_cluster, namespace) == {"AllTraffic"}

    apply(kube_cluster, [_config_v2(iris, "iris-config-v3", "AllTraffic")], namespace)
    final = eventually(
        lambda: (s := _status(kube_cluster, namespace)).get("endpointConfigName") == "iris-config-v3"
        and s.get("endpointStatus") == "InService" and s,
        60, what="v3 InService",
    )  # fmt: skip
    assert final.get("failureReason") is None
    assert _deployments(kube_cluster, namespace) == {"AllTraffic"}


def test_an_invalid_deployment_config_on_a_serving_endpoint_keeps_it_serving_and_names_the_field(
    kube_cluster: KubeCluster, namespace: str, iris: list[dict[str, Any]]
) -> None:
    routing = {"type_": "ALL_AT_ONCE", "waitIntervalInSeconds": 0}
    both = {
        "blueGreenUpdatePolicy": {"trafficRoutingConfiguration": routing},
        "rollingUpdatePolicy": {
            "maximumBatchSize": {"type_": "CAPACITY_PERCENT", "value": 10},
            "waitIntervalInSeconds": 0,
        },
    }
    patch = json.dumps({"spec": {"deploymentConfig": both}})
    kube_cluster.kubectl("patch", "-n", namespace, "endpoints.sageport.io/iris", "--type=merge", "-p", patch)

    def named() -> dict[str, Any] | None:
        status = _status(kube_cluster, namespace)
        return status if "deploymentConfig" in (status.get("failureReason") or "") else None

    status = eventually(named, 30, what="the failure reason naming deploymentConfig")
    assert status["endpointStatus"] == "InService"
    assert "set blueGreenUpdatePolicy or rollingUpdatePolicy, not both" in status["failureReason"]
    assert "keeps serving" in status["failureReason"]
    assert _deployments(kube_cluster, namespace) == {"AllTraffic"}

    fixed = json.dumps({"spec": {"deploymentConfig": {"rollingUpdatePolicy": None}}})
    kube_cluster.kubectl("patch", "-n", namespace, "endpoints.sageport.io/iris", "--type=merge", "-p", fixed)
    eventually(
        lambda: _status(kube_cluster, namespace).get("failureReason") is None, 30, what="the reason cleared"
    )
    assert _status(kube_cluster, namespace)["endpointStatus"] == "InService"


def test_weights_and_capacities_change_in_place_with_no_new_fleet(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    apply(kube_cluster, load_documents(EXAMPLES / "ab-test-two-variants"), namespace)

    def churn() -> dict[str, Any]:
        return dict(
            (get(kube_cluster, "endpoints.sageport.io", namespace, "churn") or {}).get("status") or {}
        )

    eventually(lambda: churn().get("endpointStatus") == "InService", 60, what="churn InService")
    before = {
        d["metadata"]["uid"]
        for d in get(kube_cluster, "deployments", namespace, selector="sageport.io/endpoint-object=churn")
    }
    watch = StatusWatch(kube_cluster, namespace, "churn")
    desired = [
        {"variantName": "variant-a", "desiredWeight": 0.5, "desiredInstanceCount": 3},
        {"variantName": "variant-b", "desiredWeight": 0.5},
    ]
    patch = json.dumps({"spec": {"desiredWeightsAndCapacities": desired}})
    kube_cluster.kubectl("patch", "-n", namespace, "endpoints.sageport.io/churn", "--type=merge", "-p", patch)

    def applied() -> dict[str, Any] | None:
        status = churn()
        variants = {v["variantName"]: v for v in status.get("productionVariants") or []}
        a, b = variants.get("variant-a", {}), variants.get("variant-b", {})
        done = (a.get("desiredWeight"), b.get("desiredWeight"), a.get("currentInstanceCount")) == (
            0.5,
            0.5,
            3,
        )
        return status if done and status.get("endpointStatus") == "InService" else None

    eventually(applied, 60, what="weights 0.5/0.5 and 3 instances of variant-a")
    seen = watch.stop()
    assert {s.get("endpointStatus") for s in seen} <= {"InService", "Updating"}
    deployments = get(kube_cluster, "deployments", namespace, selector="sageport.io/endpoint-object=churn")
    assert {d["metadata"]["uid"] for d in deployments} == before  # the same fleet, changed in place
    replicas = {d["metadata"]["labels"]["sageport.io/variant"]: d["spec"]["replicas"] for d in deployments}
    assert replicas == {"variant-a": 3, "variant-b": 1}


def test_a_canary_update_shifts_traffic_in_baked_steps_with_both_fleets_running(
    kube_cluster: KubeCluster, namespace: str, iris: list[dict[str, Any]]
) -> None:
    """CANARY 50 %, 4 s bakes, 2 s termination wait: the status walks Baking step 1 (half the
    traffic on the new fleet), step 2 (all of it), then InService on v2; both fleets of the
    same variant name run side by side until the old one is terminated."""
    policy = {
        "blueGreenUpdatePolicy": {
            "trafficRoutingConfiguration": {
                "type_": "CANARY",
                "waitIntervalInSeconds": 4,
                "canarySize": {"type_": "CAPACITY_PERCENT", "value": 50},
            },
            "terminationWaitInSeconds": 2,
        }
    }
    watch = StatusWatch(kube_cluster, namespace, "iris")
    apply(kube_cluster, [_config_v2(iris, "iris-config-v2", "AllTraffic")], namespace)
    patch = json.dumps({"spec": {"endpointConfigName": "iris-config-v2", "deploymentConfig": policy}})
    kube_cluster.kubectl("patch", "-n", namespace, "endpoints.sageport.io/iris", "--type=merge", "-p", patch)

    fleets: set[int] = set()

    def done() -> dict[str, Any] | None:
        fleets.add(
            len(get(kube_cluster, "deployments", namespace, selector="sageport.io/endpoint-object=iris"))
        )
        status = _status(kube_cluster, namespace)
        finished = (
            status.get("endpointConfigName") == "iris-config-v2"
            and status.get("endpointStatus") == "InService"
        )
        return status if finished else None

    started = time.monotonic()
    final = eventually(done, 90, what="v2 InService after the canary")
    took = time.monotonic() - started
    seen = watch.stop()
    assert {s.get("endpointStatus") for s in seen} <= {"InService", "Updating"}
    shifts = [
        (s["pendingDeploymentSummary"]["trafficShift"], s)
        for s in seen
        if (s.get("pendingDeploymentSummary") or {}).get("trafficShift")
    ]
    steps = [(shift["step"], shift["newFleetShare"]) for shift, _ in shifts]
    assert sorted(set(steps)) == [(1, 0.5), (2, 1.0)], steps
    for shift, status in shifts:
        (old,) = status["productionVariants"]
        (new,) = status["pendingDeploymentSummary"]["productionVariants"]
        assert (old["currentWeight"], new["currentWeight"]) == (
            1 - shift["newFleetShare"],
            shift["newFleetShare"],
        )
        assert new["variantStatus"][0]["status"] == "Baking"
    assert took >= 4 + 4 + 2 - 1, f"the bakes were skipped: done in {took:.1f} s"
    assert 2 in fleets, "the two fleets never ran side by side"
    assert final["productionVariants"][0]["currentWeight"] == 1.0
    eventually(lambda: _deployments(kube_cluster, namespace) == {"AllTraffic"} and len(
        get(kube_cluster, "deployments", namespace, selector="sageport.io/endpoint-object=iris")) == 1,
        30, what="the old fleet terminated")  # fmt: skip


def test_a_rolling_update_moves_batches_and_never_runs_more_than_one_extra_instance(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """examples/rolling-update (3 instances, batches of 1, 10 s bakes): the new fleet grows
    1, 2, 3 while the old one shrinks 3, 2, 1, then goes; never more than 4 replicas in all;
    the traffic share follows the new fleet's ready batches; status only InService/Updating."""
    apply(kube_cluster, load_documents(EXAMPLES / "rolling-update"), namespace)
    name = "iris-rolling"

    def status() -> dict[str, Any]:
        return dict((get(kube_cluster, "endpoints.sageport.io", namespace, name) or {}).get("status") or {})

    eventually(lambda: status().get("endpointStatus") == "InService", 60, what="v1 InService")
    watch = StatusWatch(kube_cluster, namespace, name)
    patch = json.dumps({"spec": {"endpointConfigName": "iris-rolling-v2"}})
    kube_cluster.kubectl(
        "patch", "-n", namespace, f"endpoints.sageport.io/{name}", "--type=merge", "-p", patch
    )
    samples: list[tuple[int, int]] = []

    def done() -> dict[str, Any] | None:
        replicas = {"Blue": 0, "Green": 0}
        for deployment in get(
            kube_cluster, "deployments", namespace, selector=f"sageport.io/endpoint-object={name}"
        ):
            replicas[deployment["metadata"]["labels"]["sageport.io/variant"]] = deployment["spec"]["replicas"]
        samples.append((replicas["Green"], replicas["Blue"]))
        current = status()
        finished = (
            current.get("endpointConfigName") == "iris-rolling-v2"
            and current.get("endpointStatus") == "InService"
        )
        return current if finished and replicas["Blue"] == 0 else None

    eventually(done, 120, interval=0.5, what="v2 InService and Blue gone")
    seen = watch.stop()
    assert {s.get("endpointStatus") for s in seen} <= {"InService", "Updating"}
    distinct = list(dict.fromkeys(samples))
    print(f"rolling update, (new, old) replicas as sampled: {distinct}")
    assert [green for green, _ in distinct if green] == sorted(green for green, _ in distinct if green)
    assert {green for green, _ in distinct} >= {1, 2, 3}, distinct
    assert {blue for _, blue in distinct} >= {3, 2, 1, 0}, distinct
    assert max(green + blue for green, blue in samples) <= 4, distinct
    shares = [
        s["pendingDeploymentSummary"]["trafficShift"]["newFleetShare"]
        for s in seen
        if (s.get("pendingDeploymentSummary") or {}).get("trafficShift")
    ]
    assert [round(share, 2) for share in dict.fromkeys(shares)] == [0.33, 0.67, 1.0], shares
