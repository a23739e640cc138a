"""The pieces of the local stack, each a function so ``make up`` (local_stack.py) can time them:
- the runtime and operator images, built without Docker and imported into the node's containerd;
- an S3-compatible server (versitygw) on the node's bridge address, where pods can reach it;
- when asked, Prometheus (Debian's) on the same address, scraping the gateway: the alarm source
  of Endpoint updates, which the operator pod reaches there;
- ``helm upgrade --install`` of charts/sageport with the values for this machine: images
  from containerd (never pulled), the chart's pods and the ``local`` instance type on the
  real node;
- a namespace for endpoints with the model fetcher's S3 credentials and a SigV4 access key;
- the gateway's address and a boto3 ``sagemaker-runtime`` client pointed at it.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import secrets
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sageport import contract
from sageport_dev import build, images, keda, prometheus, real_node, wire
from sageport_dev import redis as sageport_redis
from sageport_dev.handle import KubeCluster
from sageport_dev.layout import Layout
from sageport_dev.processes import ProcessRecord, listening, spawn

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "sageport"
RELEASE = "sageport"
SYSTEM_NAMESPACE = "sageport-system"
GATEWAY_SERVICE = "sageport-gateway"
S3_PORT = 9000  # on the bridge address, which only this machine's real node uses
# Also on the bridge address; not 9090, where the Debian package's own service (if it started)
# listens on every address.
PROMETHEUS_PORT = 19090
# Also on the bridge address; not 6379, where the Debian package's own service may listen.
REDIS_PORT = 16379
REDIS_SECRET = "sageport-redis"  # in the system namespace (gateway) and each Endpoint namespace (agents)
REGION = wire.REGION

# SageMaker's SDK runs `instance_type="local"` on the caller's machine; here it means the real
# node. Requests are small so that a few variants fit on a 2-core machine.
LOCAL_INSTANCE_TYPE: dict[str, Any] = {
    "name": "local",
    "cpu": "250m",
    "memory": "1Gi",
    "nodeSelector": {real_node.LOCAL_NODE_LABEL[0]: real_node.LOCAL_NODE_LABEL[1]},
    "tolerations": [{"key": real_node.LOCAL_NODE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
}


class StackError(RuntimeError):
    """A step of the install failed; the message says which, with the tool's own output."""


@functools.cache
def _binaries() -> dict[str, Path]:
    return build.ensure_binaries()  # checked (or built) once per process, not per command


def _binary(name: str) -> str:
    return str(_binaries()[name])


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """kubectl's stdout; a failure is a StackError with kubectl's stderr."""
    cluster = KubeCluster(kubeconfig=kubeconfig, kubectl_binary=_binaries()["kubectl"])
    result = cluster.kubectl(*args, stdin=stdin, check=False, timeout=600)
    if check and result.returncode != 0:
        raise StackError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def apply_objects(kubeconfig: Path, namespace: str, objects: Iterable[dict[str, Any]]) -> None:
    # JSON, not YAML: kubectl reads YAML 1.1, where a bare `y` or `on` that PyYAML leaves
    # unquoted is a boolean.
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", "-", stdin=text)


def delete_objects(kubeconfig: Path, namespace: str, objects: Iterable[dict[str, Any]]) -> None:
    """Delete sageport.io objects (Models, EndpointConfigs, Endpoints) if they are there."""
    names = [f"{obj['kind'].lower()}s.{contract.API_GROUP}/{obj['metadata']['name']}" for obj in objects]
    kubectl(kubeconfig, "delete", "-n", namespace, *names, "--ignore-not-found", check=False)


# ---------------------------------------------------------------------------------------------
# images


def load_images(layout: Layout, log: real_node.Log = print) -> dict[str, str]:
    """Build what is missing (cached by content) and import it into the node's containerd."""
    refs = images.ensure_images(log=log)
    paths = real_node.NodePaths(layout)
    images.import_images(paths.containerd_socket, refs.values(), log=log)
    real_node.remove_images_except(
        paths, prefixes=[ref.rsplit(":", 1)[0] + ":" for ref in refs.values()], keep=refs.values()
    )
    return refs


# ---------------------------------------------------------------------------------------------
# S3


