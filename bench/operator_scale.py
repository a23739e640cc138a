"""How fast the operator turns N Endpoints into Ready ones, its peak memory, and how fast the
gateway follows an EndpointSlice change with N Endpoints in its table.

For each N (default 1000) it creates N Models, N EndpointConfigs and N Endpoints on a local
cluster of its own (KWOK nodes, no real node: every pod is a KWOK pod) and measures the time from
the first Endpoint create to "every Endpoint Ready=True" (children created, pods scheduled and
ready, status written). The baseline, measured in the same run against the same API server, is
the floor: the same N x 3 child objects created directly by this process with the same
concurrency, no operator in between, until every Deployment has its ready replica. Printed:
seconds, the ratio to the baseline, the operator's CPU time and peak RSS (VmHWM). Then the
operator is restarted with the Endpoints there, and timed until it handles events again.

Then, with the largest N's Endpoints still there, a real ``sageport-gateway --kubernetes``
process watches that namespace; a probe Endpoint's EndpointSlice is switched between two real
backend processes, and each switch is timed from the API write to the first call the gateway
sends to the new backend. Baseline: the same change seen by a plain watch on the same API
server (the watch delivery floor).

    python -m bench.operator_scale [--sizes 1000] [--switches 20] [--no-baseline] [--profile FILE]

Targets (issue 20): 1000 Endpoints Ready in under 60 s with operator RSS under 300 MB; an
EndpointSlice change in use at the gateway within 1 s at 1000 Endpoints. It reuses a running
cluster through SAGEPORT_KUBECONFIG, or starts one itself (and stops it at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, watch

from bench.gateway import cpu_seconds
from sageport import contract
from sageport.api.v1alpha1 import API_VERSION, GROUP, VERSION, Endpoint
from sageport.kubeclient import load_api_client
from sageport.operator.crdgen import CATALOG_FILE, CRD_DIR, KINDS
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.plan import EndpointPlan, plan_endpoint
from sageport.operator.reconcile.resolve import ResolvedEndpoint, resolve_endpoint
from sageport.operator.render import RenderSettings, variant_children
from sageport_dev.nodes import NodePool, load_node_set, node_manifests
from sageport_dev.processes import free_port, terminate, wait_http

THREADS = 16
TINY_TYPE = "bench.tiny"
# The stock KWOK nodes schedule 440 untainted pods (4 CPU nodes x 110); these hold 1100 more.
BENCH_POOL = NodePool.model_validate(
    {
        "name": "bench",
        "count": 10,
        "zone": "us-east-1a",
        "instanceType": "m5.4xlarge",
        "cpu": "16",
        "memory": "64Gi",
    }
)


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


class _ReadyCount:
    """How many objects of one list are ready, from a watch opened before the first create.
    Listing 1000 objects every second (as this bench first did) is itself load on the API server
    and on this process, on the same 2 cores as what it measures; a watch costs one event per
    change. An ERROR event (a resource version the loaded API server's watch cache has not
    reached yet) or a broken stream lists again and watches on."""

    def __init__(self, list_call: Callable[..., Any], is_ready: Callable[[dict[str, Any]], bool]) -> None:
        self._list_call, self._is_ready = list_call, is_ready
        self._ready: set[str] = set()
        self._changed = threading.Condition()
        self._stopped = False
        version = self._relist()  # before the first create, so no change is missed
        threading.Thread(target=self._follow, args=(version,), daemon=True).start()

    def _relist(self) -> str:
        listed = json.loads(self._list_call(_preload_content=False).data)
        with self._changed:
            self._ready = {item["metadata"]["name"] for item in listed["items"] if self._is_ready(item)}
            self._changed.notify_all()
        return str(listed["metadata"]["resourceVersion"])

    def _follow(self, version: str) -> None:
        while not self._stopped:
            try:
                version = self._watch_from(version) or self._relist()
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                time.sleep(0.5)  # the API server restarting, or stopped at the end of the run

    def _watch_from(self, version: str) -> str:
        """Count events until the watch's own timeout; the last version seen, or "" to list again."""
        stream = self._list_call(
            watch=True, resource_version=version, timeout_seconds=30, _preload_content=False
        )
        for line in watch.watch.iter_resp_lines(stream):  # type: ignore[no-untyped-call]
            event = json.loads(line)
            if event["type"] == "ERROR":
                time.sleep(0.5)
                return ""
            self._count(event["type"], event["object"])
            version = event["object"]["metadata"]["resourceVersion"]
        return version

    def _count(self, kind: str, body: dict[str, Any]) -> None:
        with self._changed:
            if kind != "DELETED" and self._is_ready(body):
                self._ready.add(body["metadata"]["name"])
            else:
                self._ready.discard(body["metadata"]["name"])
            self._changed.notify_all()

    def wait(self, n: int, started: float, timeout: float, what: str) -> float:
        try:
            with self._changed:
                left = timeout - (time.monotonic() - started)
                if not self._changed.wait_for(lambda: len(self._ready) >= n, left):
                    raise RuntimeError(f"{what} not done after {timeout:.0f} s ({len(self._ready)} ready)")
            return time.monotonic() - started
        finally:
            # Not closed from here: closing a response another thread reads blocks until the next
            # event. The watch ends by its own server-side timeout, and the thread with it.
            self._stopped = True


