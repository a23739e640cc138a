"""The Helm chart installed on a real API server, and its RBAC proven sufficient by use.

KWOK pods run nothing, so the operator and the gateway run here as processes, each with a
token of the ServiceAccount the chart created, and the arguments and environment of the
Deployment the chart created: every API call they make is checked against exactly the roles
the chart binds. The session's CRDs are kubectl-applied, so the release leaves CRDs out.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sageport_dev import stack, wire
from sageport_dev.handle import KubeCluster
from sageport_dev.processes import eventually, free_ports, terminate, wait_http
from tests.support.helm import CHART, helm
from tests.support.kube import apply, condition, get
from tests.support.manifests import EXAMPLES, load_documents

pytestmark = pytest.mark.usefixtures("sageport_crds")

RELEASE = "chart-rbac"
LOCAL = {"name": "chart-test-local", "cpu": "1", "memory": "1Gi"}


def _service_account_kubeconfig(cluster: KubeCluster, namespace: str, account: str, path: Path) -> Path:
    token = cluster.kubectl("-n", namespace, "create", "token", account, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = dict(admin["clusters"][0]["cluster"])
    if "certificate-authority" in server:
        ca = Path(server.pop("certificate-authority"))
        server["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": account}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _container(cluster: KubeCluster, namespace: str, deployment: str) -> dict[str, Any]:
    found = json.loads(cluster.kubectl("-n", namespace, "get", "deployment", deployment, "-o", "json").stdout)
    (container,) = found["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(argv, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT)


@pytest.fixture
def release(kube_cluster: KubeCluster, namespace: str) -> Iterator[str]:
    """The chart installed into the test's namespace, watching only that namespace."""
    helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.install=false,gateway.replicas=1",
        "--set-json",
        f'watchNamespaces=["{namespace}"]',
        "--set-json",
        f"instanceTypes.extra=[{json.dumps(LOCAL)}]",
        kubeconfig=kube_cluster.kubeconfig,
    )
    try:
        yield namespace
    finally:
        helm("uninstall", RELEASE, "--namespace", namespace, kubeconfig=kube_cluster.kubeconfig, check=False)
        kube_cluster.kubectl("delete", "instancetypes.sageport.io", LOCAL["name"], "--ignore-not-found")