@dataclass
class S3Server:
    """versitygw (posix backend) on the bridge address: reachable from pods and from here."""

    endpoint_url: str
    access_key: str
    secret_key: str
    process: ProcessRecord | None

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def ensure_bucket(self, bucket: str) -> None:
        s3 = self.client()
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=bucket)

    def put(self, bucket: str, key: str, body: bytes) -> str:
        self.ensure_bucket(bucket)
        self.client().put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"


def running_s3(root: Path) -> S3Server | None:
    """The versitygw an earlier run started with its details in ``root``, if it still serves."""
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        saved = json.loads((root / "s3.json").read_text())
        process = ProcessRecord.from_json(saved["process"])
        if process.alive() and listening(real_node.NODE_IP, S3_PORT):
            return S3Server(saved["endpoint_url"], saved["access_key"], saved["secret_key"], process)
    return None


def start_s3(root: Path, *, die_with_parent: bool, timeout: float = 30.0) -> S3Server:
    """Start versitygw, or reuse the one a kept run left (its details are in ``root``)."""
    host = real_node.NODE_IP
    record_file = root / "s3.json"
    running = running_s3(root)
    if running is not None:
        return running
    if listening(host, S3_PORT):
        raise StackError(f"{host}:{S3_PORT} is taken by a process this run did not start: stop it first")
    access, secret = "sageport" + secrets.token_hex(4), secrets.token_urlsafe(24)
    (root / "buckets").mkdir(parents=True, exist_ok=True)
    argv = [
        _binary("versitygw"),
        "--access",
        access,
        "--secret",
        secret,
        "--port",
        f"{host}:{S3_PORT}",
        # As AWS S3 does; versitygw's default closes every connection, so each S3 request in
        # the stack paid a TCP connect (the batch driver's reads and writes, about 0.5 ms each).
        "--keep-alive",
        "posix",
        str(root / "buckets"),
    ]
    # The credentials are on versitygw's command line: readable by root on this machine only.
    record = spawn("versitygw", argv, root / "versitygw.log", die_with_parent=die_with_parent)
    deadline = time.monotonic() + timeout
    while not listening(host, S3_PORT):
        if not record.alive() or time.monotonic() > deadline:
            raise StackError(f"versitygw did not start; log {root / 'versitygw.log'}")
        time.sleep(0.1)
    server = S3Server(f"http://{host}:{S3_PORT}", access, secret, record)
    saved = {"endpoint_url": server.endpoint_url, "access_key": access, "secret_key": secret}
    record_file.write_text(json.dumps({**saved, "process": record.to_json()}))
    record_file.chmod(0o600)
    return server


# ---------------------------------------------------------------------------------------------
# Prometheus


GATEWAY_METRICS_SERVICE = f"{GATEWAY_SERVICE}-metrics-local"
GATEWAY_METRICS_PORT = 9090  # the chart's gateway.metrics.port
# The chart's selector labels of the gateway pods (release `sageport`, no nameOverride).
GATEWAY_POD_SELECTOR = {
    "app.kubernetes.io/name": "sageport",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "gateway",
}