def _deployment_ready(deployment: dict[str, Any]) -> bool:
    return int((deployment.get("status") or {}).get("readyReplicas") or 0) >= 1


def _has_status(body: dict[str, Any]) -> bool:
    return bool((body.get("status") or {}).get("conditions"))


def _endpoint_ready(endpoint: dict[str, Any]) -> bool:
    conditions = (endpoint.get("status") or {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def baseline_seconds(api_client: client.ApiClient, namespace: str, n: int, timeout: float) -> float:
    """Create what the operator would create for N endpoints, directly, and wait for every
    Deployment's pod to be ready: the API and scheduling floor."""
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
    ready = _ReadyCount(functools.partial(apps.list_namespaced_deployment, namespace), _deployment_ready)
    started = time.monotonic()
    _parallel(functools.partial(creators[m["kind"]], namespace, m) for m in manifests)
    return ready.wait(n, started, timeout, f"{n} direct Deployments")


def create_references(api_client: client.ApiClient, namespace: str, n: int, timeout: float) -> None:
    """N Models and EndpointConfigs, until the operator has written each one's status: they exist
    before the Endpoints, and the operator's backlog of their 2000 statuses is not in the figure."""
    custom = client.CustomObjectsApi(api_client)
    for plural, manifest in (("models", _model), ("endpointconfigs", _config)):
        listing = functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural)
        settled = _ReadyCount(listing, _has_status)
        began = time.monotonic()
        _parallel(_create_custom(custom, namespace, plural, manifest(i)) for i in range(n))
        settled.wait(n, began, timeout, f"{n} {plural} with a status")


def operator_seconds(
    api_client: client.ApiClient, namespace: str, n: int, timeout: float
) -> tuple[float, float, float]:
    """Seconds from the first Endpoint create to: the last create answered, every Deployment's
    pod ready, every Endpoint Ready (what is left after the pods is the operator's own lag)."""
    custom = client.CustomObjectsApi(api_client)
    apps = client.AppsV1Api(api_client)
    listing = functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "endpoints")
    ready = _ReadyCount(listing, _endpoint_ready)
    pods = _ReadyCount(functools.partial(apps.list_namespaced_deployment, namespace), _deployment_ready)
    started = time.monotonic()
    _parallel(_create_custom(custom, namespace, "endpoints", _endpoint(i)) for i in range(n))
    created = time.monotonic() - started
    pods_ready = pods.wait(n, started, timeout, f"{n} Deployments ready")
    return created, pods_ready, ready.wait(n, started, timeout, f"{n} Endpoints Ready")