# The chart's operator serves this namespace: the session's operator must leave it alone (nop-*),
# or the two rewrite each other's pipeline stage pods (their render settings differ).
@pytest.mark.fake_operator
def test_operator_and_gateway_work_with_exactly_the_charts_rbac(
    kube_cluster: KubeCluster, release: str, tmp_path: Path
) -> None:
    namespace = release
    # The release's objects, as a user sees them.
    roles = kube_cluster.kubectl("-n", namespace, "get", "roles", "-o", "name").stdout.split()
    assert sorted(roles) == [
        f"role.rbac.authorization.k8s.io/{RELEASE}-sageport-gateway",
        f"role.rbac.authorization.k8s.io/{RELEASE}-sageport-operator",
        f"role.rbac.authorization.k8s.io/{RELEASE}-sageport-operator-leader-election",
    ]
    catalog_dir = tmp_path / "catalog"
    catalog_dir.mkdir()
    config_map = get(kube_cluster, "configmap", namespace, f"{RELEASE}-sageport-instance-types")
    for key, text in config_map["data"].items():
        (catalog_dir / key).write_text(text)

    # The operator, as its ServiceAccount, with its Deployment's arguments and environment.
    operator = _container(kube_cluster, namespace, f"{RELEASE}-sageport-operator")
    health_port, api_port, metrics_port = free_ports(3)
    args = [a for a in operator["args"] if not a.startswith("--liveness")]
    env = {e["name"]: e["value"] for e in operator["env"] if "value" in e}
    env.update(
        KUBECONFIG=str(
            _service_account_kubeconfig(
                kube_cluster, namespace, f"{RELEASE}-sageport-operator", tmp_path / "operator.kubeconfig"
            )
        ),
        SAGEPORT_CATALOG_PATH=str(catalog_dir),
        HOME=str(tmp_path),
    )
    operator_log = tmp_path / "operator.log"
    operator_process = _start(
        [
            sys.executable,
            "-m",
            "sageport.operator",
            *args,
            f"--liveness=http://127.0.0.1:{health_port}/healthz",
        ],
        env,
        operator_log,
    )
    gateway = _container(kube_cluster, namespace, f"{RELEASE}-sageport-gateway")
    gateway_args = [a for a in gateway["args"] if not a.startswith(("--port=", "--metrics-port=", "--host="))]
    gateway_kubeconfig = _service_account_kubeconfig(
        kube_cluster, namespace, f"{RELEASE}-sageport-gateway", tmp_path / "gateway.kubeconfig"
    )
    gateway_log = tmp_path / "gateway.log"
    gateway_process = _start(
        [
            sys.executable,
            "-m",
            "sageport.gateway",
            *gateway_args,
            f"--kubeconfig={gateway_kubeconfig}",
            "--host=127.0.0.1",
            f"--port={api_port}",
            f"--metrics-port={metrics_port}",
        ],
        {"HOME": str(tmp_path)},
        gateway_log,
    )
    try:
        wait_http(f"http://127.0.0.1:{health_port}/healthz", operator_process, timeout=60)

        # The catalog sync: the extra entry applied, labelled as the catalog's.
        def local_labels() -> str | None:
            found = kube_cluster.kubectl(
                "get",
                "instancetypes.sageport.io",
                LOCAL["name"],
                "-o",
                "jsonpath={.metadata.labels}",
                check=False,
            )
            return found.stdout if found.returncode == 0 else None

        assert json.loads(eventually(local_labels, what="catalog applied"))["sageport.io/catalog"] == "true"

        # Reconcile with every kind of child, an autoscaler removed, an unschedulable variant.
        apply(kube_cluster, load_documents(EXAMPLES / "autoscaling"), namespace)
        (endpoint_doc,) = [d for d in load_documents(EXAMPLES / "autoscaling") if d["kind"] == "Endpoint"]
        name = endpoint_doc["metadata"]["name"]

        def in_service() -> dict[str, Any] | None:
            endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, name)
            ready = condition(endpoint)
            return endpoint if ready and ready["status"] == "True" else None

        eventually(in_service, timeout=60, what=f"{name} Ready")
        # It reconciled as the leader: the Lease is the chart's, held by it (RBAC let it write it).
        lease = get(kube_cluster, "leases.coordination.k8s.io", namespace, f"{RELEASE}-sageport-operator")
        assert lease["spec"]["holderIdentity"]
        assert get(
            kube_cluster,
            "horizontalpodautoscalers",
            namespace,
            selector=f"sageport.io/endpoint-object={name}",
        )
        kube_cluster.kubectl(
            "-n", namespace, "patch", "endpoints.sageport.io", name, "--type=json",
            "-p", '[{"op": "remove", "path": "/spec/autoScaling"}]',
        )  # fmt: skip
        eventually(
            lambda: (
                not get(
                    kube_cluster,
                    "horizontalpodautoscalers",
                    namespace,
                    selector=f"sageport.io/endpoint-object={name}",
                )
            ),
            what="autoscaler deleted",
        )
        # A Serial pipeline: stage pods created, its anchors labelled and annotated.
        apply(kube_cluster, load_documents(EXAMPLES / "serial-pipeline"), namespace)

        def pipeline_kept() -> bool:
            pods = get(kube_cluster, "pods", namespace, selector="sageport.io/endpoint-object=iris-pipeline")
            anchors = [p for p in pods if p["metadata"]["labels"].get("sageport.io/role") == "instance"]
            stages = [p for p in pods if "sageport.io/stage" in p["metadata"]["labels"]]
            annotated = [
                a
                for a in anchors
                if len((a["metadata"].get("annotations") or {}).get("sageport.io/stages", "")) > 0
            ]
            return len(anchors) == 2 and len(stages) == 4 and len(annotated) == 2

        eventually(pipeline_kept, timeout=90, what="pipeline stage pods kept by the chart's operator")
        unschedulable = [
            {
                "apiVersion": "sageport.io/v1alpha1",
                "kind": "EndpointConfig",
                "metadata": {"name": "too-big"},
                "spec": {
                    "productionVariants": [
                        {
                            "variantName": "AllTraffic",
                            "modelName": "fraud-xgb",
                            "instanceType": "ml.p5.48xlarge",
                            "initialInstanceCount": 1,
                        }
                    ]
                },
            },
            {
                "apiVersion": "sageport.io/v1alpha1",
                "kind": "Endpoint",
                "metadata": {"name": "too-big"},
                "spec": {"endpointConfigName": "too-big"},
            },
        ]
        apply(kube_cluster, unschedulable, namespace)

        def failure() -> str | None:
            endpoint = get(kube_cluster, "endpoints.sageport.io", namespace, "too-big")
            return ((endpoint or {}).get("status") or {}).get("failureReason")

        assert "cannot be scheduled" in eventually(failure, timeout=60, what="unschedulable reported")

        # The gateway: synced (lists and watches allowed), and a bearer token checked with
        # TokenReview and SubjectAccessReview (a token without invoke permission: refused).
        wait_http(f"http://127.0.0.1:{api_port}/ping", gateway_process, timeout=60)
        token = kube_cluster.kubectl("-n", namespace, "create", "token", "default").stdout.strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/endpoints/{name}/invocations",
            data=b"1,2,3",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        body = refused.value.read().decode()
        assert refused.value.code == 403
        assert "is not authorized to invoke endpoint" in body

        # The control-plane API: the gateway writes nothing as itself, yet a key whose Secret
        # names a ServiceAccount with rights creates, reads and deletes (impersonation and the
        # read checks are all the chart grants it).
        key = stack.AccessKey("AKIDCHART" + namespace[-6:].upper(), "chart-secret-key")
        apply(kube_cluster, [*stack.api_identity(), stack.access_key_secret("api-key", key)], namespace)
        sagemaker = wire.control_client(
            f"http://127.0.0.1:{api_port}", key.access_key_id, key.secret_access_key, attempts=1
        )

        def listed() -> Any:
            try:
                return sagemaker.list_models()
            except sagemaker.exceptions.ClientError:
                return None  # the key Secret is not in the gateway's watch yet

        eventually(listed, what="the access key signs in")
        sagemaker.create_model(ModelName="ChartModel", PrimaryContainer={"Image": "registry.local/m:1"})
        assert sagemaker.describe_model(ModelName="ChartModel")["ModelName"] == "ChartModel"
        sagemaker.delete_model(ModelName="ChartModel")
    finally:
        terminate(operator_process, 15)
        terminate(gateway_process, 15)
        logs = operator_log.read_text(errors="replace") + gateway_log.read_text(errors="replace")
    for refusal in ("orbidden", "status 403", "403:"):  # kopf's, the gateway's, the adapter's
        assert refusal not in logs, logs[-4000:]