def gateway_metrics_service() -> dict[str, Any]:
    """A Service on the gateway pods' metrics port (which the gateway Service leaves out), for
    Prometheus on this machine: Debian's Prometheus cannot discover pods, and kube-proxy routes a
    cluster IP from the host, as for the gateway's API. Client-IP affinity keeps every scrape on
    one pod while a rollout briefly runs two, so no counter jumps between pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": GATEWAY_METRICS_SERVICE, "namespace": SYSTEM_NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "selector": GATEWAY_POD_SELECTOR,
            "sessionAffinity": "ClientIP",
            "ports": [{"name": "metrics", "port": GATEWAY_METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def start_prometheus(root: Path, kubeconfig: Path, *, die_with_parent: bool) -> prometheus.PrometheusServer:
    """Prometheus on the bridge address (where the operator pod reaches it), or the one a kept
    run left in ``root``: it scrapes the gateway's /metrics through :func:`gateway_metrics_service`
    and loads alerting rules from ``root/rules``."""
    create_restricted_namespace(kubeconfig, SYSTEM_NAMESPACE)  # before the chart: helm reuses it
    apply_objects(kubeconfig, SYSTEM_NAMESPACE, [gateway_metrics_service()])
    service = json.loads(
        kubectl(kubeconfig, "get", "service", "-n", SYSTEM_NAMESPACE, GATEWAY_METRICS_SERVICE, "-o", "json")
    )
    gateway = prometheus.static_scrape_config(
        GATEWAY_SERVICE, [f"{service['spec']['clusterIP']}:{GATEWAY_METRICS_PORT}"]
    )
    try:
        return prometheus.start(
            root,
            host=real_node.NODE_IP,
            port=PROMETHEUS_PORT,
            scrape_configs=[gateway],
            die_with_parent=die_with_parent,
        )
    except prometheus.PrometheusError as error:
        raise StackError(str(error)) from None


# ---------------------------------------------------------------------------------------------
# KEDA (serverless variants)


GATEWAY_SCALER_SERVICE = f"{GATEWAY_SERVICE}-scaler-local"


def gateway_scaler_service() -> dict[str, Any]:
    """A Service on the gateway pods' scaler port, made before the chart so its cluster IP can
    be the chart's serverless.scalerAddress: KEDA runs on this machine, outside the cluster DNS,
    and kube-proxy routes a cluster IP from the host."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": GATEWAY_SCALER_SERVICE, "namespace": SYSTEM_NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "selector": GATEWAY_POD_SELECTOR,
            "ports": [
                {
                    "name": contract.SCALER_PORT_NAME,
                    "port": contract.SCALER_PORT,
                    "targetPort": contract.SCALER_PORT_NAME,
                }
            ],
        },
    }


EXTERNAL_METRICS_API = "v1beta1.external.metrics.k8s.io"


def external_metrics_api(host: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """The APIService for KEDA's external metrics and what it points at: a Service without
    selector whose one endpoint is the metrics API server on this machine (``host:port``). The
    apiserver dials that endpoint directly (--enable-aggregator-routing)."""
    meta = {"name": keda.METRICS_SERVICE, "namespace": keda.NAMESPACE}
    port_spec = {"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [port_spec]}},
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta,
            "subsets": [
                {"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
            ],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": EXTERNAL_METRICS_API},
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "service": {**meta, "port": 443},
                "caBundle": base64.b64encode(ca_bundle).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


def start_keda(root: Path, kubeconfig: Path, *, die_with_parent: bool) -> str:
    """KEDA's CRDs, its operator and its metrics API server (out of cluster, the latter behind
    the APIService for external metrics); return the scaler address KEDA reaches the gateway at
    (the chart's serverless.scalerAddress)."""
    for crd in keda.crd_files():
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    # Files are named <group>_<plural>.yaml, the CRDs <plural>.<group>.
    names = [
        f"crd/{plural}.{group}" for group, _, plural in (c.stem.partition("_") for c in keda.crd_files())
    ]
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *names)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": keda.NAMESPACE}}
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))
    create_restricted_namespace(kubeconfig, SYSTEM_NAMESPACE)  # before the chart: helm reuses it
    apply_objects(kubeconfig, SYSTEM_NAMESPACE, [gateway_scaler_service()])
    service = json.loads(
        kubectl(kubeconfig, "get", "service", "-n", SYSTEM_NAMESPACE, GATEWAY_SCALER_SERVICE, "-o", "json")
    )
    try:
        keda.start(root, kubeconfig, die_with_parent=die_with_parent)
        adapter = keda.start_adapter(root, kubeconfig, real_node.NODE_IP, die_with_parent=die_with_parent)
    except keda.KedaError as error:
        raise StackError(str(error)) from None
    objects = external_metrics_api(*adapter.address, adapter.ca_bundle)
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objects),
    )
    kubectl(
        kubeconfig, "wait", "--for=condition=Available", "--timeout=60s", f"apiservice/{EXTERNAL_METRICS_API}"
    )
    return f"{service['spec']['clusterIP']}:{contract.SCALER_PORT}"


# ---------------------------------------------------------------------------------------------
# the chart


STORAGE_SECRET = "sageport-model-storage"