def _wait_until_serving(
    api_client: client.ApiClient,
    namespace: str,
    operator: subprocess.Popen[bytes],
    name: str,
    timeout: float = 120.0,
) -> None:
    """Until the operator handles events: it writes a new sentinel Model's status only once kopf
    has listed every kind it indexes. Objects created before that each hold kopf's start-up gate
    (one toggle per object, every drop waking every waiting worker), which costs minutes of CPU
    at 1000 Endpoints: not what the creation figure measures, which is a running operator's."""
    custom = client.CustomObjectsApi(api_client)
    sentinel = _model(-1) | {"metadata": {"name": name}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "models", sentinel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError("the operator exited at start")
        model: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "models", name)  # type: ignore[assignment]
        if (model.get("status") or {}).get("conditions"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the operator wrote no Model status in {timeout:.0f} s")


@contextlib.contextmanager
def _cpu_table(phases: dict[str, dict[str, float]], phase: str, pids: dict[str, int]) -> Iterator[None]:
    """CPU seconds each process (and this bench) used during the block, into ``phases[phase]``."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    mine = time.process_time()
    yield
    phases[phase] = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    phases[phase]["bench (this process)"] = time.process_time() - mine


def _print_cpu_table(phases: dict[str, dict[str, float]]) -> None:
    if not phases:
        return
    names = list(dict.fromkeys(name for table in phases.values() for name in table))
    print(f"CPU seconds per process, each phase: {'':<2}" + "".join(f"{phase:>10}" for phase in phases))
    for name in [*names, "total"]:
        cells = [
            table.get(name, float("nan")) if name != "total" else sum(table.values())
            for table in phases.values()
        ]
        print(f"  {name:<36}" + "".join(f"{cell:>10.1f}" for cell in cells))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- the gateway: EndpointSlice change -> new route in use --------------------------------


def _routable_address() -> str:
    """An address of this machine that EndpointSlice validation accepts (loopback is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))  # no packet is sent for UDP connect
        address: str = probe.getsockname()[0]
    return address


@contextlib.contextmanager
def _backend(host: str, name: bytes) -> Iterator[int]:
    """A model server that answers every call with its name (the gateway checks /ping)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", str(len(name)))
            self.end_headers()
            self.wfile.write(name)

        do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _probe_slice(name: str, host: str, port: int) -> dict[str, Any]:
    """The probe endpoint's EndpointSlice, as the endpointslice controller writes the operator's."""
    service = f"{name}-alltraffic"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-bench",
            "labels": {
                contract.LABEL_ENDPOINT_OBJECT: name,
                contract.LABEL_VARIANT: "AllTraffic",
                "kubernetes.io/service-name": service,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        "ports": [{"name": contract.CONTAINER_PORT_NAME, "port": port, "protocol": "TCP"}],
    }


class SliceWatch:
    """A plain watch on the namespace's EndpointSlices: when each resourceVersion arrived."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.arrived: dict[str, float] = {}
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        discovery = client.DiscoveryV1Api(api_client)
        self._thread = threading.Thread(target=self._run, args=(discovery, namespace), daemon=True)
        self._thread.start()

    def _run(self, discovery: client.DiscoveryV1Api, namespace: str) -> None:
        events = self._watch.stream(  # type: ignore[no-untyped-call]
            discovery.list_namespaced_endpoint_slice,
            namespace,
            field_selector="metadata.name=probe-alltraffic-bench",
        )
        with contextlib.suppress(Exception):  # the cluster stopping under it ends the stream
            for event in events:
                self.arrived.setdefault(event["object"].metadata.resource_version, time.monotonic())

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]


def _answer(connection: http.client.HTTPConnection, endpoint: str) -> bytes:
    connection.request(
        "POST", f"/endpoints/{endpoint}/invocations", body=b"x", headers={"Content-Type": "text/plain"}
    )
    return connection.getresponse().read()


