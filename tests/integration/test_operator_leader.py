"""Two operator replicas with leader election against a real API server (kwok nodes): the leader
is killed with SIGKILL in the middle of reconciling 50 Endpoints; the standby takes the Lease
over, every Endpoint reaches InService, and no child is created twice or left without its owner.
Then a clean stop (SIGTERM, a rolling upgrade) hands over at once, the Lease being released."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    PolicyV1Api,
    V1Namespace,
    V1ObjectMeta,
)
from kubernetes.client.exceptions import ApiException

from sageport.contract import API_GROUP, API_VERSION
from sageport_dev.handle import KubeCluster
from sageport_dev.processes import eventually, free_port
from tests.conftest import UNMANAGED_PREFIX
from tests.support.kube import apply

pytestmark = pytest.mark.usefixtures("sageport_crds")

ENDPOINTS = 50
TINY = "leader-test.tiny"
LEASE = "sageport-operator"


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    liveness: str

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def own_namespace(kube_api: ApiClient) -> Iterator[str]:
    """A namespace the session's operator leaves alone (its prefix), for the two replicas here."""
    name = f"{UNMANAGED_PREFIX}leader-{secrets.token_hex(3)}"
    core = CoreV1Api(kube_api)
    core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name, labels={"sageport.io/test": "true"})))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def start_replica(kube_cluster: KubeCluster, own_namespace: str, tmp_path: Path) -> Iterator[Any]:
    started: list[Replica] = []

    def start(name: str) -> Replica:
        port = free_port()
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "sageport.operator", f"--liveness=http://127.0.0.1:{port}/healthz",
                 f"--namespace={own_namespace}", "--leader-election", f"--lease-namespace={own_namespace}",
                 f"--identity={name}"],
                env={**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig), "SAGEPORT_RUNTIME_IMAGE": "sageport/runtime:test"},
                stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        replica = Replica(name, process, log, f"http://127.0.0.1:{port}/healthz")
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.process.poll() is None:
            replica.process.kill()
            replica.process.wait()


def _holder(kube_api: ApiClient, namespace: str) -> str:
    try:
        lease = CoordinationV1Api(kube_api).read_namespaced_lease(LEASE, namespace)
    except ApiException as error:
        if error.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _documents(i: int) -> list[dict[str, Any]]:
    variant = {
        "variantName": "AllTraffic",
        "modelName": f"m{i}",
        "instanceType": TINY,
        "initialInstanceCount": 1,
    }
    return [
        {"apiVersion": API_VERSION, "kind": "Model", "metadata": {"name": f"m{i}"},
         "spec": {"primaryContainer": {"modelDataURL": f"s3://chaos/m{i}.tar.gz"}}},
        {"apiVersion": API_VERSION, "kind": "EndpointConfig", "metadata": {"name": f"c{i}"},
         "spec": {"productionVariants": [variant]}},
        {"apiVersion": API_VERSION, "kind": "Endpoint", "metadata": {"name": f"e{i}"},
         "spec": {"endpointConfigName": f"c{i}"}},
    ]  # fmt: skip


def _endpoints(kube_api: ApiClient, namespace: str) -> list[dict[str, Any]]:
    found = CustomObjectsApi(kube_api).list_namespaced_custom_object(
        API_GROUP, "v1alpha1", namespace, "endpoints"
    )
    return list(found["items"])


def _in_service(endpoint: dict[str, Any]) -> bool:
    status = endpoint.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready" and c["status"] == "True"]
    return bool(ready) and status.get("endpointStatus") == "InService"