def start_redis(root: Path, *, die_with_parent: bool) -> sageport_redis.RedisServer:
    """Debian's redis-server on the bridge address (where pods reach it), AOF everysec and a
    password, or the one a kept run left in ``root``."""
    try:
        return sageport_redis.start(
            root, host=real_node.NODE_IP, port=REDIS_PORT, die_with_parent=die_with_parent
        )
    except sageport_redis.RedisError as error:
        raise StackError(str(error)) from None


def redis_secret(password: str) -> dict[str, Any]:
    return _secret(REDIS_SECRET, {contract.REDIS_PASSWORD_KEY: password})


def local_values(
    refs: dict[str, str],
    s3: S3Server,
    prometheus_url: str | None = None,
    scaler_address: str | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Chart values for this machine: local images, chart pods, `local` and serverless variants on
    the real node, the operator's alarm source when the stack runs Prometheus, where KEDA reaches
    the gateway's scaler when it runs, and the async inference queue (Redis) when it runs."""

    def image(ref: str) -> dict[str, str]:
        repository, tag = ref.rsplit(":", 1)
        return {"repository": repository, "tag": tag, "pullPolicy": "Never"}

    on_real_node = {
        "nodeSelector": LOCAL_INSTANCE_TYPE["nodeSelector"],
        "tolerations": LOCAL_INSTANCE_TYPE["tolerations"],
    }
    return {
        "runtime": {"image": image(refs["runtime"])},
        "operator": {
            "image": image(refs["operator"]),
            "storage": {"endpointURL": s3.endpoint_url, "secretName": STORAGE_SECRET},
            **({"alarms": {"prometheusUrl": prometheus_url}} if prometheus_url else {}),
            # One pod on the shared real node; it still elects itself on the Lease, so a
            # `make up` that upgrades the chart hands over as a rolling update does.
            "replicas": 1,
            **on_real_node,
        },
        "gateway": {
            "replicas": 1,
            # Data capture files go to the same S3 server, with the same credentials.
            "dataCapture": {"endpointURL": s3.endpoint_url, "secretName": STORAGE_SECRET},
            **on_real_node,
        },
        "instanceTypes": {"extra": [LOCAL_INSTANCE_TYPE]},
        "serverless": {**on_real_node, **({"scalerAddress": scaler_address} if scaler_address else {})},
        **(
            {"asyncInference": {"redis": {"url": redis_url, "passwordSecret": REDIS_SECRET}}}
            if redis_url
            else {}
        ),
    }


def helm_install(kubeconfig: Path, values: dict[str, Any], work: Path, timeout: str = "180s") -> None:
    """``helm upgrade --install`` and wait until the operator and gateway are available, in a
    namespace that enforces the restricted Pod Security Standard (the chart's pods pass it)."""
    create_restricted_namespace(kubeconfig, SYSTEM_NAMESPACE)
    values_file = work / "values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    argv = [
        _binary("helm"),
        f"--kubeconfig={kubeconfig}",
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM_NAMESPACE,
        "--create-namespace",
        "--values",
        str(values_file),
        "--wait",
        f"--timeout={timeout}",
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        pods = kubectl(kubeconfig, "get", "pods", "-n", SYSTEM_NAMESPACE, "-o", "wide", check=False)
        raise StackError(f"helm install failed:\n{result.stderr.strip()}\n{pods}")


def gateway_url(kubeconfig: Path) -> str:
    """The gateway Service's cluster IP: kube-proxy routes it from this machine too."""
    service = json.loads(
        kubectl(kubeconfig, "get", "service", "-n", SYSTEM_NAMESPACE, GATEWAY_SERVICE, "-o", "json")
    )
    port = service["spec"]["ports"][0]["port"]
    return f"http://{service['spec']['clusterIP']}:{port}"


# ---------------------------------------------------------------------------------------------
# a namespace for endpoints


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str


def create_restricted_namespace(kubeconfig: Path, name: str) -> None:
    """The namespace, enforcing the restricted Pod Security Standard (applied: idempotent)."""
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))


def _secret(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels or {}},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def _storage_secret(s3: S3Server) -> dict[str, Any]:
    """The S3 credentials, as the model fetcher and the gateway's data capture read them (envFrom)."""
    return _secret(
        STORAGE_SECRET,
        {
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        },
    )