def gateway_switch_seconds(
    api_client: client.ApiClient, kubeconfig: Path, namespace: str, switches: int, log: Path
) -> tuple[list[float], list[float]]:
    """(gateway: write -> first call on the new backend, plain watch: write -> event) per switch."""
    custom, discovery = client.CustomObjectsApi(api_client), client.DiscoveryV1Api(api_client)
    host = _routable_address()
    port = free_port()
    with log.open("wb") as sink:
        gateway = subprocess.Popen(
            [str(Path(sys.executable).with_name("sageport-gateway")), "--kubernetes", f"--kubeconfig={kubeconfig}",
             f"--namespace={namespace}", "--host=127.0.0.1", f"--port={port}", "--no-auth"],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    watcher = SliceWatch(api_client, namespace)
    try:
        with _backend(host, b"a") as port_a, _backend(host, b"b") as port_b:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "endpoints", {
                "apiVersion": API_VERSION, "kind": "Endpoint", "metadata": {"name": "probe"},
                "spec": {"endpointConfigName": "probe"}})  # fmt: skip
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "endpoints", "probe", {
                "status": {"endpointStatus": "InService", "productionVariants": [
                    {"variantName": "AllTraffic", "currentWeight": 1.0, "currentInstanceCount": 1}]}})  # fmt: skip
            discovery.create_namespaced_endpoint_slice(namespace, _probe_slice("probe", host, port_a))  # type: ignore[arg-type]
            wait_http(f"http://127.0.0.1:{port}/ping", gateway, timeout=180)
            synced = re.findall(r"routes synced from Kubernetes: (\d+) endpoints", log.read_text())
            print(f"gateway: {synced[-1] if synced else '?'} endpoints in its table")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            deadline = time.monotonic() + 60
            while _answer(connection, "probe") != b"a":
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway never routed the probe endpoint")
                time.sleep(0.05)
            by_gateway, by_watch = [], []
            for index in range(switches):
                target, target_port = (b"b", port_b) if index % 2 == 0 else (b"a", port_a)
                written = time.monotonic()
                replaced = discovery.replace_namespaced_endpoint_slice(
                    "probe-alltraffic-bench",
                    namespace,
                    _probe_slice("probe", host, target_port),  # type: ignore[arg-type]
                )
                while _answer(connection, "probe") != target:
                    if time.monotonic() - written > 30:
                        raise RuntimeError(f"switch {index}: the gateway kept the old route for 30 s")
                by_gateway.append(time.monotonic() - written)
                assert replaced.metadata is not None
                assert replaced.metadata.resource_version is not None
                version = replaced.metadata.resource_version
                deadline = time.monotonic() + 30
                while version not in watcher.arrived and time.monotonic() < deadline:
                    time.sleep(0.005)
                by_watch.append(watcher.arrived[version] - written)
                time.sleep(0.5)
            return by_gateway, by_watch
    finally:
        watcher.stop()
        terminate(gateway)


def _add_bench_nodes(kubeconfig: Path) -> None:
    """KWOK nodes enough for 1000 pods, with pod CIDRs after the stock ones."""
    stock = load_node_set()
    extended = stock.model_copy(update={"pools": [*stock.pools, BENCH_POOL]})
    ours = [m for m in node_manifests(extended) if m["metadata"]["name"].startswith(f"{BENCH_POOL.name}-")]
    _kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": ours}),
    )


