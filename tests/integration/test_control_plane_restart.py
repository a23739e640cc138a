"""The API server and etcd are restarted while 20 calls/s flow through the gateway.

A private cluster (the session's is shared by every other test), the real gateway process in
Kubernetes mode and the real operator process against it. The gateway's endpoint is written the
way the operator writes it (status and an EndpointSlice pointing at a real backend process on
this machine), because kwok's pods serve nothing; the operator reconciles its own Endpoints on
kwok nodes. While the control plane is down every call must still succeed from what the gateway
knows; once it is back, both watches must pick up a change made after the restart by themselves.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi, V1Namespace, V1ObjectMeta

from sageport.contract import API_GROUP, API_VERSION
from sageport_dev import build
from sageport_dev.control_plane import ClusterState, admin_client, restart, start, stop_cluster
from sageport_dev.handle import KubeCluster
from sageport_dev.layout import Layout
from sageport_dev.processes import eventually
from tests.integration.conftest import install_crds, running_operator
from tests.integration.gateway.support import Process, runtime_client, start_backend, start_gateway
from tests.integration.gateway.test_kubernetes import Operator, _routable_address
from tests.support.kube import apply
from tests.support.traffic import Traffic

RATE = 20.0  # calls per second
DOWN_SECONDS = 5.0
TINY = "restart-test.tiny"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[KubeCluster]:
    """A cluster of this module's own: restarting the session's would disturb other tests."""
    state_dir = Path(tempfile.mkdtemp(prefix="sageport-restart-"))
    try:
        start(state_dir, die_with_parent=True, log=lambda _: None)
        cluster = KubeCluster(
            kubeconfig=Layout(state_dir).kubeconfig,
            kubectl_binary=build.ensure_binaries()["kubectl"],
            state_dir=state_dir,
        )
        install_crds(cluster)
        yield cluster
    finally:
        stop_cluster(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


class Availability:
    """Polls the API server's /readyz every 0.1 s; how long it was not ready, in all."""

    def __init__(self, state_dir: Path) -> None:
        layout = Layout(state_dir)
        state = ClusterState.load(layout)
        assert state is not None
        self._client = admin_client(layout, state)
        self._failing = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            started = time.monotonic()
            try:
                ready = self._client.get("/readyz").status == 200
            except OSError:
                ready = False
            if not ready:
                self._failing += max(0.1, time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def unavailable(self) -> float:
        return self._failing


def _in_service(custom: CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        status = custom.get_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "endpoints", name)
    except Exception:
        return False
    return bool((status.get("status") or {}).get("endpointStatus") == "InService")


def _documents(name: str) -> list[dict[str, Any]]:
    variant = {
        "variantName": "AllTraffic",
        "modelName": name,
        "instanceType": TINY,
        "initialInstanceCount": 1,
    }
    return [
        {"apiVersion": API_VERSION, "kind": "Model", "metadata": {"name": name},
         "spec": {"primaryContainer": {"modelDataURL": f"s3://restart/{name}.tar.gz"}}},
        {"apiVersion": API_VERSION, "kind": "EndpointConfig", "metadata": {"name": name},
         "spec": {"productionVariants": [variant]}},
        {"apiVersion": API_VERSION, "kind": "Endpoint", "metadata": {"name": name},
         "spec": {"endpointConfigName": name}},
    ]  # fmt: skip


def _serves(client: Any, endpoint: str) -> bool:
    try:
        client.invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="text/plain")
    except Exception:
        return False
    return True