def prepare_system_namespace(kubeconfig: Path, s3: S3Server, redis_password: str | None = None) -> None:
    """The chart's namespace (restricted Pod Security enforced) with the S3 credentials the
    gateway writes data capture files with (``local_values``: gateway.dataCapture.secretName)
    and Redis' password (asyncInference.redis.passwordSecret)."""
    create_restricted_namespace(kubeconfig, SYSTEM_NAMESPACE)
    extra = [redis_secret(redis_password)] if redis_password else []
    apply_objects(kubeconfig, SYSTEM_NAMESPACE, [_storage_secret(s3), *extra])


# The identity of the stack's access key: a ServiceAccount its Secret names, which the control-plane
# API impersonates, allowed everything on the sageport.io kinds in the key's namespace.
API_IDENTITY = "sagemaker-api"
API_RESOURCES = ("models", "endpointconfigs", "endpoints", "transformjobs")
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def api_identity(name: str = API_IDENTITY, verbs: Iterable[str] = ALL_VERBS) -> list[dict[str, Any]]:
    """A ServiceAccount, a Role with ``verbs`` on the sageport.io kinds and the RoleBinding
    between them (namespaced objects: applied into the key's namespace)."""
    rules = [{"apiGroups": [contract.API_GROUP], "resources": list(API_RESOURCES), "verbs": list(verbs)}]
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name}],
        },
    ]


def access_key_secret(
    name: str, key: AccessKey, service_account: str | None = API_IDENTITY
) -> dict[str, Any]:
    """An access-key Secret for the gateway; ``service_account`` is the identity its control-plane
    calls act as (None: the key may invoke only)."""
    data = {"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key}
    if service_account is not None:
        data["serviceAccount"] = service_account
    return _secret(name, data, labels={contract.LABEL_ACCESS_KEY: "true"})


def prepare_namespace(
    kubeconfig: Path,
    namespace: str,
    s3: S3Server,
    key: AccessKey | None = None,
    redis_password: str | None = None,
) -> AccessKey:
    """The namespace (restricted Pod Security enforced), the fetcher's S3 credentials, and a
    SigV4 access key for the gateway scoped to it (``key``, else a new one), whose identity
    (:func:`api_identity`) may do everything the control-plane API does in the namespace."""
    key = key or AccessKey("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    create_restricted_namespace(kubeconfig, namespace)
    storage = _storage_secret(s3)
    extra = [redis_secret(redis_password)] if redis_password else []
    apply_objects(
        kubeconfig, namespace, [storage, *extra, *api_identity(), access_key_secret("invoke-key", key)]
    )
    return key


def example_objects(directory: Path, *, instance_type: str = "local") -> list[dict[str, Any]]:
    """An example's objects with every instance-based variant's instance type set to
    ``instance_type`` (serverless variants have none: the chart's serverless placement applies)."""
    objects: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for obj in objects:
        if obj["kind"] == "EndpointConfig":
            for variant in obj["spec"]["productionVariants"]:
                if "serverlessConfig" not in variant:
                    variant["instanceType"] = instance_type
    return objects


def runtime_client(url: str, key: AccessKey, *, retries: int | None = None) -> Any:
    """boto3's ``sagemaker-runtime`` client, signing with ``key``; ``retries`` caps its attempts."""
    return wire.runtime_client(url, key.access_key_id, key.secret_access_key, attempts=retries)


def iris_model_tarball() -> bytes:
    """model.tar.gz of a logistic regression trained on iris, as SageMaker's sklearn jobs write it."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    return joblib_tarball(LogisticRegression(max_iter=500).fit(features, labels))


def joblib_tarball(model: Any, compresslevel: int = 9) -> bytes:
    """model.tar.gz holding ``model`` as model.joblib, the layout sageport's server loads."""
    import joblib

    pickled = io.BytesIO()
    joblib.dump(model, pickled)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz", compresslevel=compresslevel) as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(pickled.getvalue())
        tar.addfile(info, io.BytesIO(pickled.getvalue()))
    return archive.getvalue()