def _spread(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"


def run(
    kubeconfig: Path,
    sizes: list[int],
    switches: int,
    *,
    baseline: bool = True,
    profile: Path | None = None,
    control_plane: dict[str, int] | None = None,
) -> None:
    """``control_plane``: name -> pid of the cluster's processes, when this bench started them,
    for a CPU table of each phase (the 2 cores are shared: who used them)."""
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRD_DIR))
    crds = [f"crd/{kind.plural}.{GROUP}" for kind in KINDS]
    _kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    time.sleep(1)
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CATALOG_FILE))
    tiny = f"apiVersion: {API_VERSION}\nkind: InstanceType\nmetadata: {{name: {TINY_TYPE}}}\nspec: {{cpu: 10m, memory: 16Mi}}\n"
    _kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=tiny)
    _add_bench_nodes(kubeconfig)
    api_client = load_api_client(kubeconfig, pool_size=THREADS)
    core = client.CoreV1Api(api_client)
    logs = Path(tempfile.mkdtemp(prefix="sageport-bench-"))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    # Under cProfile the operator writes its profile when it stops (SIGTERM ends kopf cleanly).

    def start_operator(log: Path) -> subprocess.Popen[bytes]:
        # One profile per start (FILE.operator, FILE.operator-restarted).
        profiler = ["-m", "cProfile", "-o", f"{profile}.{log.stem}"] if profile else []
        with log.open("wb") as sink:
            return subprocess.Popen(
                [sys.executable, *profiler, "-m", "sageport.operator", "--liveness="],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    operator = start_operator(logs / "operator.log")
    phases: dict[str, dict[str, float]] = {}
    stamp = int(time.time())
    ready_ns = f"bench-ready-{stamp}"
    kept = ""
    try:
        _wait_until_serving(api_client, _namespace(core, ready_ns), operator, "ready")
        print(
            f"{'N':>5} {'baseline s':>11} {'operator s':>11} {'ratio':>7} {'created s':>10} "
            f"{'pods ready s':>13} {'operator CPU s':>15} {'peak RSS MiB':>13}"
        )
        for n in sizes:
            base_ns, op_ns = f"bench-base-{n}-{stamp}", f"bench-op-{n}-{stamp}"
            timeout = max(180.0, n * 0.6)
            base = float("nan")
            if baseline:
                with _cpu_table(phases, "baseline", control_plane or {}):
                    base = baseline_seconds(api_client, _namespace(core, base_ns), n, timeout)
                _delete_namespace(core, base_ns)
            create_references(api_client, _namespace(core, op_ns), n, timeout)
            with _cpu_table(phases, "operator", {**(control_plane or {}), "operator": operator.pid}):
                created, pods_ready, seconds = operator_seconds(api_client, op_ns, n, timeout)
            cpu = phases["operator"]["operator"]
            if n == max(sizes):
                kept = op_ns
            else:
                _delete_namespace(core, op_ns)
            print(
                f"{n:>5} {base:>11.1f} {seconds:>11.1f} {seconds / base:>7.2f} {created:>10.1f} "
                f"{pods_ready:>13.1f} {cpu:>15.1f} {peak_rss_mib(operator.pid):>13.0f}",
                flush=True,
            )
        _print_cpu_table(phases)
        if operator.poll() is not None:
            raise RuntimeError(f"operator exited; log in {logs}")
        # A restart (an upgrade, a failover) with the N Endpoints and their children there: kopf
        # lists everything and indexes it before it handles any event.
        terminate(operator, grace_seconds=15)
        started = time.monotonic()
        operator = start_operator(logs / "operator-restarted.log")
        _wait_until_serving(api_client, ready_ns, operator, "again", timeout=600)
        print(
            f"restart with {max(sizes)} Endpoints there: handling events after {time.monotonic() - started:.1f} s, "
            f"CPU {cpu_seconds(operator.pid):.1f} s, peak RSS {peak_rss_mib(operator.pid):.0f} MiB",
            flush=True,
        )
    finally:
        terminate(operator, grace_seconds=15)
    print(f"targets: 1000 endpoints Ready < 60 s, peak RSS < 300 MiB (operator log: {logs / 'operator.log'})")
    if switches and kept:
        # The operator is stopped: the probe Endpoint is written as the operator would, and
        # nothing rewrites it. The N Endpoints stay InService with their slices.
        by_gateway, by_watch = gateway_switch_seconds(
            api_client, kubeconfig, kept, switches, logs / "gateway.log"
        )
        ratio = statistics.median(by_gateway) / statistics.median(by_watch)
        print(
            f"EndpointSlice switch -> first call on the new backend, {switches} switches, {max(sizes)} Endpoints:"
        )
        print(f"  plain watch sees the change (floor)   {_spread(by_watch)}")
        print(f"  gateway routes to the new backend     {_spread(by_gateway)}   ratio {ratio:.2f}")
        print(f"target: < 1 s (gateway log: {logs / 'gateway.log'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument(
        "--switches", type=int, default=20, help="EndpointSlice switches timed at the gateway (0: none)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the direct-creation baseline (profiling)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the operator under cProfile: FILE.operator, and FILE.operator-restarted for the restart",
    )
    args = parser.parse_args()
    reuse = os.environ.get("SAGEPORT_KUBECONFIG")
    if reuse:
        run(Path(reuse), args.sizes, args.switches, baseline=not args.no_baseline, profile=args.profile)
        return
    from sageport_dev.control_plane import Layout, start, stop_cluster

    state_dir = Path(tempfile.mkdtemp(prefix="sageport-bench-"))
    state = start(state_dir, die_with_parent=True, log=lambda _: None)
    try:
        run(
            Layout(state_dir).kubeconfig,
            args.sizes,
            args.switches,
            baseline=not args.no_baseline,
            profile=args.profile,
            control_plane={record.name: record.pid for record in state.processes},
        )
    finally:
        stop_cluster(state_dir)


if __name__ == "__main__":
    main()