def test_killing_the_leader_mid_reconcile_hands_over_and_every_endpoint_ends_in_service(
    kube_cluster: KubeCluster, kube_api: ApiClient, own_namespace: str, start_replica: Any
) -> None:
    kube_cluster.kubectl("apply", "--server-side", "-f", "-", stdin=(
        f"apiVersion: {API_VERSION}\nkind: InstanceType\nmetadata: {{name: {TINY}}}\nspec: {{cpu: 10m, memory: 16Mi}}\n"))  # fmt: skip
    replicas = {name: start_replica(name) for name in ("op-a", "op-b")}
    leader_name = eventually(lambda: _holder(kube_api, own_namespace) or None, timeout=60, what="a leader")
    leader = replicas[leader_name]
    standby = next(r for r in replicas.values() if r is not leader)
    eventually(lambda: "standing by" in standby.logs() or None, timeout=30, what="the standby to wait")
    assert _alive(standby.liveness), "a standby must pass its liveness probe while it waits"

    apply(kube_cluster, [doc for i in range(ENDPOINTS) for doc in _documents(i)], own_namespace)
    apps = AppsV1Api(kube_api)

    def deployments() -> list[Any]:
        return list(apps.list_namespaced_deployment(own_namespace).items)

    # Mid-reconcile: some children written, not all.
    eventually(
        lambda: len(deployments()) >= 5 or None, timeout=60, interval=0.05, what="reconciling under way"
    )
    before = {d.metadata.name: d.metadata.uid for d in deployments()}
    assert len(before) < ENDPOINTS, "the leader finished before it could be killed mid-reconcile"
    killed_at = time.monotonic()
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait()

    eventually(lambda: _holder(kube_api, own_namespace) == standby.name or None, timeout=30, interval=0.1,
               what="the standby to take the Lease")  # fmt: skip
    gap = time.monotonic() - killed_at
    count_then = len(deployments())
    eventually(lambda: len(deployments()) > count_then or len(deployments()) == ENDPOINTS or None, timeout=30,
               interval=0.05, what="the new leader to write children")  # fmt: skip
    first_write = time.monotonic() - killed_at
    eventually(lambda: all(_in_service(e) for e in _endpoints(kube_api, own_namespace)) or None, timeout=180,
               interval=0.5, what=f"all {ENDPOINTS} Endpoints InService")  # fmt: skip
    all_in_service = time.monotonic() - killed_at
    print(f"\nleader {leader.name} killed mid-reconcile ({len(before)}/{ENDPOINTS} Deployments written): "
          f"Lease taken over after {gap:.1f} s, next child written after {first_write:.1f} s, "
          f"all {ENDPOINTS} InService after {all_in_service:.1f} s")  # fmt: skip
    assert gap < 6 + 0.5 + 3  # lease duration + one retry + slack for a loaded machine

    # No child created twice, none orphaned: exactly one of each per Endpoint, owned by it, and
    # those written before the kill are the very same objects (same uid) with one ReplicaSet.
    endpoints = {e["metadata"]["name"]: e["metadata"]["uid"] for e in _endpoints(kube_api, own_namespace)}
    assert len(endpoints) == ENDPOINTS
    core = CoreV1Api(kube_api)
    policy = PolicyV1Api(kube_api)
    for kind, items in (
        ("Deployment", deployments()),
        ("Service", core.list_namespaced_service(own_namespace).items),
        ("PodDisruptionBudget", policy.list_namespaced_pod_disruption_budget(own_namespace).items),
    ):
        owners = [(item.metadata.owner_references or [None])[0] for item in items]
        assert all(owner is not None for owner in owners), f"a {kind} without its owner"
        assert sorted(owner.name for owner in owners) == sorted(endpoints), f"not one {kind} per Endpoint"
        assert all(endpoints[owner.name] == owner.uid for owner in owners), f"a {kind} owned by a stale uid"
    after = {d.metadata.name: d.metadata.uid for d in deployments()}
    assert {name: after[name] for name in before} == before, "a Deployment was deleted and created again"
    replica_sets = apps.list_namespaced_replica_set(own_namespace).items
    assert len(replica_sets) == ENDPOINTS, "the new leader rendered a different pod template"
    assert "leading" in standby.logs()

    # A clean stop (rolling upgrade): the leader releases the Lease and a standby takes it at once.
    successor = start_replica("op-c")
    eventually(lambda: "standing by" in successor.logs() or None, timeout=30, what="op-c to stand by")
    stopped_at = time.monotonic()
    standby.process.send_signal(signal.SIGTERM)
    eventually(lambda: _holder(kube_api, own_namespace) == "op-c" or None, timeout=30, interval=0.05,
               what="op-c to take the released Lease")  # fmt: skip
    handover = time.monotonic() - stopped_at
    assert standby.process.wait(timeout=30) == 0
    print(f"clean stop: Lease handed over after {handover:.1f} s")
    assert handover < 6, "a released Lease is taken without waiting out its duration"
