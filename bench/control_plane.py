"""What the SageMaker control-plane API costs on top of the Kubernetes API, on the kwok cluster.

1. ``create_endpoint`` -> ``endpoint_in_service`` (boto3 through the gateway) against the same
   Endpoint ``kubectl apply``-ed and ``kubectl wait``-ed for ``status.endpointStatus=InService``,
   alternating, in the same run, against the same operator (Model and EndpointConfig exist
   before the clock starts in both). Target (issue 21): the API adds < 1 s.
2. DescribeEndpoint at 50 endpoints, boto3 round trip, against a GET of the same Endpoint from
   the API server with the Kubernetes client (what a Describe without the watch cache would
   cost at least). Target: p50 < 5 ms.

Why kwok and not the real node: the figure is a difference of two paths to the same status, so
what matters is that nothing else varies. On kwok a pod is Ready a fixed moment after it is
bound; on the real node image and model loading add seconds of noise to both sides (the e2e
test prints that total), and the node is shared.

    python -m bench.control_plane [--rounds 5]

Reuses a running cluster through SAGEPORT_KUBECONFIG, or starts one itself (and stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from sageport.api.v1alpha1 import API_VERSION, GROUP, VERSION
from sageport.controlapi.names import object_name
from sageport.kubeclient import load_api_client
from sageport.operator.crdgen import CATALOG_FILE, CRD_DIR, KINDS
from sageport_dev import stack, wire
from sageport_dev.processes import free_port, wait_http

TINY_TYPE = "bench.tiny"
DESCRIBES = 500


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return stack.kubectl(kubeconfig, *args, stdin=stdin)


def _apply(kubeconfig: Path, namespace: str, docs: list[dict[str, Any]]) -> None:
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    _kubectl(kubeconfig, "apply", "--server-side", "-n", namespace, "-f", "-", stdin=text)


def _prepare(kubeconfig: Path, namespace: str) -> stack.AccessKey:
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRD_DIR))
    crds = [f"crd/{kind.plural}.{GROUP}" for kind in KINDS]
    _kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    time.sleep(1)
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CATALOG_FILE))
    tiny = {"apiVersion": API_VERSION, "kind": "InstanceType", "metadata": {"name": TINY_TYPE},
            "spec": {"cpu": "10m", "memory": "16Mi"}}  # fmt: skip
    _kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(tiny))
    _kubectl(kubeconfig, "create", "namespace", namespace)
    key = stack.AccessKey("AKIDBENCH" + secrets.token_hex(4).upper(), secrets.token_urlsafe(24))
    _apply(kubeconfig, namespace, [*stack.api_identity(), stack.access_key_secret("bench-key", key)])
    return key


def _start(argv: list[str], kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(argv, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, stdout=sink,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _in_service_by_api(sagemaker: Any, name: str) -> float:
    started = time.perf_counter()
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="bench-config")
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 2400}
    )
    return time.perf_counter() - started


def _in_service_by_kubectl(kubeconfig: Path, namespace: str, name: str) -> float:
    endpoint = {"apiVersion": API_VERSION, "kind": "Endpoint", "metadata": {"name": object_name(name)},
                "spec": {"endpointName": name, "endpointConfigName": "bench-config"}}  # fmt: skip
    started = time.perf_counter()
    _apply(kubeconfig, namespace, [endpoint])
    _kubectl(kubeconfig, "wait", "-n", namespace, f"endpoints.{GROUP}/{object_name(name)}",
             "--for=jsonpath={.status.endpointStatus}=InService", "--timeout=120s")  # fmt: skip
    return time.perf_counter() - started


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


def run(kubeconfig: Path, rounds: int) -> None:
    namespace = f"bench-ctl-{int(time.time())}"
    key = _prepare(kubeconfig, namespace)
    logs = Path(tempfile.mkdtemp(prefix="sageport-bench-ctl-"))
    operator = _start(
        [sys.executable, "-m", "sageport.operator", "--liveness="], kubeconfig, logs / "operator.log"
    )
    port = free_port()
    gateway = _start([str(Path(sys.executable).with_name("sageport-gateway")), "--kubernetes",
                      f"--kubeconfig={kubeconfig}", f"--namespace={namespace}", "--host=127.0.0.1",
                      f"--port={port}"], kubeconfig, logs / "gateway.log")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/ping", gateway, timeout=90)
        sagemaker = wire.control_client(url, key.access_key_id, key.secret_access_key, attempts=1)
        deadline = time.monotonic() + 30
        while True:  # the key Secret reaches the gateway through its watch
            try:
                sagemaker.list_models()
                break
            except sagemaker.exceptions.ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        sagemaker.create_model(
            ModelName="bench-model", PrimaryContainer={"ModelDataUrl": "s3://bench/m.tar.gz"}
        )
        sagemaker.create_endpoint_config(EndpointConfigName="bench-config", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "bench-model", "InstanceType": TINY_TYPE, "InitialInstanceCount": 1}])  # fmt: skip
        time.sleep(2)  # the operator has seen both

        by_api, by_kubectl = [], []
        for index in range(rounds):  # alternating, so drift in the cluster hits both sides alike
            by_kubectl.append(_in_service_by_kubectl(kubeconfig, namespace, f"kubectl-{index}"))
            by_api.append(_in_service_by_api(sagemaker, f"Api-{index}"))
        api, kubectl = statistics.median(by_api), statistics.median(by_kubectl)
        print(f"create -> InService, median of {rounds} (kwok cluster, same operator):")
        print(
            f"  kubectl apply + kubectl wait          {kubectl:6.2f} s   ({', '.join(f'{t:.2f}' for t in by_kubectl)})"
        )
        print(
            f"  create_endpoint + endpoint_in_service {api:6.2f} s   ({', '.join(f'{t:.2f}' for t in by_api)})"
        )
        print(f"  the API adds {api - kubectl:+.2f} s (ratio {api / kubectl:.2f}; target: adds < 1 s)")

        names = [f"Api-{index}" for index in range(rounds)]
        for index in range(rounds, 50):
            sagemaker.create_endpoint(EndpointName=f"Api-{index}", EndpointConfigName="bench-config")
            names.append(f"Api-{index}")
        custom = client.CustomObjectsApi(load_api_client(kubeconfig, pool_size=1))
        describe, get = [], []
        for index in range(DESCRIBES):
            name = names[index % len(names)]
            started = time.perf_counter()
            sagemaker.describe_endpoint(EndpointName=name)
            describe.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "endpoints", object_name(name))
            get.append((time.perf_counter() - started) * 1000)
        (d50, d99), (g50, g99) = _percentiles(describe), _percentiles(get)
        print(f"DescribeEndpoint at {len(names)} endpoints, {DESCRIBES} calls each:")
        print(f"  Kubernetes GET (python client)      p50 {g50:5.2f} ms  p99 {g99:5.2f} ms")
        print(f"  DescribeEndpoint (boto3, gateway)   p50 {d50:5.2f} ms  p99 {d99:5.2f} ms  "
              f"(ratio {d50 / g50:.2f}; target p50 < 5 ms)")  # fmt: skip
    finally:
        for process in (gateway, operator):
            process.terminate()
            process.wait(timeout=15)
        stack.kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reuse = os.environ.get("SAGEPORT_KUBECONFIG")
    if reuse:
        run(Path(reuse), args.rounds)
        return
    from sageport_dev.control_plane import Layout, start, stop_cluster

    state_dir = Path(tempfile.mkdtemp(prefix="sageport-bench-"))
    start(state_dir, die_with_parent=True, log=lambda _: None)
    try:
        run(Layout(state_dir).kubeconfig, args.rounds)
    finally:
        stop_cluster(state_dir)


if __name__ == "__main__":
    main()
