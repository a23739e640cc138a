"""Kubernetes mode against the real API server of the local test cluster.

The test plays the operator: it applies the Endpoint CRD, creates an Endpoint, writes its
status and the EndpointSlice of its variant Service (pointing at a real backend process on this
machine), and an access-key Secret. The gateway runs as a process with the cluster's kubeconfig.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sageport import contract
from tests.integration.gateway.support import Process, runtime_client, start_backend, start_gateway

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "sageport.io_endpoints.yaml"
GROUP, VERSION, PLURAL = "sageport.io", "v1alpha1", "endpoints"


def _routable_address() -> str:
    """An address of this machine that EndpointSlice validation accepts (loopback is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))  # no packet is sent for UDP connect
        address: str = probe.getsockname()[0]
    return address


@pytest.fixture(scope="module")
def crd_applied(kube_cluster: Any) -> None:
    kube_cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/endpoints.sageport.io", "--timeout=60s")


@pytest.fixture(scope="module")
def cluster_backend() -> Iterator[Process]:
    process = start_backend("pod-a", "--host", _routable_address())
    yield process
    process.stop()


def _wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


class Operator:
    """What the operator would write, written by the test."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes.client import CoreV1Api, CustomObjectsApi, DiscoveryV1Api

        self.namespace = namespace
        self.custom = CustomObjectsApi(api)
        self.discovery = DiscoveryV1Api(api)
        self.core = CoreV1Api(api)

    def endpoint(
        self, name: str, status: str, variants: list[tuple[str, float]], endpoint_name: str | None = None
    ) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Endpoint",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"endpointConfigName": f"{name}-config"}
            | ({"endpointName": endpoint_name} if endpoint_name else {}),
        }
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        except Exception as error:
            if getattr(error, "status", None) != 409:
                raise
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {
                "status": {
                    "endpointStatus": status,
                    "productionVariants": [
                        {"variantName": variant, "currentWeight": weight, "currentInstanceCount": 1}
                        for variant, weight in variants
                    ],
                }
            },
        )

    def slice(self, endpoint: str, variant: str, backend_url: str, ready: bool = True) -> None:
        host, port = backend_url.removeprefix("http://").split(":")
        service = f"{endpoint}-{variant.lower()}"
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-abcde",
                "namespace": self.namespace,
                "labels": {
                    contract.LABEL_ENDPOINT_OBJECT: endpoint,
                    contract.LABEL_VARIANT: variant,
                    "kubernetes.io/service-name": service,
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": ready}}],
            "ports": [{"name": "http", "port": int(port), "protocol": "TCP"}],
        }
        try:
            self.discovery.create_namespaced_endpoint_slice(self.namespace, body)
        except Exception as error:
            if getattr(error, "status", None) != 409:
                raise
            self.discovery.replace_namespaced_endpoint_slice(f"{service}-abcde", self.namespace, body)

    def access_key(self, key_id: str, secret: str, endpoints: str = "*") -> None:
        def encode(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        self.core.create_namespaced_secret(
            self.namespace,
            {
                "metadata": {"name": f"key-{key_id.lower()}", "labels": {"sageport.io/access-key": "true"}},
                "data": {
                    "accessKeyId": encode(key_id),
                    "secretAccessKey": encode(secret),
                    "endpoints": encode(endpoints),
                },
            },
        )


def _start_kube_gateway(kube_cluster: Any, namespace: str, tmp_path: Path, *extra: str) -> Process:
    return start_gateway(
        ["--kubernetes", "--kubeconfig", str(kube_cluster.kubeconfig), "--namespace", namespace, *extra],
        log_path=tmp_path / "gateway.log",
        ready_timeout=90,  # ready once the first lists are in; slow on a loaded machine
    )


@pytest.mark.fake_operator
def test_routes_from_endpoints_and_endpoint_slices(
    kube_cluster: Any,
    kube_api: Any,
    namespace: str,
    crd_applied: None,
    cluster_backend: Process,
    tmp_path: Path,
) -> None:
    operator = Operator(kube_api, namespace)
    key_id, secret = "AKID" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24)
    operator.access_key(key_id, secret)
    name = "ep-" + secrets.token_hex(3)
    operator.endpoint(name, "Creating", [("AllTraffic", 1.0)])
    gateway = _start_kube_gateway(kube_cluster, namespace, tmp_path)
    try:
        client = runtime_client(gateway.url, access_key=key_id, secret_key=secret)
        # Known but not in service yet.
        with pytest.raises(client.exceptions.ValidationError, match="not in service"):
            client.invoke_endpoint(EndpointName=name, Body=b"x")

        operator.endpoint(name, "InService", [("AllTraffic", 1.0)])
        # In service, but no ready pod: 503 (boto3 would retry).
        _wait_until(lambda: _error_code(client, name) == "ServiceUnavailable")

        operator.slice(name, "AllTraffic", cluster_backend.url)
        _wait_until(lambda: _error_code(client, name) is None)
        response = client.invoke_endpoint(EndpointName=name, Body=b"hello", ContentType="text/plain")
        assert response["Body"].read() == b"hello"
        assert response["InvokedProductionVariant"] == "AllTraffic"
        assert response["CustomAttributes"] == "backend=pod-a"

        # The pod stops being ready: routed away from at once.
        operator.slice(name, "AllTraffic", cluster_backend.url, ready=False)
        _wait_until(lambda: _error_code(client, name) == "ServiceUnavailable")

        # Unknown endpoint and a wrong secret behave as in standalone mode.
        with pytest.raises(client.exceptions.ValidationError, match="not found"):
            client.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"x")
        wrong = runtime_client(gateway.url, access_key=key_id, secret_key="wrong")
        with pytest.raises(Exception, match="InvalidSignatureException"):
            wrong.invoke_endpoint(EndpointName=name, Body=b"x")
    finally:
        gateway.stop()
    assert secret not in (tmp_path / "gateway.log").read_text()


def _error_code(client: Any, name: str) -> str | None:
    try:
        client.invoke_endpoint(EndpointName=name, Body=b"x")
    except client.exceptions.ClientError as error:
        return str(error.response["Error"]["Code"])
    return None


@pytest.mark.fake_operator
def test_bearer_tokens_are_checked_with_token_and_access_reviews(
    kube_cluster: Any,
    kube_api: Any,
    namespace: str,
    crd_applied: None,
    cluster_backend: Process,
    tmp_path: Path,
) -> None:
    import urllib.error
    import urllib.request

    from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api

    operator = Operator(kube_api, namespace)
    name = "ep-" + secrets.token_hex(3)
    operator.endpoint(name, "InService", [("AllTraffic", 1.0)])
    operator.slice(name, "AllTraffic", cluster_backend.url)
    core, rbac = CoreV1Api(kube_api), RbacAuthorizationV1Api(kube_api)
    for account in ("allowed", "denied"):
        core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "invoke"},
            "rules": [
                {"apiGroups": ["sageport.io"], "resources": ["endpoints/invocations"], "verbs": ["create"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "invoke"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "invoke"},
            "subjects": [{"kind": "ServiceAccount", "name": "allowed", "namespace": namespace}],
        },
    )

    def token(account: str) -> str:
        request = {"spec": {"audiences": [], "expirationSeconds": 600}}
        result = core.create_namespaced_service_account_token(account, namespace, request)
        return str(result.status.token)

    gateway = _start_kube_gateway(kube_cluster, namespace, tmp_path)

    def call(bearer: str) -> tuple[int, str]:
        request = urllib.request.Request(
            f"{gateway.url}/endpoints/{name}/invocations",
            data=b"payload",
            method="POST",
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "text/plain"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, str(error.headers.get("x-amzn-ErrorType"))

    try:
        _wait_until(lambda: call(token("allowed"))[0] != 503)
        assert call(token("allowed")) == (200, "payload")
        assert call(token("denied")) == (403, "AccessDeniedException")
        assert call("not-a-token") == (403, "UnrecognizedClientException")
    finally:
        gateway.stop()


@pytest.mark.fake_operator
async def test_a_lagging_watch_is_overtaken_by_a_read_through(
    kube_cluster: Any, kube_api: Any, namespace: str, crd_applied: None
) -> None:
    """A client saw an Endpoint InService (``kubectl wait``) before our watch delivered it:
    the gateway re-reads that Endpoint instead of answering "not in service" (a second endpoint
    of the same namespace right after it too, found by its spec.endpointName; callers at the
    same moment share one read), and a late, older event from the watch does not take the
    table back."""
    from sageport.gateway.kube import KubernetesSource
    from sageport.gateway.routing import RouteTable
    from sageport.net.auth import KeyStore

    operator = Operator(kube_api, namespace)
    first, second, second_object = ("lag-" + secrets.token_hex(3) for _ in range(3))
    # The second is invoked by its spec.endpointName, which is not its object's name.
    objects = {first: (first, None), second: (second_object, second)}
    for object_name, endpoint_name in objects.values():
        operator.endpoint(object_name, "Creating", [("AllTraffic", 1.0)], endpoint_name)
    table = RouteTable()
    source = KubernetesSource(table, KeyStore(), [namespace], namespace, kube_cluster.kubeconfig)
    await source.start()
    try:
        assert {table.lookup(first).status, table.lookup(second).status} == {"Creating"}
        older = operator.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, first)

        late: list[tuple[str, Any]] = []
        for watcher in source._watchers:
            if watcher.name.startswith("endpoints"):
                watcher.on_event = lambda kind, raw: late.append((kind, raw))  # the watch lags
        for object_name, endpoint_name in objects.values():
            operator.endpoint(object_name, "InService", [("AllTraffic", 1.0)], endpoint_name)
        await asyncio.sleep(1.0)
        assert len(late) >= 2, "the watch saw both changes (and held them back)"
        assert table.lookup(first).status == "Creating", "the lagging watch must not have delivered it"

        reads: list[str] = []
        original = source._read_endpoint

        async def counted(namespace: str, name: str) -> None:
            reads.append(name)
            await original(namespace, name)

        source._read_endpoint = counted  # type: ignore[method-assign]
        await asyncio.gather(*(source.refresh_endpoint(namespace, first) for _ in range(5)))
        assert table.lookup(first).status == "InService"
        assert reads == [first], "concurrent callers share one read"
        await source.refresh_endpoint(namespace, second)
        assert table.lookup(second).status == "InService", "not held back by the first one's read"
        assert reads == [first, second]

        source._endpoint_events[f"endpoints/{namespace}"]("MODIFIED", older)  # arrives late
        source._rebuild()
        assert table.lookup(first).status == "InService"
    finally:
        source.stop()