@pytest.mark.fake_operator
def test_the_gateway_serves_through_an_api_server_restart_and_both_watches_recover(
    own_cluster: KubeCluster, tmp_path: Path
) -> None:
    assert own_cluster.state_dir is not None
    with own_cluster.api_client() as api:
        core, custom = CoreV1Api(api), CustomObjectsApi(api)
        routed, managed = f"nop-routed-{secrets.token_hex(3)}", f"t-managed-{secrets.token_hex(3)}"
        for namespace in (routed, managed):
            core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=namespace)))
        own_cluster.kubectl("apply", "--server-side", "-f", "-", stdin=(
            f"apiVersion: {API_VERSION}\nkind: InstanceType\nmetadata: {{name: {TINY}}}\n"
            "spec: {cpu: 10m, memory: 16Mi}\n"))  # fmt: skip
        eventually(lambda: _sa_exists(core, managed), timeout=30, what="the default service account")

        backend = start_backend("pod-a", "--host", _routable_address())
        operator = Operator(api, routed)
        key, secret = "AKID" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24)
        operator.access_key(key, secret)
        operator.endpoint("steady", "InService", [("AllTraffic", 1.0)])
        operator.slice("steady", "AllTraffic", backend.url)
        gateway: Process | None = None
        try:
            with running_operator(
                own_cluster.kubeconfig, tmp_path / "operator.log", managed
            ) as real_operator:
                apply(own_cluster, _documents("before"), managed)
                eventually(lambda: _in_service(custom, managed, "before"), timeout=120,
                           what="an Endpoint InService before the restart")  # fmt: skip
                gateway = start_gateway(
                    ["--kubernetes", "--kubeconfig", str(own_cluster.kubeconfig), "--namespace", routed],
                    log_path=tmp_path / "gateway.log",
                    ready_timeout=90,
                )
                client = runtime_client(gateway.url, access_key=key, secret_key=secret, read_timeout=10)
                eventually(lambda: _serves(client, "steady"), timeout=30, what="the gateway to route")

                def make_client() -> Any:
                    return runtime_client(gateway.url, access_key=key, secret_key=secret, read_timeout=10)

                with Traffic(make_client, "steady", b"ping", "text/plain", rate=RATE,
                             check=lambda body: body == b"ping") as traffic:  # fmt: skip
                    time.sleep(3)
                    down_at = time.monotonic()
                    probe = Availability(own_cluster.state_dir)
                    took = restart(own_cluster.state_dir, down_seconds=DOWN_SECONDS, die_with_parent=True)
                    back_at = time.monotonic()

                    # Changes made after the restart, each picked up by a watch by itself.
                    operator.endpoint("after", "InService", [("AllTraffic", 1.0)])
                    operator.slice("after", "AllTraffic", backend.url)
                    apply(own_cluster, _documents("after"), managed)
                    eventually(lambda: _serves(client, "after"), timeout=60, interval=0.1,
                               what="the gateway's watch to route a new Endpoint")  # fmt: skip
                    gateway_recovered = time.monotonic() - back_at
                    eventually(lambda: _deployments(api, managed) > 1, timeout=60, interval=0.1,
                               what="the operator's watch to see a new Endpoint")  # fmt: skip
                    operator_saw = time.monotonic() - back_at
                    eventually(lambda: _in_service(custom, managed, "after"), timeout=120, interval=0.2,
                               what="the operator's watch to reconcile a new Endpoint")  # fmt: skip
                    operator_recovered = time.monotonic() - back_at
                    time.sleep(2)
                    probe.stop()
                assert real_operator.process.poll() is None, "the operator died with the API server"
        finally:
            if gateway is not None:
                gateway.stop()
            backend.stop()

    unavailable = probe.unavailable()
    calls = traffic.calls
    during = [call for call in calls if down_at <= call.started <= back_at]
    failed = [call for call in calls if call.error]
    print(f"\nAPI server and etcd restarted under {RATE:.0f} calls/s: away {back_at - down_at:.1f} s "
          f"(stopping {took['stop']:.1f} s, down {DOWN_SECONDS:.0f} s, start to /readyz {took['start']:.1f} s; "
          f"/readyz failing for {unavailable:.1f} s); "
          f"{len(calls)} calls sent, {len(during)} of them meanwhile, {len(failed)} failed; after /readyz "
          f"the gateway's watch routed a new Endpoint in {gateway_recovered:.1f} s, the operator's wrote "
          f"its Deployment in {operator_saw:.1f} s (InService in {operator_recovered:.1f} s)")  # fmt: skip
    assert unavailable >= DOWN_SECONDS, "the API server never went away"
    assert len(during) >= RATE * DOWN_SECONDS * 0.8, "traffic did not flow while the API server was down"
    assert not failed, f"{len(failed)} calls failed, first: {failed[0].error}"


def _deployments(api: Any, namespace: str) -> int:
    return len(AppsV1Api(api).list_namespaced_deployment(namespace).items)


def _sa_exists(core: CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except Exception:
        return False
    return True
