"""How fast the operator turns N Endpoints into children and status, and its peak memory.

For N in (100, 500) it creates N Models, N EndpointConfigs and N Endpoints on the local cluster
and measures the time from the first create to "every Endpoint has its Deployment, Service and
PodDisruptionBudget and a written status". The baseline, measured in the same run against the
same API server, is the floor: the same N x 3 child objects created directly by this process with
the same concurrency, with no operator in between. Printed: seconds, the ratio to the baseline,
and the operator's peak RSS (VmHWM).

    python -m bench.operator_scale [--sizes 100 500]

Targets (issue 2): 500 Endpoints in under 60 s; operator RSS under 300 MB. It reuses a running
cluster through SAGEPORT_KUBECONFIG, or starts one itself (and stops it at the end).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from sageport.api.v1alpha1 import API_VERSION, GROUP, VERSION, Endpoint
from sageport.kubeclient import load_api_client
from sageport.operator.crdgen import CATALOG_FILE, CRD_DIR, KINDS
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.plan import EndpointPlan, plan_endpoint
from sageport.operator.reconcile.resolve import ResolvedEndpoint, resolve_endpoint
from sageport.operator.render import RenderSettings, variant_children

THREADS = 16
TINY_TYPE = "bench.tiny"


def _model(i: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": f"m{i}"},
        "spec": {"primaryContainer": {"modelDataURL": f"s3://bench/m{i}.tar.gz"}},
    }


def _config(i: int) -> dict[str, Any]:
    variant = {
        "variantName": "AllTraffic",
        "modelName": f"m{i}",
        "instanceType": TINY_TYPE,
        "initialInstanceCount": 1,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "EndpointConfig",
        "metadata": {"name": f"c{i}"},
        "spec": {"productionVariants": [variant]},
    }


def _endpoint(i: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Endpoint",
        "metadata": {"name": f"e{i}"},
        "spec": {"endpointConfigName": f"c{i}"},
    }


def _parallel(calls: Iterable[Callable[[], object]]) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def _create_custom(
    api: client.CustomObjectsApi, namespace: str, plural: str, body: dict[str, Any]
) -> Callable[[], object]:
    return lambda: api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> None:
    from sageport_dev.build import ensure_binaries

    kubectl = str(ensure_binaries()["kubectl"])
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", *args],
        check=True,
        capture_output=True,
        input=stdin,
        text=True,
    )


def _namespace(core: client.CoreV1Api, name: str) -> str:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account("default", name)
            return name
        except client.ApiException:
            time.sleep(0.1)
    raise RuntimeError(f"namespace {name} has no default service account")


def _delete_namespace(core: client.CoreV1Api, name: str) -> None:
    """Delete and wait, so the next measurement does not share the cluster with leftovers."""
    core.delete_namespace(name)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except client.ApiException:
            return
        time.sleep(1)
    raise RuntimeError(f"namespace {name} still terminating after 300 s")


def _only(body: dict[str, Any], _name: str) -> list[dict[str, Any]]:
    return [body]


def _the(body: dict[str, Any], _name: str) -> dict[str, Any]:
    return body


def baseline_seconds(api_client: client.ApiClient, namespace: str, n: int) -> float:
    """Create what the operator would create for N endpoints, directly: the API floor."""
    settings = RenderSettings()
    tiny = {"metadata": {"name": TINY_TYPE}, "kind": "InstanceType", "spec": {"cpu": "10m", "memory": "16Mi"}}
    manifests: list[dict[str, Any]] = []
    for i in range(n):
        endpoint = Endpoint.model_validate(
            {**_endpoint(i), "metadata": {"name": f"e{i}", "namespace": namespace, "uid": "x"}}
        )
        config = _config(i) | {"metadata": {"name": f"c{i}", "namespace": namespace}}
        model = _model(i) | {"metadata": {"name": f"m{i}", "namespace": namespace}}
        resolved = resolve_endpoint(
            endpoint,
            configs=functools.partial(_only, config),
            models=functools.partial(_only, model),
            instance_types=functools.partial(_the, tiny),
        )
        assert isinstance(resolved, ResolvedEndpoint), resolved
        plan = admit(resolved).problem or plan_endpoint(resolved, settings)
        assert isinstance(plan, EndpointPlan), plan
        for shape in plan.variants:
            for manifest in variant_children(shape, settings):
                del manifest["metadata"]["ownerReferences"]  # no real owner: keep GC out of it
                manifests.append(manifest)
    apps, core, policy = (
        client.AppsV1Api(api_client),
        client.CoreV1Api(api_client),
        client.PolicyV1Api(api_client),
    )
    creators: dict[str, Callable[..., object]] = {
        "Deployment": apps.create_namespaced_deployment,
        "Service": core.create_namespaced_service,
        "PodDisruptionBudget": policy.create_namespaced_pod_disruption_budget,
    }
    started = time.monotonic()
    _parallel(functools.partial(creators[m["kind"]], namespace, m) for m in manifests)
    return time.monotonic() - started


def operator_seconds(api_client: client.ApiClient, namespace: str, n: int, timeout: float) -> float:
    custom, apps = client.CustomObjectsApi(api_client), client.AppsV1Api(api_client)
    # Models and configs exist first (not timed): the figure is Endpoint apply -> children + status.
    _parallel(_create_custom(custom, namespace, "models", _model(i)) for i in range(n))
    _parallel(_create_custom(custom, namespace, "endpointconfigs", _config(i)) for i in range(n))
    started = time.monotonic()
    _parallel(_create_custom(custom, namespace, "endpoints", _endpoint(i)) for i in range(n))
    while time.monotonic() - started < timeout:
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "endpoints")
        endpoints: list[dict[str, Any]] = listed["items"]  # type: ignore[index]
        written = sum(1 for e in endpoints if (e.get("status") or {}).get("endpointStatus"))
        deployments = len(apps.list_namespaced_deployment(namespace).items)
        if written == n and deployments == n:
            return time.monotonic() - started
        time.sleep(0.25)
    raise RuntimeError(f"{n} endpoints not done after {timeout:.0f} s")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(kubeconfig: Path, sizes: list[int]) -> None:
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRD_DIR))
    crds = [f"crd/{kind.plural}.{GROUP}" for kind in KINDS]
    _kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    time.sleep(1)
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CATALOG_FILE))
    tiny = f"apiVersion: {API_VERSION}\nkind: InstanceType\nmetadata: {{name: {TINY_TYPE}}}\nspec: {{cpu: 10m, memory: 16Mi}}\n"
    _kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=tiny)
    api_client = load_api_client(kubeconfig, pool_size=THREADS)
    core = client.CoreV1Api(api_client)
    log = Path(tempfile.mkdtemp(prefix="sageport-bench-")) / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log.open("wb") as sink:
        operator = subprocess.Popen(
            [sys.executable, "-m", "sageport.operator", "--liveness="],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)  # let it start its watches; creation time below counts only reconciling
        stamp = int(time.time())
        print(
            f"{'N':>5} {'baseline s':>11} {'operator s':>11} {'ratio':>7} {'per endpoint ms':>16} {'peak RSS MiB':>13}"
        )
        for n in sizes:
            base_ns, op_ns = f"bench-base-{n}-{stamp}", f"bench-op-{n}-{stamp}"
            base = baseline_seconds(api_client, _namespace(core, base_ns), n)
            _delete_namespace(core, base_ns)
            seconds = operator_seconds(api_client, _namespace(core, op_ns), n, timeout=max(120.0, n * 0.6))
            _delete_namespace(core, op_ns)
            print(
                f"{n:>5} {base:>11.1f} {seconds:>11.1f} {seconds / base:>7.2f} {seconds / n * 1000:>16.1f} {peak_rss_mib(operator.pid):>13.0f}",
                flush=True,
            )
        if operator.poll() is not None:
            raise RuntimeError(f"operator exited; log in {log}")
    finally:
        operator.terminate()
        operator.wait(timeout=15)
    print(f"targets: 500 endpoints < 60 s, peak RSS < 300 MiB (operator log: {log})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    args = parser.parse_args()
    reuse = os.environ.get("SAGEPORT_KUBECONFIG")
    if reuse:
        run(Path(reuse), args.sizes)
        return
    from sageport_dev.control_plane import Layout, start, stop_cluster

    state_dir = Path(tempfile.mkdtemp(prefix="sageport-bench-"))
    start(state_dir, die_with_parent=True, log=lambda _: None)
    try:
        run(Layout(state_dir).kubeconfig, args.sizes)
    finally:
        stop_cluster(state_dir)


if __name__ == "__main__":
    main()
